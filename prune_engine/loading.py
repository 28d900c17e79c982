"""Load user models and evaluation data safely.

A model file is recognised by its content, never by its name. Weights-only formats
(safetensors, a `torch.save` of a state_dict read with `weights_only=True`) are loaded
into an architecture chosen from the registry (`prune_engine.architectures`). Formats
that carry code (TorchScript, `torch.export` programs, whole pickled modules) run or
deserialize that code while loading, so they are refused unless the caller passes
`allow_code=True` for a file it trusts (the app does so only when the operator sets
`PRUNESCOPE_ALLOW_CODE=1`). Every failure a user can cause raises a `PruneScopeError`.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import safetensors
import safetensors.torch
import torch
from torch import nn

from .architectures import ENV_VAR as ARCHITECTURES_ENV_VAR
from .architectures import build_architecture, list_architectures
from .data import EvalData
from .errors import DataError, ModelLoadError, PruneScopeError, UnsupportedModelError
from .export import fold_pruning_masks, rebuild_from_sidecar, sidecar_shapes
from .metrics import eval_mode

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1 << 30
"""Largest model or data file read by default (1 GiB); pass `max_bytes` to change it."""

ALLOW_CODE_ENV_VAR = "PRUNESCOPE_ALLOW_CODE"
"""Environment variable the operator sets to 1 to let the app load code-carrying model files."""

Source = str | os.PathLike | bytes | bytearray | memoryview
ArchitectureSpec = str | nn.Module | Callable[[], nn.Module] | None

STATE_DICT_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
"""Checkpoint keys under which a state_dict is commonly nested; unwrapped in this order."""

STRIPPED_KEY_PREFIXES = ("module.", "_orig_mod.")
"""Key prefixes added by DataParallel/DistributedDataParallel and torch.compile; removed on load."""

FORMAT_NAMES = {
    "safetensors": "safetensors file",
    "torch_save": "PyTorch checkpoint (torch.save)",
    "torch_legacy": "legacy PyTorch checkpoint (torch.save, pre-1.6 format)",
    "torchscript": "TorchScript archive",
    "torch_export": "torch.export program (.pt2)",
    "pickle": "Python pickle",
    "onnx": "ONNX model",
    "zip": "zip archive",
    "hdf5": "HDF5 file",
    "numpy": "NumPy array file",
    "gguf": "GGUF file",
    "text": "text file",
    "unknown": "file of unknown format",
}
"""Format name (as returned by `detect_format`) → what to call it in a sentence."""

_ACCEPTED = (
    "PruneScope reads safetensors files and PyTorch state_dicts saved with torch.save (.pt/.pth) "
    "together with an architecture; TorchScript, torch.export (.pt2) and whole pickled models "
    "only when code loading is allowed."
)
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_SAFETENSORS_MAX_HEADER = 100_000_000
_MAX_HEADER_SCAN = 4096
_TOO_SMALL = 16
_ONNX_SECOND_FIELD_TAGS = (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)


class StateDictMismatchError(ModelLoadError):
    """A state_dict's keys or shapes do not match the chosen architecture.

    `table` is a `pandas.DataFrame` with columns key, problem ("missing", "unexpected"
    or "shape mismatch"), expected_shape and file_shape, one row per problem.
    """

    def __init__(self, message: str, table: pd.DataFrame) -> None:
        super().__init__(message)
        self.table = table


def code_loading_allowed() -> bool:
    """Whether the operator allowed code-carrying model files (`PRUNESCOPE_ALLOW_CODE=1`)."""
    return os.environ.get(ALLOW_CODE_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


# --- reading a source -----------------------------------------------------------------


@dataclass(frozen=True)
class _Blob:
    """A file or an in-memory byte string, size-checked, read only as far as needed."""

    path: Path | None
    data: bytes | None
    size: int

    def head(self, count: int) -> bytes:
        if self.data is not None:
            return self.data[:count]
        with open(self.path, "rb") as file:
            return file.read(count)

    def open(self) -> IO[bytes]:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        return self.path.read_bytes()


def _blob(source: Source, max_bytes: int, what: str = "file") -> _Blob:
    """Check type, existence and size of `source` before anything reads it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        blob = _Blob(None, data, len(data))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise _error_for(what, f"There is no {what} at {str(path)!r}.")
        if not path.is_file():
            raise _error_for(what, f"{str(path)!r} is a folder, not a {what}.")
        blob = _Blob(path, None, os.path.getsize(path))
    else:
        raise _error_for(what, f"Give a file path or bytes, not {type(source).__name__}.")
    if blob.size > max_bytes:
        raise _error_for(
            what, f"The {what} is {_megabytes(blob.size)}; the limit is {_megabytes(max_bytes)}. Use a smaller {what}."
        )
    if blob.size == 0:
        raise _error_for(what, f"The {what} is empty (0 bytes); it may not have finished uploading.")
    return blob


