"""Loading a Hugging Face transformers model folder without running any code from it.

A folder (a local directory, or a zip of one) holds `config.json`, weights as
`model.safetensors` or `pytorch_model.bin` (either sharded, with its `.index.json`) and,
optionally, tokenizer files. The model is built by `transformers` from the class the
config names in `architectures`, looked up among the classes transformers itself ships
for the config's `model_type`; `.bin` weights are read with `weights_only=True`.

Nothing from the folder is ever run: a config with an `auto_map` (code shipped beside
the weights, what `trust_remote_code=True` would import), a `model_type` or class
transformers does not ship, or a tokenizer that needs custom code is refused with a
sentence before any weights are read. A zip is expanded only as far as its declared
sizes allow (at most `max_bytes` in all; `zipfile` yields no more than an entry declares
and refuses an entry whose content does not match its CRC), and
only files of the kinds above are taken from it; anything else (`*.py` included) is
left in the archive.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from ..jsontext import loads
from .files import DEFAULT_MAX_BYTES, Source, megabytes, read_blob, short
from .hf_model import CLASSIFICATION, EMBEDDING, IMAGE_CLASSIFICATION, LANGUAGE_MODEL, TransformersModel

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHT_FILE_PATTERN = re.compile(
    r"^(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)$|^(model\.safetensors|pytorch_model\.bin)\.index\.json$"
)
"""Weight files and shard indexes, as `save_pretrained` names them."""
EXTRA_FILES = frozenset(
    {
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "spiece.model",
        "sentencepiece.bpe.model",
        "chat_template.jinja",
        "preprocessor_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
    }
)
"""Files besides config and weights taken from a folder: tokenizer, generation and sentence-transformers files."""
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")
"""A folder holds a tokenizer when it has one of these."""
MAX_CONFIG_BYTES = 4 << 20
"""Largest config.json or tokenizer_config.json read (real ones are a few kB)."""
MAX_ENTRIES = 10_000
"""Most entries a zipped folder may list."""

TASK_MAPPINGS = (
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", LANGUAGE_MODEL),
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", CLASSIFICATION),
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", IMAGE_CLASSIFICATION),
    ("MODEL_MAPPING_NAMES", EMBEDDING),
)
"""transformers' auto-class tables (model_type → class name) searched for the config's class, in order."""
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_REMOTE_CODE = (
    "PruneScope never runs code that comes with a model: load a model whose architecture transformers itself "
    "ships (BERT, GPT-2, Llama, ViT, …), saved with save_pretrained."
)


def is_model_folder(source: Source) -> bool:
    """Whether `source` is a local directory holding a config.json (a transformers model folder)."""
    return isinstance(source, (str, os.PathLike)) and Path(source).is_dir() and (Path(source) / CONFIG_FILE).is_file()


def zip_holds_model_folder(names: list[str]) -> bool:
    """Whether zip entry `names` hold a config.json at the top or in one top-level folder."""
    return _folder_prefix(names) is not None


def load_transformers_folder(source: Source, max_bytes: int = DEFAULT_MAX_BYTES) -> TransformersModel:
    """A transformers model folder (a directory path, or a zip of the folder as bytes or a path), built
    by transformers from its config, in eval mode on the CPU. Refuses a folder that needs code of its own."""
    for variable in OFFLINE_VARIABLES:
        os.environ.setdefault(variable, "1")
    with tempfile.TemporaryDirectory(prefix="prunescope-hf-") as directory:
        folder = _folder(source, Path(directory), max_bytes)
        config = _safe_config(folder)
        model_class, task = _model_class(config)
        tokenizer = _tokenizer(folder)
        model = _from_pretrained(model_class, folder, config)
        files = {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.relative_to(folder).as_posix() in EXTRA_FILES
        }
    _linear_conv1d(model)
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    if pad is None and task != LANGUAGE_MODEL:
        pad = getattr(config, "pad_token_id", None)
    wrapper = TransformersModel(model, task, pad_token_id=pad, tokenizer=tokenizer, folder_files=files)
    return wrapper.eval()


def _folder(source: Source, directory: Path, max_bytes: int) -> Path:
    """The folder to read: a directory as it is (its files size-checked), or a zip expanded into `directory`."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        folder = Path(source)
        if not (folder / CONFIG_FILE).is_file():
            raise ModelLoadError(f"{str(folder)!r} is a folder without a config.json, so not a transformers model.")
        total = sum(path.stat().st_size for path in folder.iterdir() if path.is_file() and _wanted(path.name))
        if total > max_bytes:
            raise ModelLoadError(
                f"The model folder holds {megabytes(total)}; the limit is {megabytes(max_bytes)}. Use a smaller model."
            )
        return folder
    blob = read_blob(source, max_bytes)
    target = directory / "model"
    try:
        with blob.open() as file, zipfile.ZipFile(file) as archive:
            _extract(archive, target, max_bytes)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as error:
        raise ModelLoadError(
            f"The zipped model folder is corrupt or truncated ({short(error)}); zip it again."
        ) from error
    return target


