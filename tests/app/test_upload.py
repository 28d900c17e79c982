"""Bringing your own model and data on the Model page, under AppTest: what loads, what is refused and why,
and that a failed upload never costs the user the model (or the pruning) they had."""

from __future__ import annotations

import io
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from prune_engine.data import model_fingerprint
from sample_models import digits_data, load_sample
from tests.app.helpers import metrics, sidebar_text
from ui.model import upload
from ui.shared import keys
from ui.shared.navigation import MODEL_PAGE, PRUNE_PAGE
from workbench import fmt
from workbench.session import LoadedModel

CSV_EXAMPLES = 120


def torch_bytes(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def digits_csv(label_column: str = "label", label_first: bool = False) -> bytes:
    """The first test examples of the digits data as CSV: 64 pixel columns and a label column."""
    test = digits_data()[1]
    frame = pd.DataFrame(test.inputs[:CSV_EXAMPLES].reshape(CSV_EXAMPLES, -1).numpy())
    frame.columns = [f"p{index}" for index in range(frame.shape[1])]
    frame.insert(0 if label_first else frame.shape[1], label_column, test.labels[:CSV_EXAMPLES].numpy())
    return frame.to_csv(index=False).encode()


def choose_files(
    at: AppTest,
    model: tuple[str, bytes],
    architecture: str = "digits_mlp",
    data: tuple[str, bytes] | None = None,
    shape: str = "",
) -> AppTest:
    """Fill in the upload form (without pressing Load): model file, architecture, data file or random inputs."""
    at.file_uploader(key=keys.UPLOAD_MODEL_FILE).upload(*model)
    at.selectbox(key=keys.UPLOAD_ARCHITECTURE).select(architecture)
    if data is None:
        at.radio(key=keys.UPLOAD_DATA_SOURCE).set_value("random")
    else:
        at.file_uploader(key=keys.UPLOAD_DATA_FILE).upload(*data)
    at.text_input(key=keys.UPLOAD_INPUT_SHAPE).input(shape)
    return at.run()


def press_load(at: AppTest) -> AppTest:
    return at.button(key=keys.UPLOAD_LOAD).click().run()


def shown(texts: list[str]) -> str:
    """Messages as a reader sees them: the Markdown escapes of `ui.fmt.literal` removed."""
    return re.sub(r"\\(.)", r"\1", " ".join(texts))


def errors(at: AppTest) -> str:
    return shown([error.value for error in at.error])


def warnings_shown(at: AppTest) -> str:
    return shown([warning.value for warning in at.warning])


def current(at: AppTest) -> LoadedModel:
    return at.session_state[keys.CURRENT_MODEL]


def test_a_state_dict_and_a_csv_with_a_label_column_become_the_current_model(app: AppTest) -> None:
    mlp = load_sample("digits_mlp").model
    at = choose_files(app, ("my_mlp.pt", torch_bytes(mlp.state_dict())), data=("digits.csv", digits_csv()))
    assert at.selectbox(key=keys.UPLOAD_LABEL_COLUMN).value == "label"
    at = press_load(at)
    assert not at.exception
    assert not at.error
    loaded = current(at)
    assert loaded.source == "upload"
    assert loaded.name == "my_mlp.pt"
    assert loaded.fingerprint == model_fingerprint(mlp)
    data = loaded.bundle.eval_data
    assert len(data) == CSV_EXAMPLES and data.has_labels
    expected = pe.evaluate(mlp, digits_data()[1].subset(CSV_EXAMPLES))["accuracy"]
    assert metrics(at)["Accuracy"] == f"{expected * 100:.1f} %"
    assert f"Accuracy measured here on the {CSV_EXAMPLES} labelled examples of the uploaded data." in at.caption.values
    assert shown([success.value for success in at.success]).startswith("Loaded my_mlp.pt: Uploaded as a PyTorch")
    assert "my\\_mlp\\.pt" in sidebar_text(at)


def test_the_label_column_is_chosen_by_the_user_and_one_forward_pass_checks_the_data(app: AppTest) -> None:
    cnn = load_sample("digits_cnn").model
    model = ("cnn.safetensors", safetensors.torch.save(cnn.state_dict()))
    data = ("digits.csv", digits_csv(label_column="digit", label_first=True))
    at = choose_files(app, model, architecture="digits_cnn", data=data)
    assert at.selectbox(key=keys.UPLOAD_LABEL_COLUMN).options[:3] == [upload.NO_LABELS, "digit", "p0"]
    assert at.selectbox(key=keys.UPLOAD_LABEL_COLUMN).value == upload.NO_LABELS

    at = press_load(at)
    assert "The model cannot take inputs of shape (8, 65) (torch.float32)" in errors(at)
    assert current(at).name == "digits_mlp"

    at.selectbox(key=keys.UPLOAD_LABEL_COLUMN).select("digit")
    at = press_load(at)
    assert "cannot take inputs of shape (8, 64)" in errors(at)

    at.text_input(key=keys.UPLOAD_INPUT_SHAPE).input("1, 8, 8")
    at = press_load(at)
    assert not at.exception and not at.error
    loaded = current(at)
    assert loaded.name == "cnn.safetensors"
    assert tuple(loaded.bundle.eval_data.inputs.shape) == (CSV_EXAMPLES, 1, 8, 8)
    assert loaded.bundle.eval_data.labels.tolist() == digits_data()[1].labels[:CSV_EXAMPLES].tolist()


def test_weights_of_another_architecture_show_a_table_of_mismatched_keys(app: AppTest) -> None:
    cnn_state = load_sample("digits_cnn").model.state_dict()
    at = press_load(choose_files(app, ("cnn.pt", torch_bytes(cnn_state)), data=("digits.csv", digits_csv())))
    assert not at.exception
    assert "The weights do not fit 'digits_mlp'" in errors(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["key", "problem", "in the architecture", "in the file"]
    assert set(table.loc[table["problem"] == "missing", "key"]) == {
        f"fc{i}.{p}" for i in (1, 2, 3) for p in ["weight", "bias"]
    }
    assert "conv1.weight" in set(table.loc[table["problem"] == "unexpected", "key"])
    assert table.loc[table["key"] == "conv1.weight", "in the file"].item() == "32×1×3×3"
    assert current(at).name == "digits_mlp"


def test_a_mis_shaped_tensor_is_named_with_both_shapes(app: AppTest) -> None:
    state_dict = load_sample("digits_mlp").model.state_dict()
    state_dict["fc2.weight"] = state_dict["fc2.weight"][:100]
    at = press_load(choose_files(app, ("mlp.pt", torch_bytes(state_dict)), data=("digits.csv", digits_csv())))
    table = at.dataframe[0].value
    row = table[table["problem"] == "shape mismatch"]
    assert row[["key", "in the architecture", "in the file"]].values.tolist() == [["fc2.weight", "128×256", "100×256"]]
    assert "fc2.weight is 128×256 in the architecture but 100×256 in the file" in errors(at)


def torchscript_bytes() -> bytes:
    mlp = load_sample("digits_mlp").model
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(mlp, torch.zeros(1, 1, 8, 8)), buffer)
    return buffer.getvalue()


def test_torchscript_is_refused_with_the_reason_and_the_setting_that_allows_it(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(pe.loading.ALLOW_CODE_ENV_VAR, raising=False)
    at = choose_files(app, ("scripted.pt", torchscript_bytes()), shape="1, 8, 8")
    assert any("are refused: loading them runs code" in caption.value for caption in at.caption)
    at = press_load(at)
    assert "This is a TorchScript archive" in errors(at)
    assert "PRUNESCOPE_ALLOW_CODE=1" in errors(at)
    assert current(at).name == "digits_mlp"


def test_torchscript_loads_when_the_operator_allows_code(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pe.loading.ALLOW_CODE_ENV_VAR, "1")
    sample = metrics(app)
    test = digits_data()[1]
    npz = io.BytesIO()
    np.savez(npz, inputs=test.inputs.numpy(), labels=test.labels.numpy())
    at = choose_files(app, ("scripted.pt", torchscript_bytes()), data=("digits.npz", npz.getvalue()))
    assert "Code loading is on" in warnings_shown(at)
    at = press_load(at)
    assert not at.exception and not at.error
    loaded = current(at)
    assert loaded.name == "scripted.pt"
    assert isinstance(loaded.bundle.model, torch.jit.ScriptModule)
    assert metrics(at)["Parameters"] == sample["Parameters"]
    assert metrics(at)["Accuracy"] == sample["Accuracy"], "the same weights on the same test split"


def test_random_inputs_need_a_shape_and_come_with_a_warning(app: AppTest) -> None:
    cnn = load_sample("digits_cnn").model
    at = choose_files(app, ("cnn.pt", torch_bytes(cnn.state_dict())), architecture="digits_cnn")
    assert "only **latency** and **fidelity**" in warnings_shown(at)
    at = press_load(at)
    assert "Random inputs need the shape of one example" in errors(at)
    assert current(at).name == "digits_mlp"

    at.text_input(key=keys.UPLOAD_INPUT_SHAPE).input("1×8×8")
    at = press_load(at)
    assert not at.exception and not at.error
    data = current(at).bundle.eval_data
    assert tuple(data.inputs.shape) == (upload.RANDOM_EXAMPLES, 1, 8, 8) and not data.has_labels
    assert "only **latency** and **fidelity**" in warnings_shown(at)
    assert metrics(at)["Accuracy"] == fmt.MISSING
    assert any("Compare measures fidelity" in caption.value for caption in at.caption)


def test_a_failed_upload_keeps_the_model_and_the_pruning_the_user_had(app: AppTest) -> None:
    at = app.switch_page(PRUNE_PAGE).run()
    pruned = at.session_state[keys.PRUNED]
    before = current(at)
    at = at.switch_page(MODEL_PAGE).run()
    refusals = {
        "empty.pt": (b"", "The file is empty (0 bytes)"),
        "noise.pt": (bytes(range(256)) * 8, "The file's format is not recognised"),
        "notes.safetensors": (b"hello, world\nsecond line\n", "This is a CSV/text table, not a model."),
    }
    for name, (content, refusal) in refusals.items():
        at.file_uploader(key=keys.UPLOAD_MODEL_FILE).set_value((name, content, "application/octet-stream"))
        at.radio(key=keys.UPLOAD_DATA_SOURCE).set_value("random")
        at.text_input(key=keys.UPLOAD_INPUT_SHAPE).input("1, 8, 8")
        at = press_load(at.run())
        assert not at.exception
        assert refusal in errors(at)
        assert current(at) is before
        assert at.session_state[keys.PRUNED] is pruned
        assert metrics(at)["Accuracy"].endswith("%")


def test_the_size_limit_shows_the_engines_message(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload, "upload_limit", lambda: 1000)
    mlp = load_sample("digits_mlp").model
    at = press_load(choose_files(app, ("mlp.pt", torch_bytes(mlp.state_dict())), data=("digits.csv", digits_csv())))
    assert "the limit is 0.001 MB. Use a smaller file." in errors(at)
    assert current(at).name == "digits_mlp"


class WritesMarker:
    """Unpickling this calls `open(marker, "w")`: the marker appears only if code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_uploaded_through_the_app_is_refused_and_never_runs(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(pe.loading.ALLOW_CODE_ENV_VAR, raising=False)
    marker = tmp_path / "marker"
    trap_state = dict(load_sample("digits_mlp").model.state_dict(), trap=WritesMarker(marker))
    files = {
        "weights.pt": torch_bytes(trap_state),
        "model.pkl": pickle.dumps(WritesMarker(marker)),
        "data.pt": torch_bytes({"inputs": torch.zeros(4, 1, 8, 8), "labels": WritesMarker(marker)}),
    }
    at = choose_files(app, ("weights.pt", files["weights.pt"]), data=("data.pt", files["data.pt"]))
    at = press_load(at)
    assert "holds Python objects, not only tensors (it refers to io.open)" in errors(at)
    at.file_uploader(key=keys.UPLOAD_MODEL_FILE).set_value(
        ("model.pkl", files["model.pkl"], "application/octet-stream")
    )
    at = press_load(at.run())
    assert "This is a Python pickle" in errors(at)
    plain_weights = torch_bytes(load_sample("digits_mlp").model.state_dict())
    at.file_uploader(key=keys.UPLOAD_MODEL_FILE).set_value(("mlp.pt", plain_weights, "application/octet-stream"))
    at = press_load(at.run())
    assert "holds Python objects other than tensors" in errors(at)
    assert not marker.exists()
    assert current(at).name == "digits_mlp"
    assert current(at).source == "sample"