def _error_for(what: str, message: str) -> ModelLoadError | DataError:
    return ModelLoadError(message) if what == "file" else DataError(message)


def _megabytes(size: int) -> str:
    value = size / 1e6
    return f"{value:.{1 if value >= 10 else 2 if value >= 1 else 3}f} MB"


# --- format detection -----------------------------------------------------------------


def detect_format(source: Source, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The format of a model file, from its content: a key of `FORMAT_NAMES`."""
    return _detect(_blob(source, max_bytes), max_bytes)


def _detect(blob: _Blob, max_bytes: int) -> str:
    head = blob.head(_MAX_HEADER_SCAN)
    if _looks_like_safetensors(head):
        return "safetensors"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(blob, max_bytes)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch_legacy" if _is_legacy_torch(head) else "pickle"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if head.startswith(b"GGUF"):
        return "gguf"
    if _looks_like_onnx(head):
        return "onnx"
    if _looks_like_text(head):
        return "text"
    return "unknown"


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    header_size = int.from_bytes(head[:8], "little")
    return 2 <= header_size <= _SAFETENSORS_MAX_HEADER and head[8:9] == b"{"


def _zip_kind(blob: _Blob, max_bytes: int) -> str:
    try:
        with blob.open() as file, zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ModelLoadError(
            "The file starts like a zip archive (as PyTorch checkpoints do) but the archive is corrupt or "
            "truncated; it may not have finished uploading. Save or upload it again."
        ) from error
    expanded = sum(info.file_size for info in infos)
    if expanded > max_bytes:
        raise ModelLoadError(
            f"The archive expands to {_megabytes(expanded)}; the limit is {_megabytes(max_bytes)}. Use a smaller file."
        )
    entries = {info.filename.split("/", 1)[1] if "/" in info.filename else info.filename for info in infos}
    if "constants.pkl" in entries or any(entry.startswith("code/") for entry in entries):
        return "torchscript"
    if "archive_format" in entries or any(entry.startswith("models/") for entry in entries):
        return "torch_export"
    if "data.pkl" in entries:
        return "torch_save"
    return "zip"


def _is_legacy_torch(head: bytes) -> bool:
    """Whether a pickle stream starts with the magic number of torch's pre-1.6 format (parsed, not run)."""
    try:
        for opcode, argument, _ in pickletools.genops(io.BytesIO(head)):
            if opcode.name in ("PROTO", "FRAME"):
                continue
            return opcode.name in ("LONG1", "LONG4") and argument == _LEGACY_TORCH_MAGIC
    except (ValueError, EOFError):
        return False
    return False


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto starts with ir_version (field 1, varint), then another known field."""
    return (
        len(head) >= 3
        and head[0] == 0x08
        and 1 <= head[1] <= 0x20
        and head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if len(head) < _MAX_HEADER_SCAN or error.start < len(head) - 4:
            return False
        text = head[: error.start].decode("utf-8")  # a multi-byte character cut at the end of the sample
    return bool(text) and all(character.isprintable() or character in "\t\r\n\f" for character in text)


def _text_kind(head: bytes) -> str:
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if text.startswith(("{", "[")):
        return "a JSON text file"
    first_line = text.split("\n", 1)[0]
    if "," in first_line or "\t" in first_line or ";" in first_line:
        return "a CSV/text table"
    return "a text file"


# --- models ---------------------------------------------------------------------------


def load_model(
    source: Source,
    architecture: ArchitectureSpec = None,
    allow_code: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sidecar: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Load a model from a file path or bytes, in eval mode, on the CPU.

    `architecture` (a registered name, a model instance — copied, never changed — or a
    zero-argument factory) receives the weights of a safetensors file or state_dict;
    `sidecar` (the architecture.json exported with a channel-pruned model) resizes it
    first. TorchScript, torch.export programs and whole pickled models need
    `allow_code=True`: loading them runs code from the file, so only for trusted files.
    """
    blob = _blob(source, max_bytes)
    fmt = _detect(blob, max_bytes)
    if fmt == "safetensors":
        return _into_architecture(_read_safetensors(blob), architecture, sidecar, fmt)
    if fmt in ("torch_save", "torch_legacy"):
        loaded = _torch_load(blob, allow_code, fmt)
        module = _module_in(loaded)
        if module is not None:
            return _ready(module)
        return _into_architecture(_state_dict_from(loaded), architecture, sidecar, fmt)
    if fmt == "torchscript":
        _require_code(allow_code, fmt, "runs TorchScript code stored in the file")
        return _ready(_call_loader(_jit_load, blob, fmt))
    if fmt == "torch_export":
        _require_code(allow_code, fmt, "deserializes a program stored in the file")
        program = _call_loader(torch.export.load, blob, fmt)
        return _ready(program.module(), frozen_mode=True)
    if fmt == "pickle":
        _require_code(allow_code, fmt, "runs whatever code the pickle names")
        loaded = _call_loader(pickle.load, blob, fmt)
        module = _module_in(loaded)
        if module is not None:
            return _ready(module)
        return _into_architecture(_state_dict_from(loaded), architecture, sidecar, fmt)
    raise _unreadable(fmt, blob)


def _unreadable(fmt: str, blob: _Blob) -> PruneScopeError:
    if blob.size < _TOO_SMALL and fmt in ("text", "unknown"):
        return ModelLoadError(f"The file is only {blob.size} bytes, too small to be a model; it may be truncated.")
    if fmt == "onnx":
        return UnsupportedModelError(
            "This is an ONNX model. ONNX models can be exported but not loaded for pruning yet; "
            "upload the PyTorch weights (safetensors or a state_dict) instead."
        )
    if fmt == "text":
        return ModelLoadError(f"This is {_text_kind(blob.head(_MAX_HEADER_SCAN))}, not a model. {_ACCEPTED}")
    if fmt == "zip":
        return ModelLoadError(
            f"This is a zip archive but not a PyTorch file (no data.pkl, code/ or models/ entries). {_ACCEPTED}"
        )
    if fmt in ("hdf5", "numpy", "gguf"):
        return ModelLoadError(f"This is a {FORMAT_NAMES[fmt]}, which PruneScope cannot load as a model. {_ACCEPTED}")
    return ModelLoadError(f"The file's format is not recognised (it may be corrupt). {_ACCEPTED}")


def _require_code(allow_code: bool, fmt: str, action: str) -> None:
    if allow_code:
        return
    raise ModelLoadError(
        f"This is a {FORMAT_NAMES[fmt]}. Loading it {action}, which could harm this machine (read, change or "
        "send files), so PruneScope refuses it by default. If you trust the file, the operator can set "
        f"{ALLOW_CODE_ENV_VAR}=1 for the app, or a script can pass allow_code=True to load_model. "
        "Safer: save model.state_dict() (or safetensors) and load it with an architecture."
    )


def _jit_load(file: IO[bytes]) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, yet still how TorchScript loads
        return torch.jit.load(file, map_location="cpu")


def _call_loader(loader: Callable[[IO[bytes]], Any], blob: _Blob, fmt: str) -> Any:
    try:
        with blob.open() as file:
            return loader(file)
    except Exception as error:  # a corrupt or hostile file can fail anywhere inside the library
        raise ModelLoadError(
            f"This {FORMAT_NAMES[fmt]} could not be loaded ({type(error).__name__}: {_short(error)}); "
            "it may be corrupt, truncated, or need code this app does not have."
        ) from error


def _torch_load(blob: _Blob, allow_code: bool, fmt: str) -> Any:
    """`torch.load` with `weights_only=True`; the full unpickler only when code is allowed."""
    try:
        with blob.open() as file:
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.findall(r"GLOBAL\s+([\w.]+)", str(error))
        if not found:
            raise ModelLoadError(
                f"This {FORMAT_NAMES[fmt]} could not be read: its pickle data is corrupt or uses features "
                "PruneScope does not read safely. Save it again with torch.save(model.state_dict(), path)."
            ) from error
        if not allow_code:
            raise ModelLoadError(
                f"This {FORMAT_NAMES[fmt]} holds Python objects, not only tensors (it refers to {found[0]}), "
                "e.g. a whole model saved with torch.save(model). Loading it would run code named in the file, "
                "which could harm this machine, so PruneScope refuses it by default. If you trust the file, the "
                f"operator can set {ALLOW_CODE_ENV_VAR}=1 for the app, or a script can pass allow_code=True to "
                "load_model. Safer: save model.state_dict() and load it with an architecture."
            ) from error
    except Exception as error:  # corrupt archives fail in many ways inside torch
        raise ModelLoadError(
            f"This {FORMAT_NAMES[fmt]} is corrupt or truncated ({type(error).__name__}: {_short(error)}); "
            "save or upload it again."
        ) from error
    return _call_loader(lambda file: torch.load(file, map_location="cpu", weights_only=False), blob, fmt)


def _short(error: Exception, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _module_in(loaded: Any) -> nn.Module | None:
    """A whole model in a loaded object: the object itself, or under a checkpoint's "model" key."""
    if isinstance(loaded, nn.Module):
        return loaded
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), nn.Module):
        return loaded["model"]
    return None


