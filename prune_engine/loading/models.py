"""Loading a model file: weights-only formats into an architecture, code-carrying formats on request.

Weights-only formats (safetensors, a `torch.save` of a state_dict read with
`weights_only=True`) are loaded into an architecture chosen from the registry
(`prune_engine.architectures`). Formats that carry code (TorchScript, `torch.export`
programs, whole pickled modules) run or deserialize that code while loading, so they are
refused unless the caller passes `allow_code=True` for a file it trusts (the app does so
only when the operator sets `PRUNESCOPE_ALLOW_CODE=1`).
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from typing import IO, Any

import pandas as pd
import safetensors.torch
import torch
from torch import nn

from ..architectures import ENV_VAR as ARCHITECTURES_ENV_VAR
from ..architectures import build_architecture, list_architectures
from ..errors import ModelLoadError, PruneScopeError, UnsupportedModelError
from ..export import fold_pruning_masks, rebuild_from_sidecar, sidecar_shapes
from ..jsontext import loads
from .files import DEFAULT_MAX_BYTES, Blob, Source, read_blob, short
from .formats import FORMAT_NAMES, HEADER_SCAN_BYTES, detect, text_kind
from .hf_folder import is_model_folder, load_transformers_folder

ALLOW_CODE_ENV_VAR = "PRUNESCOPE_ALLOW_CODE"
"""Environment variable the operator sets to 1 to let the app load code-carrying model files."""

ArchitectureSpec = str | nn.Module | Callable[[], nn.Module] | None

STATE_DICT_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
"""Checkpoint keys under which a state_dict is commonly nested; unwrapped in this order."""

STRIPPED_KEY_PREFIXES = ("module.", "_orig_mod.")
"""Key prefixes added by DataParallel/DistributedDataParallel and torch.compile; removed on load."""

_ACCEPTED = (
    "PruneScope reads safetensors files and PyTorch state_dicts saved with torch.save (.pt/.pth) "
    "together with an architecture, and transformers model folders (config.json + weights, zipped); "
    "TorchScript, torch.export (.pt2) and whole pickled models only when code loading is allowed."
)
_TOO_SMALL = 16


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
    A transformers model folder (a directory path, or a zip of it) is built from its config.json
    by transformers (see `hf_folder`); it never runs code from the folder, whatever `allow_code` says.
    """
    if is_model_folder(source):
        return load_transformers_folder(source, max_bytes)
    blob = read_blob(source, max_bytes)
    fmt = detect(blob, max_bytes)
    if fmt == "transformers":
        return load_transformers_folder(blob.path if blob.path is not None else blob.data, max_bytes)
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


def _unreadable(fmt: str, blob: Blob) -> PruneScopeError:
    if blob.size < _TOO_SMALL and fmt in ("text", "unknown"):
        return ModelLoadError(f"The file is only {blob.size} bytes, too small to be a model; it may be truncated.")
    if fmt == "onnx":
        return UnsupportedModelError(
            "This is an ONNX model. ONNX models can be exported but not loaded for pruning yet; "
            "upload the PyTorch weights (safetensors or a state_dict) instead."
        )
    if fmt == "text":
        return ModelLoadError(f"This is {text_kind(blob.head(HEADER_SCAN_BYTES))}, not a model. {_ACCEPTED}")
    if fmt == "zip":
        return ModelLoadError(
            f"This is a zip archive but not a PyTorch file (no data.pkl, code/ or models/ entries), and not a "
            f"transformers model folder either (no config.json). {_ACCEPTED}"
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


def _call_loader(loader: Callable[[IO[bytes]], Any], blob: Blob, fmt: str) -> Any:
    try:
        with blob.open() as file:
            return loader(file)
    except Exception as error:  # a corrupt or hostile file can fail anywhere inside the library
        raise ModelLoadError(
            f"This {FORMAT_NAMES[fmt]} could not be loaded ({type(error).__name__}: {short(error)}); "
            "it may be corrupt, truncated, or need code this app does not have."
        ) from error


def _torch_load(blob: Blob, allow_code: bool, fmt: str) -> Any:
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
            f"This {FORMAT_NAMES[fmt]} is corrupt or truncated ({type(error).__name__}: {short(error)}); "
            "save or upload it again."
        ) from error
    return _call_loader(lambda file: torch.load(file, map_location="cpu", weights_only=False), blob, fmt)


def _module_in(loaded: Any) -> nn.Module | None:
    """A whole model in a loaded object: the object itself, or under a checkpoint's "model" key."""
    if isinstance(loaded, nn.Module):
        return loaded
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), nn.Module):
        return loaded["model"]
    return None


def nonfinite_weights(model: nn.Module) -> dict[str, int]:
    """Parameter and buffer name → how many of its values are NaN or infinite (only those that have any).

    Such a model loads (the file is what it is) but every figure measured on it is suspect, so the
    app warns on the Model page and reports note it per layer.
    """
    counts = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() or tensor.is_complex():
            count = int((~torch.isfinite(tensor.detach())).sum())
            if count:
                counts[name] = count
    return counts


def _refuse_complex(tensors: Mapping[str, torch.Tensor] | nn.Module) -> None:
    """Complex weights would lose their imaginary part (with only a warning) when copied into real layers."""
    named = tensors.state_dict() if isinstance(tensors, nn.Module) else tensors
    complex_names = [name for name, tensor in named.items() if isinstance(tensor, torch.Tensor) and tensor.is_complex()]
    if complex_names:
        shown = ", ".join(name[:80] for name in complex_names[:5]) + (" …" if len(complex_names) > 5 else "")
        raise ModelLoadError(
            f"The model holds complex-valued tensors ({shown}); PruneScope prunes real-valued weights only, "
            "and copying these into real layers would silently drop their imaginary part."
        )


def _ready(model: nn.Module, frozen_mode: bool = False) -> nn.Module:
    """Put a loaded model in eval mode; exported programs refuse `.eval()`, so set the flag directly."""
    _refuse_complex(model)
    if frozen_mode:
        for module in model.modules():
            module.training = False
        return model
    return model.eval()


def _read_safetensors(blob: Blob) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after checking its header gives a sentence for each defect."""
    header_size = int.from_bytes(blob.head(8), "little")
    if 8 + header_size > blob.size:
        raise ModelLoadError(
            f"This safetensors file is truncated: its header alone should be {header_size} bytes but the file has "
            f"{blob.size} bytes. Upload it again."
        )
    header = loads(blob.head(8 + header_size)[8:], "This safetensors file's header", ModelLoadError)
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
        raise ModelLoadError(f"This safetensors file is corrupt ({short(error)}); save it again.") from error


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
                f"The given architecture instance cannot be copied ({short(error)}); pass a factory instead."
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
    _refuse_complex(state)
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
        raise ModelLoadError(f"The weights could not be loaded into the architecture: {short(error)}") from error
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
