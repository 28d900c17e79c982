"""The Model page's upload: bring your own model and evaluation data, loaded safely.

Weights-only files (safetensors, a state_dict saved with `torch.save`) are loaded into an
architecture chosen from the registry; files that carry code are loaded only when the
operator allows it (`PRUNESCOPE_ALLOW_CODE=1`). The model becomes the current one only
once the model, the data and one forward pass on that data have all succeeded, so a
failed upload never replaces the model the user had.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import torch
from streamlit.runtime.uploaded_file_manager import UploadedFile

import prune_engine as pe
from prune_engine.loading import (
    MAX_EXAMPLES,
    TEXT_EXTENSIONS,
    check_data_fits,
    code_loading_allowed,
    csv_columns,
    detect_format,
    nonfinite_weights,
    random_eval_data,
    random_token_data,
    text_lines,
)
from prune_engine.loading.hf_model import IMAGE_CLASSIFICATION
from ui.shared import keys, state
from ui.shared.widgets import choice
from workbench import capabilities, fmt

MODEL_TYPES = ["safetensors", "pt", "pth", "bin", "ckpt", "pt2", "pkl", "zip"]
"""Extensions the model uploader accepts; the engine tells the format from the content, not the name."""
DATA_TYPES = ["csv", "txt", "npz", "npy", "pt", "pth", "safetensors"]
NO_LABELS = "(no labels)"
LABEL_NAMES = ("label", "labels", "target", "y", "class")
"""CSV columns picked as labels by default, compared in lower case."""
RANDOM_EXAMPLES = 256
"""Random examples made when there is no data: enough for a stable fidelity figure, quick to run."""

DATA_CHOICES = {"file": "Upload a data file", "random": "No data: random inputs"}
TRAIN_CHOICES = {
    "none": "None",
    "file": "Upload a training file",
    "split": "Split the evaluation data",
}
SPLIT_SEED = 0
"""Seed of the shuffle that splits evaluation data into calibration and evaluation halves."""


def nonfinite_warning(counts: dict[str, int]) -> str:
    """The Model page's warning for a model with NaN or infinite weights."""
    shown = ", ".join(f"{name[:60]} ({count:,})" for name, count in list(counts.items())[:5])
    more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
    return (
        f"This model holds NaN or infinite values in {len(counts)} tensor(s): {shown}{more}. They load as they are "
        "and stay through pruning, so its outputs, accuracy and every comparison are not trustworthy; the pruned "
        "layers' reports say so too. Check how the file was saved."
    )


FORM_WIDGETS = (
    keys.UPLOAD_ARCHITECTURE,
    keys.UPLOAD_DATA_SOURCE,
    keys.UPLOAD_LABEL_COLUMN,
    keys.UPLOAD_INPUT_SHAPE,
    keys.UPLOAD_TRAIN_SOURCE,
)
"""The form's inputs other than files, put back when the user returns to the page."""
FILE_WIDGETS = (keys.UPLOAD_MODEL_FILE, keys.UPLOAD_SIDECAR_FILE, keys.UPLOAD_DATA_FILE, keys.UPLOAD_TRAIN_FILE)

CODE_REFUSED = (
    "TorchScript archives, torch.export programs (.pt2) and whole pickled models are refused: loading them runs "
    "code stored in the file, which could read, change or send files on this machine. Save `model.state_dict()` "
    "(or safetensors) instead and pick its architecture. For files you trust, the operator can allow them by "
    f"starting the app with `{pe.loading.ALLOW_CODE_ENV_VAR}=1`."
)
CODE_ALLOWED = (
    f"Code loading is on (`{pe.loading.ALLOW_CODE_ENV_VAR}=1`): TorchScript, .pt2 and pickled models run code "
    "from the file while they load. Upload only files you trust."
)
RANDOM_WARNING = (
    "Random inputs are noise, not examples of your task: only **latency** and **fidelity** (how closely the "
    "pruned model's outputs follow the original's) mean anything with them. There is no accuracy, and criteria "
    "that learn from data (Taylor, activations, …) would score noise."
)
FIDELITY_NOTE = (
    "Without labels there is no accuracy: Compare then measures **fidelity**, the share of examples whose top "
    "prediction stays the same (agreement) and how similar the output vectors stay (cosine similarity)."
)