def _ready(model: nn.Module, frozen_mode: bool = False) -> nn.Module:
    """Put a loaded model in eval mode; exported programs refuse `.eval()`, so set the flag directly."""
    if frozen_mode:
        for module in model.modules():
            module.training = False
        return model
    return model.eval()


def _read_safetensors(blob: _Blob) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after checking its header gives a sentence for each defect."""
    header_size = int.from_bytes(blob.head(8), "little")
    if 8 + header_size > blob.size:
        raise ModelLoadError(
            f"This safetensors file is truncated: its header alone should be {header_size} bytes but the file has "
            f"{blob.size} bytes. Upload it again."
        )
    try:
        header = json.loads(blob.head(8 + header_size)[8:])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError("This safetensors file has a corrupt header (not valid JSON); save it again.") from error
    if not isinstance(header, dict):
        raise ModelLoadError("This safetensors file has a corrupt header (not a JSON object); save it again.")
    tensors = {name: info for name, info in header.items() if name != "__metadata__"}
    if not tensors:
        raise ModelLoadError("This safetensors file holds no tensors; export the model's weights into it.")
    try:
        data_end = max(int(info["data_offsets"][1]) for info in tensors.values())
    except (TypeError, KeyError, IndexError, ValueError) as error:
        raise ModelLoadError("This safetensors file has a corrupt header (bad data offsets); save it again.") from error
    if 8 + header_size + data_end > blob.size:
        raise ModelLoadError(
            f"This safetensors file is truncated: it should be {8 + header_size + data_end} bytes but has "
            f"{blob.size}. Upload it again."
        )
    try:
        if blob.path is not None:
            return safetensors.torch.load_file(blob.path, device="cpu")
        return safetensors.torch.load(blob.data)
    except Exception as error:  # SafetensorError and friends on a corrupt file
        raise ModelLoadError(f"This safetensors file is corrupt ({_short(error)}); save it again.") from error


def _state_dict_from(loaded: Any) -> dict[str, torch.Tensor]:
    """The state_dict in a loaded checkpoint: unwrapped, prefixes stripped, pruning masks folded in."""
    for _ in range(len(STATE_DICT_WRAPPER_KEYS)):
        if not isinstance(loaded, Mapping):
            break
        nested = next((loaded[key] for key in STATE_DICT_WRAPPER_KEYS if isinstance(loaded.get(key), Mapping)), None)
        if nested is None:
            break
        loaded = nested
    if not isinstance(loaded, Mapping):
        raise ModelLoadError(
            f"The file holds a {type(loaded).__name__}, not a state_dict (parameter name → tensor). "
            "Save it with torch.save(model.state_dict(), path)."
        )
    if not loaded:
        raise ModelLoadError("The file's state_dict holds no tensors; save the model's state_dict into it.")
    bad = [f"{key} ({type(value).__name__})" for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if bad or not all(isinstance(key, str) for key in loaded):
        shown = ", ".join(bad[:5]) + (" …" if len(bad) > 5 else "") if bad else "non-text keys"
        raise ModelLoadError(
            f"The checkpoint holds values that are not tensors: {shown}. PruneScope expects a state_dict "
            f"(parameter name → tensor), optionally nested under {', '.join(map(repr, STATE_DICT_WRAPPER_KEYS))}."
        )
    state = dict(loaded)
    for prefix in STRIPPED_KEY_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return fold_pruning_masks(state)


def _instantiate(architecture: ArchitectureSpec, fmt: str) -> nn.Module:
    if architecture is None:
        known = ", ".join(list_architectures()) or "none registered"
        raise ModelLoadError(
            f"This {FORMAT_NAMES[fmt]} holds only weights, not the model's code; choose the architecture it was "
            f"saved from ({known}). To add your own, the operator lists a Python file defining ARCHITECTURES "
            f"in {ARCHITECTURES_ENV_VAR}."
        )
    if isinstance(architecture, str):
        return build_architecture(architecture)
    if isinstance(architecture, nn.Module):
        try:
            return copy.deepcopy(architecture)
        except Exception as error:  # e.g. a model still carrying torch.nn.utils.prune hooks
            raise ModelLoadError(
                f"The given architecture instance cannot be copied ({_short(error)}); pass a factory instead."
            ) from error
    if callable(architecture):
        try:
            model = architecture()
        except Exception as error:  # caller's factory
            raise ModelLoadError(f"The architecture factory failed: {type(error).__name__}: {error}") from error
        if isinstance(model, nn.Module):
            return model
        raise ModelLoadError(f"The architecture factory returned {type(model).__name__}, not a torch.nn.Module.")
    raise ModelLoadError(
        f"An architecture is a registered name, a model or a factory, not {type(architecture).__name__}."
    )


def _into_architecture(
    state: dict[str, torch.Tensor],
    architecture: ArchitectureSpec,
    sidecar: Mapping[str, Any] | None,
    fmt: str,
) -> nn.Module:
    model = _instantiate(architecture, fmt)
    if sidecar is not None:
        _check_sidecar_matches(sidecar, state, model)
        model = rebuild_from_sidecar(model, sidecar)
    table = state_dict_mismatches(model, state)
    if len(table):
        raise StateDictMismatchError(_mismatch_message(table, architecture, sidecar is not None), table)
    try:
        model.load_state_dict(state, strict=True)
    except Exception as error:  # e.g. a dtype that cannot be copied into the parameter
        raise ModelLoadError(f"The weights could not be loaded into the architecture: {_short(error)}") from error
    return model.eval()


def _check_sidecar_matches(sidecar: Mapping[str, Any], state: Mapping[str, torch.Tensor], model: nn.Module) -> None:
    """Every tensor the sidecar resizes must have that shape in the file, so resizing never
    allocates more than the (size-checked) file holds."""
    current = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    for key, shape in sidecar_shapes(sidecar).items():
        if current.get(key) == shape:
            continue
        if key not in state or tuple(state[key].shape) != shape:
            found = "absent" if key not in state else _shape(tuple(state[key].shape))
            raise ModelLoadError(
                f"architecture.json does not belong to this weights file: it gives {key} as {_shape(shape)}, "
                f"but in the file it is {found}."
            )


def state_dict_mismatches(model: nn.Module, state: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Keys missing from or unexpected in `state`, and shape mismatches, against `model`'s state_dict."""
    expected = model.state_dict()
    rows = []
    for key, tensor in expected.items():
        if key not in state:
            if not key.endswith("num_batches_tracked"):  # torch fills it in for old checkpoints
                rows.append((key, "missing", tuple(tensor.shape), None))
        elif tuple(state[key].shape) != tuple(tensor.shape):
            rows.append((key, "shape mismatch", tuple(tensor.shape), tuple(state[key].shape)))
    rows += [(key, "unexpected", None, tuple(state[key].shape)) for key in state if key not in expected]
    return pd.DataFrame(rows, columns=["key", "problem", "expected_shape", "file_shape"])