def _extract(archive: zipfile.ZipFile, target: Path, max_bytes: int) -> None:
    """Expand the folder's config, weight and tokenizer files, never more than their declared sizes
    (at most `max_bytes` in all) and never outside `target`."""
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) > MAX_ENTRIES:
        raise ModelLoadError(f"The archive lists {len(infos):,} files; a model folder has a few. Zip only the folder.")
    prefix = _folder_prefix([info.filename for info in infos])
    if prefix is None:
        raise ModelLoadError(
            "This zip archive holds no config.json (at its top or in one folder), so it is not a transformers model "
            "folder. Zip the folder save_pretrained wrote (config.json, model.safetensors, tokenizer files)."
        )
    chosen = []
    for info in infos:
        name = info.filename[len(prefix) :]
        if name == CONFIG_FILE or _wanted(name):
            chosen.append((info, name))
        else:
            logger.info("Left %r in the archive: not a file a transformers model folder needs.", info.filename)
    declared = sum(info.file_size for info, _ in chosen)
    if declared > max_bytes:
        raise ModelLoadError(
            f"The archive expands to {megabytes(declared)}; the limit is {megabytes(max_bytes)}. Use a smaller model."
        )
    for info, name in chosen:
        path = target / PurePosixPath(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as entry, open(path, "wb") as out:
            shutil.copyfileobj(entry, out)  # zipfile yields at most the declared size, then checks the CRC


def _folder_prefix(names: list[str]) -> str | None:
    """'' when config.json is at the archive's top, 'folder/' when in one top-level folder, else None."""
    if CONFIG_FILE in names:
        return ""
    tops = {name.split("/", 1)[0] for name in names if "/" in name and not name.startswith("__MACOSX/")}
    if len(tops) == 1:
        top = tops.pop()
        if f"{top}/{CONFIG_FILE}" in names:
            return f"{top}/"
    return None


def _wanted(name: str) -> bool:
    return name in EXTRA_FILES or bool(WEIGHT_FILE_PATTERN.match(name))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelLoadError(f"The folder's {what} is {megabytes(path.stat().st_size)}, far more than a real one.")
    value = loads(path.read_bytes(), f"The folder's {what}", ModelLoadError)
    if not isinstance(value, dict):
        raise ModelLoadError(f"The folder's {what} is not a JSON object; save the model again with save_pretrained.")
    return value


def _safe_config(folder: Path) -> Any:
    """The model's config, built by transformers' own config class for its `model_type`; refused when
    it asks for code shipped with the model."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    raw = _read_json(folder / CONFIG_FILE, CONFIG_FILE)
    if "auto_map" in raw or raw.get("trust_remote_code"):
        names = ", ".join(sorted(map(str, raw.get("auto_map", {}) or {}))) or "trust_remote_code"
        raise ModelLoadError(
            f"This model's config.json asks for code shipped with the model ({names}), which transformers would "
            f"only load with trust_remote_code=True. {_REMOTE_CODE}"
        )
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ModelLoadError(
            f"config.json names model_type {model_type!r}, which is not an architecture transformers ships, so it "
            f"would need the model's own code. {_REMOTE_CODE}"
        )
    try:
        return CONFIG_MAPPING[model_type].from_dict(raw)
    except Exception as error:  # a config transformers itself cannot read
        raise ModelLoadError(f"transformers cannot read this config.json: {short(error)}") from error


def _model_class(config: Any) -> tuple[type[nn.Module], str]:
    """The transformers class the config's `architectures` names, and its task. A class with another
    head (masked LM, token classification, …) is built as its base model, evaluated as an encoder."""
    import transformers
    from transformers.models.auto import modeling_auto

    architectures = getattr(config, "architectures", None) or []
    wanted = architectures[0] if architectures else None
    for table, task in TASK_MAPPINGS:
        names = getattr(modeling_auto, table).get(config.model_type)
        names = (names,) if isinstance(names, str) else tuple(names or ())
        if wanted is None and task == EMBEDDING and names:
            return getattr(transformers, names[0]), task
        if wanted in names:
            return getattr(transformers, wanted), task
    shipped = {
        name
        for table in dir(modeling_auto)
        if table.endswith("MAPPING_NAMES") and table != "CONFIG_MAPPING_NAMES"
        for value in [getattr(modeling_auto, table).get(config.model_type)]
        if value
        for name in ((value,) if isinstance(value, str) else value)
    }
    base = modeling_auto.MODEL_MAPPING_NAMES.get(config.model_type)
    if wanted in shipped and isinstance(base, str):
        logger.info("%s is loaded as its base model %s and evaluated as an encoder.", wanted, base)
        return getattr(transformers, base), EMBEDDING
    raise ModelLoadError(
        f"config.json names the class {wanted!r}, which transformers does not ship for model_type "
        f"{config.model_type!r}; it would need the model's own code. {_REMOTE_CODE}"
    )


def _tokenizer(folder: Path) -> Any:
    """The folder's tokenizer, or None when it has no tokenizer files; refused when it needs custom code."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    settings_path = folder / "tokenizer_config.json"
    settings = _read_json(settings_path, "tokenizer_config.json") if settings_path.is_file() else {}
    if "auto_map" in settings:
        raise ModelLoadError(
            f"This model's tokenizer_config.json asks for tokenizer code shipped with the model. {_REMOTE_CODE}"
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except Exception as error:  # a tokenizer class or file transformers cannot read
        raise ModelLoadError(
            f"The folder's tokenizer files cannot be read by transformers ({type(error).__name__}: {short(error)}). "
            "Remove them to load the model without a tokenizer, or save the tokenizer again with save_pretrained."
        ) from error


def _from_pretrained(model_class: type[nn.Module], folder: Path, config: Any) -> nn.Module:
    """The model with the folder's weights: safetensors, or .bin read weights-only, sharded or not."""
    if not any(WEIGHT_FILE_PATTERN.match(path.name) for path in folder.iterdir()):
        raise ModelLoadError(
            "The model folder holds no weights: add model.safetensors (or pytorch_model.bin, or the shards with "
            "their .index.json) as save_pretrained writes them."
        )
    try:
        model = model_class.from_pretrained(
            str(folder),
            config=config,
            local_files_only=True,
            trust_remote_code=False,
            weights_only=True,
            dtype=torch.float32,
        )
    except Exception as error:  # corrupt, truncated, hostile or mismatched weights fail inside transformers
        raise ModelLoadError(
            f"transformers could not load the folder's weights into {model_class.__name__} "
            f"({type(error).__name__}: {short(error)}). Check that they were saved from this config with "
            "save_pretrained; .bin files are read as plain tensors only."
        ) from error
    return model.eval()


def _linear_conv1d(model: nn.Module) -> None:
    """Replace transformers' `Conv1D` layers (GPT-2's transposed linear layers) by equivalent `nn.Linear`
    in place, so the engine sees them as the Linear layers they are; the export transposes them back."""
    from transformers.pytorch_utils import Conv1D

    for name, module in list(model.named_modules()):
        if not isinstance(module, Conv1D):
            continue
        linear = nn.Linear(module.nx, module.nf, dtype=module.weight.dtype, device=module.weight.device)
        with torch.no_grad():
            linear.weight.copy_(module.weight.T)
            linear.bias.copy_(module.bias)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, linear)