def upload_limit() -> int:
    """The largest file read, in bytes: Streamlit's `server.maxUploadSize` (megabytes), checked again by the engine."""
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


def parse_shape(text: str) -> tuple[int, ...] | None:
    """The shape of one example from what a person types: "1, 8, 8", "1×8×8" or "1 8 8" → (1, 8, 8); empty → None."""
    parts = [part for part in re.split(r"[\s,×xX*()\[\]]+", text.strip()) if part]
    if not parts:
        return None
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise pe.DataError(
            f"{text.strip()!r} is not a shape: give positive whole numbers separated by commas, e.g. 1, 8, 8."
        )
    return tuple(int(part) for part in parts)


def mismatch_view(table: pd.DataFrame) -> pd.DataFrame:
    """The engine's mismatch table with shapes written as "256×64" (— where a side has no such key)."""

    def shape(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "—"
        return "×".join(str(size) for size in value) or "scalar"

    return pd.DataFrame(
        {
            "key": table["key"].astype(str),
            "problem": table["problem"],
            "in the architecture": table["expected_shape"].map(shape),
            "in the file": table["file_shape"].map(shape),
        }
    )


def section() -> None:
    """The upload form: model file and architecture, evaluation data, and the button that loads both."""
    message = st.session_state.pop(keys.UPLOAD_LOADED_MESSAGE, None)
    if message is not None:
        st.success(fmt.literal(message), icon=":material/check_circle:")
    _restore_form()
    st.markdown(
        "Load a trained PyTorch model of your own and the data to judge it on. A weights file (safetensors or a "
        "state_dict) is read as plain numbers into a model class this app already knows: nothing in it is run. "
        "A Hugging Face model folder, zipped, is built by transformers from its config.json; code shipped with a "
        "model is never run."
    )
    model_column, data_column = st.columns(2, gap="large")
    with model_column:
        architecture = _model_inputs()
    with data_column:
        source = _data_inputs()
        _training_inputs()
    _remember_form()
    if st.button("Load this model", key=keys.UPLOAD_LOAD, type="primary", icon=":material/upload:"):
        _load(architecture, source)


def _remembered() -> dict[str, Any]:
    return st.session_state.setdefault(keys.UPLOAD_REMEMBERED, {})


def _restore_form() -> None:
    """Put back the inputs Streamlit dropped while the user was on another page."""
    remembered = _remembered()
    for key in FORM_WIDGETS:
        if key not in st.session_state and key in remembered:
            st.session_state[key] = remembered[key]


def _remember_form() -> None:
    remembered = _remembered()
    for key in FORM_WIDGETS:
        if key in st.session_state:
            remembered[key] = st.session_state[key]


def _remember_file(key: str) -> None:
    """A file uploader's on_change: the user chose or removed a file, so that is what the form remembers."""
    _remembered()[key] = st.session_state.get(key)


def _file_uploader(label: str, key: str, **kwargs: Any) -> UploadedFile | None:
    """A file uploader that remembers its file across pages: after a return it shows the file chosen earlier
    (with a button to choose another) until the user picks a new one."""
    chosen = st.file_uploader(label, key=key, on_change=_remember_file, args=(key,), **kwargs)
    earlier = _remembered().get(key)
    if chosen is not None or earlier is None:
        return chosen
    column, button = st.columns([4, 1], vertical_alignment="center")
    column.caption(f"{label}: **{fmt.literal(earlier.name)}**, chosen earlier ({fmt.size(earlier.size)}).")
    if button.button("Remove", key=keys.upload_forget(key), icon=":material/close:"):
        _remembered()[key] = None
        st.rerun()
    return earlier


def uploaded(key: str) -> UploadedFile | None:
    """The file of uploader `key`: chosen now, or remembered from an earlier visit to the page."""
    return st.session_state.get(key) or _remembered().get(key)


def _model_inputs() -> str | None:
    st.markdown("**The model**")
    _file_uploader(
        "Model file",
        type=MODEL_TYPES,
        key=keys.UPLOAD_MODEL_FILE,
        help="safetensors or a state_dict saved with torch.save(model.state_dict(), path), or a zip of a "
        "transformers model folder (config.json, model.safetensors or pytorch_model.bin, tokenizer files). The "
        "format is read from the content, not the file name.",
    )
    try:
        names = pe.list_architectures()
    except pe.PruneScopeError as error:
        st.error(fmt.literal(str(error)), icon=":material/error:")
        names = []
    architecture = st.selectbox(
        "Architecture",
        names,
        key=keys.UPLOAD_ARCHITECTURE,
        help="The model class the weights were saved from: the sample models' architectures, plus any the "
        f"operator lists in {pe.architectures.ENV_VAR} (a Python file defining ARCHITECTURES). "
        "Files that carry their own code ignore it.",
    )
    with st.expander("Channel-pruned by PruneScope? Add its architecture.json", icon=":material/schema:"):
        _file_uploader(
            "architecture.json",
            type=["json"],
            key=keys.UPLOAD_SIDECAR_FILE,
            help="Exported next to a channel-pruned model: it records the smaller layer shapes so the "
            "architecture can be rebuilt to fit the weights.",
        )
    if code_loading_allowed():
        st.warning(CODE_ALLOWED, icon=":material/warning:")
    else:
        st.caption(CODE_REFUSED)
    return architecture


def _data_inputs() -> str:
    st.markdown("**Evaluation data**")
    source = choice(
        st, "Evaluation data", DATA_CHOICES, DATA_CHOICES, keys.UPLOAD_DATA_SOURCE, label_visibility="collapsed"
    )
    if source == "file":
        data_file = _file_uploader(
            "Data file",
            type=DATA_TYPES,
            key=keys.UPLOAD_DATA_FILE,
            help="CSV: numeric feature columns and, optionally, a label column. .npz/.pt/.safetensors: tensors "
            "named inputs (or x) and, optionally, labels (or y); .npy: inputs only. For a transformers model: "
            ".txt (one example a line) or CSV with a text column, tokenized with the model's own tokenizer.",
        )
        if data_file is not None and data_file.name.lower().endswith(".txt"):
            st.caption(_text_file_summary(data_file))
        if data_file is not None and data_file.name.lower().endswith(".csv"):
            columns = csv_columns(data_file.getvalue())
            guess = next((name for name in columns if name.lower() in LABEL_NAMES), NO_LABELS)
            options = [NO_LABELS, *columns]
            if st.session_state.get(keys.UPLOAD_LABEL_COLUMN) not in (None, *options):
                del st.session_state[keys.UPLOAD_LABEL_COLUMN]  # remembered from another file
            default = {} if keys.UPLOAD_LABEL_COLUMN in st.session_state else {"index": options.index(guess)}
            st.selectbox(
                "Label column",
                options,
                **default,
                key=keys.UPLOAD_LABEL_COLUMN,
                help="The column holding each row's class (0, 1, 2, …); every other column is an input feature.",
            )
    st.text_input(
        "Shape of one example",
        key=keys.UPLOAD_INPUT_SHAPE,
        placeholder="e.g. 1, 8, 8",
        help="Needed for random inputs. For a data file it reshapes each example, e.g. 64 CSV columns into "
        "1, 8, 8 for a model that takes 8×8 one-channel images; leave empty to keep the file's shape.",
    )
    if source == "random":
        st.warning(RANDOM_WARNING, icon=":material/warning:")
    st.caption(FIDELITY_NOTE)
    return source


def _text_file_summary(data_file: UploadedFile) -> str:
    """What a .txt data file holds, said as soon as it arrives: one example a line."""
    examples = len(text_lines(data_file.getvalue().decode("utf-8-sig", errors="replace")))
    used = f"; the first {MAX_EXAMPLES:,} are used" if examples > MAX_EXAMPLES else ""
    return f"{fmt.literal(data_file.name)}: {examples:,} lines of text, one example each{used}."


def _training_inputs() -> None:
    st.markdown("**Training or calibration data** (optional)")
    train = choice(
        st,
        "Training data",
        TRAIN_CHOICES,
        TRAIN_CHOICES,
        keys.UPLOAD_TRAIN_SOURCE,
        label_visibility="collapsed",
        help="Examples the model is not scored on: BatchNorm re-estimation after channel pruning and "
        "fine-tuning learn from them. Same formats, label column and shape as the evaluation data.",
    )
    if train == "file":
        _file_uploader("Training file", keys.UPLOAD_TRAIN_FILE, type=DATA_TYPES)
    elif train == "split":
        st.caption(
            "Half of the evaluation examples (chosen at random) become training data, and accuracy is then "
            "measured on the other half only."
        )
    else:
        st.caption(capabilities.NO_TRAINING)


def _load(architecture: str | None, source: str) -> None:
    """Load model and data, check they fit, and only then make them the current model."""
    model_file = uploaded(keys.UPLOAD_MODEL_FILE)
    if model_file is None:
        st.error("Choose a model file first.", icon=":material/error:")
        return
    try:
        with st.spinner("Loading the model and checking the data…"):
            bundle = _bundle(model_file, architecture, source)
    except pe.StateDictMismatchError as error:
        st.error(fmt.literal(str(error)), icon=":material/error:")
        st.dataframe(mismatch_view(error.table), hide_index=True)
        return
    except pe.PruneScopeError as error:
        st.error(fmt.literal(str(error)), icon=":material/error:")
        return
    state.set_current_bundle(bundle, source="upload")
    st.session_state[keys.UPLOAD_LOADED_MESSAGE] = f"Loaded {bundle.name}: {bundle.description}"
    st.rerun()


def _bundle(model_file: UploadedFile, architecture: str | None, source: str) -> pe.ModelBundle:
    shape = parse_shape(st.session_state.get(keys.UPLOAD_INPUT_SHAPE, ""))
    limit = upload_limit()
    content = model_file.getvalue()
    model = pe.load_model(
        content,
        architecture=architecture,
        allow_code=code_loading_allowed(),
        max_bytes=limit,
        sidecar=_sidecar(),
    )
    if pe.is_transformers_model(model):
        return _transformers_bundle(model_file, model, source, limit)
    data, data_text = _data(source, shape, limit)
    check_data_fits(model, data)
    data, train_data, train_text = _training_data(data, shape, limit)
    if train_data is not None:
        check_data_fits(model, train_data)
    file_format = detect_format(content, max_bytes=limit)
    labels = data.labels
    return pe.ModelBundle(
        name=model_file.name,
        model=model,
        example_input=data.inputs[:1].clone(),
        eval_data=data,
        train_data=train_data,
        task="regression" if labels is not None and labels.is_floating_point() else "classification",
        description=f"Uploaded as {_model_text(file_format, architecture)}, evaluated on {data_text}{train_text}.",
        metadata={
            "format": file_format,
            "architecture": architecture,
            "input_shape": list(data.inputs.shape[1:]),
            "random_data": source == "random",
            "nonfinite_weights": nonfinite_weights(model),
        },
    )


def _transformers_bundle(
    model_file: UploadedFile, model: pe.TransformersModel, source: str, limit: int
) -> pe.ModelBundle:
    """A transformers folder's bundle: its own text tokenized by its tokenizer, or random token ids."""
    if source == "random":
        data, data_text = random_token_data(model), "random token ids (fidelity and latency only)"
    else:
        data_file = uploaded(keys.UPLOAD_DATA_FILE)
        if data_file is None:
            raise pe.DataError("Choose an evaluation data file, or pick “No data: random inputs”.")
        if Path(data_file.name).suffix.lower() in TEXT_EXTENSIONS and model.task != IMAGE_CLASSIFICATION:
            label = st.session_state.get(keys.UPLOAD_LABEL_COLUMN) if data_file.name.lower().endswith(".csv") else None
            data = pe.load_text_data(
                data_file.getvalue(),
                model,
                filename=data_file.name,
                label_column=None if label in (None, NO_LABELS) else label,
                max_bytes=limit,
            )
        else:
            data = _read_data(data_file, None, limit)
        data_text = f"{len(data):,} examples from {data_file.name}"
    check_data_fits(model, data)
    model_class = type(model.transformers_model).__name__
    return pe.ModelBundle(
        name=model_file.name,
        model=model,
        example_input=data.inputs[:1].clone(),
        eval_data=data,
        train_data=None,
        task=model.prunescope_task or "classification",
        description=f"Uploaded as a transformers model folder ({model_class}), evaluated on {data_text}.",
        metadata={
            "format": "transformers",
            "architecture": model_class,
            "input_shape": list(data.inputs.shape[1:]),
            "random_data": source == "random",
            "nonfinite_weights": nonfinite_weights(model),
            "tokenizer": model.tokenizer is not None,
        },
    )


def _sidecar() -> str | bytes | None:
    sidecar = uploaded(keys.UPLOAD_SIDECAR_FILE)
    return None if sidecar is None else sidecar.getvalue()


def _data(source: str, shape: tuple[int, ...] | None, limit: int) -> tuple[pe.EvalData, str]:
    if source == "random":
        if shape is None:
            raise pe.DataError("Random inputs need the shape of one example: fill in “Shape of one example”.")
        return random_eval_data(shape, count=RANDOM_EXAMPLES), f"{RANDOM_EXAMPLES} random inputs"
    data_file = uploaded(keys.UPLOAD_DATA_FILE)
    if data_file is None:
        raise pe.DataError("Choose an evaluation data file, or pick “No data: random inputs”.")
    data = _read_data(data_file, shape, limit)
    what = "labelled examples" if data.has_labels else "examples without labels"
    return data, f"{len(data):,} {what} from {data_file.name}"


def _read_data(data_file: UploadedFile, shape: tuple[int, ...] | None, limit: int) -> pe.EvalData:
    label = st.session_state.get(keys.UPLOAD_LABEL_COLUMN) if data_file.name.lower().endswith(".csv") else None
    return pe.load_eval_data(
        data_file.getvalue(),
        filename=data_file.name,
        label_column=None if label in (None, NO_LABELS) else label,
        input_shape=shape,
        max_bytes=limit,
    )


def _training_data(
    data: pe.EvalData, shape: tuple[int, ...] | None, limit: int
) -> tuple[pe.EvalData, pe.EvalData | None, str]:
    """(evaluation data, training data or None, how the description names it), as the form says."""
    train = st.session_state.get(keys.UPLOAD_TRAIN_SOURCE, "none")
    if train == "split":
        evaluation, training = split_data(data)
        return (
            evaluation,
            training,
            (
                f"; {len(training):,} of those examples were set aside as training data, so accuracy is measured "
                f"on the other {len(evaluation):,}"
            ),
        )
    if train == "file":
        train_file = uploaded(keys.UPLOAD_TRAIN_FILE)
        if train_file is None:
            raise pe.DataError("Choose a training file, or pick another choice under “Training or calibration data”.")
        training = _read_data(train_file, shape, limit)
        return data, training, f"; training data: {len(training):,} examples from {train_file.name}"
    return data, None, ""


def split_data(data: pe.EvalData, seed: int = SPLIT_SEED) -> tuple[pe.EvalData, pe.EvalData]:
    """(evaluation, training): a random half of the examples each (the evaluation half gets the odd one)."""
    if len(data) < 2:
        raise pe.DataError("Splitting needs at least two evaluation examples; upload a training file instead.")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    held_out = order[: len(data) // 2].sort().values
    kept = order[len(data) // 2 :].sort().values

    def part(indices: torch.Tensor) -> pe.EvalData:
        return pe.EvalData(data.inputs[indices], None if data.labels is None else data.labels[indices])

    return part(kept), part(held_out)


def _model_text(file_format: str, architecture: str | None) -> str:
    kind = pe.loading.FORMAT_NAMES.get(file_format, file_format)
    if file_format in ("safetensors", "torch_save", "torch_legacy") and architecture is not None:
        return f"a {kind} in architecture {architecture}"
    return f"a {kind}"