def _mismatch_message(table: pd.DataFrame, architecture: ArchitectureSpec, used_sidecar: bool) -> str:
    name = repr(architecture) if isinstance(architecture, str) else "the chosen architecture"
    counts = table["problem"].value_counts()
    parts = [
        f"{counts[problem]} {problem}" for problem in ("missing", "unexpected", "shape mismatch") if problem in counts
    ]
    message = f"The weights do not fit {name}: {', '.join(parts)}."
    shapes = table[table["problem"] == "shape mismatch"]
    if len(shapes):
        first = shapes.iloc[0]
        message += (
            f" For example {first['key']} is {_shape(first['expected_shape'])} in the architecture "
            f"but {_shape(first['file_shape'])} in the file."
        )
        if not used_sidecar:
            message += " If the model was channel-pruned, load it with the architecture.json exported next to it."
    elif counts.get("missing", 0) and counts.get("unexpected", 0):
        message += " The file was probably saved from a different architecture."
    return message


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) if shape else "a scalar"


# --- evaluation data ------------------------------------------------------------------

INPUT_KEYS = ("inputs", "x", "X")
LABEL_KEYS = ("labels", "y", "Y")
DATA_EXTENSIONS = (".safetensors", ".pt", ".pth", ".npz", ".npy", ".csv")


def load_eval_data(
    source: Source,
    *,
    filename: str | None = None,
    label_column: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> EvalData:
    """Evaluation data from a file; its extension (of `filename`, else of the path) decides the format.

    `.safetensors`/`.pt`/`.pth` (tensors `inputs`, optional `labels`; .pt read with
    `weights_only=True`), `.npz` (arrays `inputs`/`labels` or `x`/`y`), `.npy` (inputs
    only) and `.csv` (numeric feature columns; `label_column` names the labels). Float
    inputs become float32; integer labels int64. `input_shape` reshapes each example,
    e.g. (1, 8, 8) for 64 pixel columns.
    """
    if filename is None:
        if not isinstance(source, (str, os.PathLike)):
            raise DataError("Give the data file's name (filename=...) so its format can be told from its extension.")
        filename = Path(source).name
    extension = Path(filename).suffix.lower()
    if extension not in DATA_EXTENSIONS:
        raise DataError(
            f"{filename!r} has an unsupported extension; evaluation data can be {', '.join(DATA_EXTENSIONS)}."
        )
    blob = _blob(source, max_bytes, what="data file")
    if extension == ".csv":
        inputs, labels = _read_csv(blob, filename, label_column)
    else:
        if label_column is not None:
            raise DataError("label_column applies to CSV files only; tensor files name their labels 'labels' or 'y'.")
        inputs, labels = _read_tensor_file(blob, filename, extension)
    inputs = _as_inputs(inputs, input_shape)
    labels = None if labels is None else _as_labels(labels)
    return EvalData(inputs, labels)


def _read_tensor_file(blob: _Blob, filename: str, extension: str) -> tuple[Any, Any]:
    try:
        if extension == ".safetensors":
            loaded = safetensors.torch.load(blob.read())
        elif extension in (".pt", ".pth"):
            with blob.open() as file:
                loaded = torch.load(file, map_location="cpu", weights_only=True)
        elif extension == ".npz":
            with blob.open() as file, np.load(file, allow_pickle=False) as archive:
                loaded = {key: archive[key] for key in archive.files}
        else:
            with blob.open() as file:
                loaded = np.load(file, allow_pickle=False)
    except pickle.UnpicklingError as error:
        raise DataError(
            f"{filename!r} holds Python objects other than tensors, which are not loaded for safety; save a dict "
            "of tensors: torch.save({'inputs': x, 'labels': y}, path)."
        ) from error
    except Exception as error:  # corrupt files fail in many ways inside the libraries
        raise DataError(
            f"{filename!r} could not be read as {extension}: it is corrupt or not a {extension} file ({_short(error)})."
        ) from error
    if isinstance(loaded, (torch.Tensor, np.ndarray)):
        return loaded, None
    if isinstance(loaded, (tuple, list)) and len(loaded) in (1, 2):
        return loaded[0], loaded[1] if len(loaded) == 2 else None
    if not isinstance(loaded, Mapping):
        raise DataError(f"{filename!r} holds a {type(loaded).__name__}; save a dict with 'inputs' and 'labels'.")
    inputs_key = next((key for key in INPUT_KEYS if key in loaded), None)
    if inputs_key is None:
        found = ", ".join(map(str, list(loaded)[:10])) or "nothing"
        raise DataError(f"{filename!r} has no 'inputs' (or 'x') entry; it holds: {found}.")
    labels_key = next((key for key in LABEL_KEYS if key in loaded), None)
    return loaded[inputs_key], None if labels_key is None else loaded[labels_key]


def _read_csv(blob: _Blob, filename: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with blob.open() as file:
            frame = pd.read_csv(file)
        if len(frame.columns) and all(_is_number(column) for column in frame.columns):
            with blob.open() as file:  # no header row: the first line is data
                frame = pd.read_csv(file, header=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{filename!r} could not be read as CSV ({_short(error)}).") from error
    frame.columns = [str(column) for column in frame.columns]
    header_lines = 0 if all(_is_number(column) for column in frame.columns) else 1
    if frame.empty:
        raise DataError(f"{filename!r} has no data rows.")
    labels = None
    if label_column is not None:
        if label_column not in frame.columns:
            shown = ", ".join(frame.columns[:10]) + (" …" if len(frame.columns) > 10 else "")
            raise DataError(f"{filename!r} has no column {label_column!r}; its columns are: {shown}.")
        labels = _numeric_column(frame[label_column], label_column, header_lines)
        frame = frame.drop(columns=[label_column])
    if frame.shape[1] == 0:
        raise DataError(f"{filename!r} has no feature columns besides the label column.")
    features = np.stack(
        [_numeric_column(frame[column], column, header_lines) for column in frame.columns], axis=1
    ).astype(np.float32)
    if labels is not None:
        integral = np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
        labels = labels.astype(np.int64) if integral else labels.astype(np.float32)
    return features, labels


def csv_columns(content: bytes) -> list[str]:
    """The names `load_eval_data` gives a CSV's columns (a `label_column` is one of them).

    The header's names, or "0", "1", … when the first line is data; empty when it is no CSV.
    """
    try:
        header = pd.read_csv(io.BytesIO(content), nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return []
    if all(_is_number(name) for name in header):
        return [str(index) for index in range(len(header))]
    return [str(name) for name in header]


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _numeric_column(column: pd.Series, name: str, header_lines: int) -> np.ndarray:
    """A column as float64, or a DataError naming the first cell that is empty or not a number."""
    numeric = pd.to_numeric(column, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        value = column.iloc[row]
        what = "is empty" if pd.isna(value) else f"is {str(value)[:40]!r}, not a number"
        raise DataError(
            f"Column {name!r}, row {row + 1} (line {row + 1 + header_lines} of the file) {what}; "
            "every feature and label cell must be a number."
        )
    return numeric.to_numpy(dtype=np.float64)


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise DataError(f"The {what} are of type {value.dtype}; they must be numbers.")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise DataError(f"The {what} must be a tensor or an array, not {type(value).__name__}.")


def _as_inputs(value: Any, input_shape: tuple[int, ...] | None) -> torch.Tensor:
    inputs = _as_tensor(value, "inputs")
    if inputs.dim() == 0 or inputs.shape[0] == 0:
        raise DataError("The evaluation data holds no examples; give at least one.")
    if inputs.is_floating_point() or inputs.dtype == torch.bool:
        inputs = inputs.float()
        if not torch.isfinite(inputs).all():
            count = int((~torch.isfinite(inputs)).sum())
            raise DataError(f"The inputs contain {count} NaN or infinite values; remove or fill them.")
    elif inputs.is_complex():
        raise DataError("The inputs are complex numbers; give real-valued inputs.")
    else:
        inputs = inputs.long()
    if input_shape is not None:
        per_example = int(np.prod(inputs.shape[1:]))
        if per_example != int(np.prod(input_shape)):
            raise DataError(
                f"Each example has {per_example} values, which cannot be reshaped to {tuple(input_shape)} "
                f"({int(np.prod(input_shape))} values)."
            )
        inputs = inputs.reshape(inputs.shape[0], *input_shape)
    return inputs.contiguous()


def _as_labels(value: Any) -> torch.Tensor:
    labels = _as_tensor(value, "labels")
    if labels.is_complex():
        raise DataError("The labels are complex numbers; give class indices or real-valued targets.")
    if labels.is_floating_point():
        if not torch.isfinite(labels).all():
            raise DataError("The labels contain NaN or infinite values; remove or fill them.")
        return labels.float()
    return labels.long()


def check_data_fits(model: nn.Module, data: EvalData, batch_size: int = 8) -> None:
    """Run the model on a few examples; a DataError with the shapes if it cannot take them.

    Also checks that integer labels are class indices within the model's outputs.
    """
    batch = data.inputs[:batch_size]
    device = next((parameter.device for parameter in model.parameters()), torch.device("cpu"))
    try:
        with eval_mode(model), torch.inference_mode():
            output = model(batch.to(device))
    except Exception as error:  # a shape or dtype mismatch raised anywhere inside the model
        raise DataError(
            f"The model cannot take inputs of shape {tuple(batch.shape)} ({batch.dtype}): {_short(error)}. "
            "Check the data's input shape (input_shape=... reshapes each example)."
        ) from error
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise DataError(f"The model returned {type(output).__name__}, not a tensor; PruneScope needs tensor outputs.")
    if output.dim() == 0 or output.shape[0] != batch.shape[0]:
        raise DataError(
            f"The model returned shape {tuple(output.shape)} for {batch.shape[0]} examples; "
            "its first output dimension must index the examples."
        )
    labels = data.labels
    if labels is None or labels.is_floating_point() or output.dim() < 2:
        return
    classes = int(output.shape[-1])
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise DataError(
            f"The labels range from {low} to {high}, but the model has {classes} outputs (classes 0–{classes - 1}); "
            "labels must be class indices the model can predict."
        )


def random_eval_data(
    input_shape: tuple[int, ...],
    count: int = 64,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> EvalData:
    """Random normal inputs without labels, for latency and fidelity when no data was given."""
    if not dtype.is_floating_point:
        raise DataError(f"Random evaluation data must be floating point, not {dtype}; give real data instead.")
    if count < 1 or any(int(size) < 1 for size in input_shape):
        raise DataError(f"Cannot make {count} random examples of shape {tuple(input_shape)}; use positive sizes.")
    generator = torch.Generator().manual_seed(seed)
    return EvalData(torch.randn((count, *input_shape), generator=generator, dtype=dtype))
