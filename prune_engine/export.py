"""Export pruned models, and the architecture sidecar that lets a smaller model be rebuilt.

`export_model` writes one of four formats to bytes. A channel-pruned model has smaller
layers than the architecture it came from, so its state_dict no longer fits a fresh
instance; `architecture_sidecar` records every tensor shape and the constructor
attributes of Conv/Linear/norm layers, and `rebuild_from_sidecar` resizes a fresh,
unpruned instance to those shapes so the pruned weights load into it.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import safetensors.torch
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from .errors import ModelLoadError, PruneScopeError
from .jsontext import loads
from .metrics import eval_mode
from .placement import placement

logger = logging.getLogger(__name__)

EXPORT_FORMATS: dict[str, str] = {
    "state_dict": ".pt",
    "safetensors": ".safetensors",
    "torchscript": ".torchscript.pt",
    "onnx": ".onnx",
    "transformers": ".zip",
}
"""Export format → file extension used in a bundle ("transformers": a zip of a Hugging Face folder)."""

ONNX_OPSET = 17
"""ONNX opset written by `export_model(..., "onnx")`."""

SIDECAR_FORMAT = "prunescope.architecture"
SIDECAR_VERSION = 1

_MODULE_ATTRIBUTES: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Linear: ("in_features", "out_features"),
    _ConvNd: (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
        "padding_mode", "output_padding", "transposed",
    ),
    _BatchNorm: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.LayerNorm: ("normalized_shape", "eps", "elementwise_affine"),
    nn.GroupNorm: ("num_groups", "num_channels", "eps", "affine"),
}  # fmt: skip
"""Module type → constructor-relevant attributes recorded in (and restored from) the sidecar."""


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""First characters that make a spreadsheet read a cell as a formula (with their full-width forms)."""


def csv_text(frame: pd.DataFrame) -> str:
    """`frame` as CSV that is safe to open in a spreadsheet: every text cell (and header) quoted, so a
    carriage return or comma in a layer or run name stays in its cell, and text that a spreadsheet
    would run as a formula (`=1+2`, `@SUM(…)`, `+…`, `-…`) prefixed with `'`. Numbers stay numbers."""
    safe = frame.copy()
    safe.columns = [_defused(str(column)) for column in safe.columns]
    for column in safe.columns:
        if not (pd.api.types.is_numeric_dtype(safe[column]) or pd.api.types.is_datetime64_any_dtype(safe[column])):
            safe[column] = safe[column].map(_defused_cell)
    return safe.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")


def _defused_cell(value: Any) -> Any:
    return _defused(str(value)) if isinstance(value, str) else value


def _defused(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class ExportError(PruneScopeError, ValueError):
    """A model cannot be exported in the requested format, or the format is unknown."""


def export_model(model: nn.Module, fmt: str = "state_dict", example_input: Any = None) -> bytes:
    """The model serialised as `fmt`: "state_dict", "safetensors", "torchscript", "onnx" or "transformers".

    TorchScript traces the model on `example_input` (without one it tries
    `torch.jit.script`); ONNX needs `example_input` and gets a dynamic batch axis.
    "transformers" (a model loaded from a transformers folder, or holding a transformers
    encoder) is a zip of a folder `from_pretrained` loads, with the pruned sizes in its config.
    Pruning masks still attached by `torch.nn.utils.prune` are folded into the weights.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")
    if fmt == "transformers":
        from .hf_export import export_transformers  # imports transformers, which the other formats do not need

        return export_transformers(model)
    if fmt == "state_dict":
        buffer = io.BytesIO()
        torch.save(clean_state_dict(model), buffer)
        return buffer.getvalue()
    if fmt == "safetensors":
        tensors = _unshared(clean_state_dict(model))
        try:
            return safetensors.torch.save(tensors, metadata={"format": "pt"})
        except Exception as error:  # e.g. a dtype safetensors does not store
            raise ExportError(f"The model cannot be saved as safetensors: {error}") from error
    if isinstance(example_input, torch.Tensor):
        example_input = placement(model).inputs(example_input)
    if fmt == "torchscript":
        return _torchscript(model, example_input)
    return _onnx(model, example_input)


def export_formats(model: nn.Module) -> list[str]:
    """The formats of `EXPORT_FORMATS` that apply to `model`: "transformers" only to a model that holds
    a transformers model (loaded from a folder, or wrapping one like the minilm sample)."""
    holds_transformers = any(type(module).__module__.startswith("transformers.") for module in model.modules())
    return [fmt for fmt in EXPORT_FORMATS if fmt != "transformers" or holds_transformers]


def clean_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict on the CPU, with `weight_orig` × `weight_mask` pairs folded into `weight`."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    return fold_pruning_masks(state)


def fold_pruning_masks(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace `x_orig` + `x_mask` pairs left by `torch.nn.utils.prune` with the masked `x`."""
    folded = dict(state)
    for key, value in state.items():
        if not key.endswith("_orig"):
            continue
        base = key[: -len("_orig")]
        mask = state.get(base + "_mask")
        if not isinstance(mask, torch.Tensor) or mask.shape != value.shape:
            continue
        folded[base] = value * mask
        del folded[key], folded[base + "_mask"]
    return folded


def _unshared(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors safetensors accepts: contiguous, each with its own storage (tied weights are copied)."""
    seen: set[int] = set()
    result = {}
    for key, tensor in state.items():
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        whole = tensor.is_contiguous() and tensor.numel() * tensor.element_size() == storage.nbytes()
        result[key] = tensor if whole and pointer not in seen else tensor.contiguous().clone()
        seen.add(pointer)
    return result


def _example_args(example_input: Any) -> tuple[Any, ...]:
    return tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)


def _torchscript(model: nn.Module, example_input: Any) -> bytes:
    buffer = io.BytesIO()
    with eval_mode(model), warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, yet TorchScript is still what many runtimes load.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if isinstance(model, torch.jit.ScriptModule):
            torch.jit.save(model, buffer)
            return buffer.getvalue()
        try:
            if example_input is None:
                scripted = torch.jit.script(model)
            else:
                scripted = torch.jit.trace(model, _example_args(example_input))
        except Exception as error:  # tracing/scripting fails on data-dependent or unsupported Python code
            how = "scripted; pass example_input to trace it instead" if example_input is None else "traced"
            raise ExportError(f"The model could not be {how} for TorchScript: {_short(error)}") from error
        torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def _onnx(model: nn.Module, example_input: Any) -> bytes:
    if example_input is None:
        raise ExportError("ONNX export runs the model once, so it needs an example input (example_input=...).")
    args = _example_args(example_input)
    input_names = ["input"] if len(args) == 1 else [f"input_{index}" for index in range(len(args))]
    dynamic_axes = {name: {0: "batch"} for name in [*input_names, "output"]}
    buffer = io.BytesIO()
    with eval_mode(model), warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) is deprecated but needs no extra package
        # (the dynamo exporter needs onnxscript) and handles dynamic batch axes directly.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                model,
                args,
                buffer,
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=input_names,
                output_names=["output"],
                dynamic_axes=dynamic_axes,
            )
        except Exception as error:  # an operator without an ONNX equivalent, data-dependent control flow, ...
            raise ExportError(f"The model could not be exported to ONNX: {_short(error)}") from error
    return buffer.getvalue()


def _short(error: Exception, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the architecture sidecar ---------------------------------------------------------


def architecture_sidecar(model: nn.Module) -> dict[str, Any]:
    """Every tensor's shape and dtype, and each Conv/Linear/norm layer's constructor attributes.

    JSON-ready. With it, `rebuild_from_sidecar` turns a fresh instance of the original
    architecture into one the pruned state_dict loads into.
    """
    tensors = {
        key: {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
        for key, value in clean_state_dict(model).items()
    }
    modules = {}
    for name, module in model.named_modules():
        attributes = _attributes_of(module)
        if attributes is None or not name:
            continue
        record: dict[str, Any] = {"type": _type_name(module)}
        for attribute in attributes:
            if hasattr(module, attribute):
                record[attribute] = _jsonable(getattr(module, attribute))
        modules[name] = record
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "tensors": tensors,
        "modules": modules,
    }


def export_bundle(
    model: nn.Module,
    fmt: str = "state_dict",
    example_input: Any = None,
    plan: Any = None,
) -> dict[str, bytes]:
    """File name → bytes: the model, its architecture.json sidecar, and plan.json when a plan is given."""
    bundle = {
        f"model{EXPORT_FORMATS.get(fmt, '')}": export_model(model, fmt, example_input),
        "architecture.json": json.dumps(architecture_sidecar(model), indent=2).encode(),
    }
    if plan is not None:
        bundle["plan.json"] = _plan_json(plan).encode()
    return bundle


def _plan_json(plan: Any) -> str:
    if hasattr(plan, "to_json"):
        return plan.to_json()
    if isinstance(plan, str):
        return plan
    if isinstance(plan, Mapping):
        return json.dumps(plan, indent=2)
    raise ExportError(f"A plan is a PruningPlan, its JSON text or a dict, not {type(plan).__name__}.")


def rebuild_from_sidecar(
    factory_or_model: nn.Module | Callable[[], nn.Module],
    sidecar: Mapping[str, Any] | str | bytes,
) -> nn.Module:
    """An instance of the unpruned architecture resized to the sidecar's shapes (a model argument is copied).

    Conv/Linear/BatchNorm/LayerNorm/GroupNorm attributes (channels, features, groups, ...)
    are set from the sidecar and every tensor whose shape differs is replaced by a zero
    tensor of the recorded shape, so a pruned state_dict then loads with `load_state_dict`.
    """
    spec = _parse_sidecar(sidecar)
    model = copy.deepcopy(factory_or_model) if isinstance(factory_or_model, nn.Module) else factory_or_model()
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"The architecture factory returned {type(model).__name__}, not a torch.nn.Module.")
    modules = dict(model.named_modules())
    for name, record in spec["modules"].items():
        module = modules.get(name)
        if module is None:
            raise ModelLoadError(f"architecture.json describes layer {name!r}, which this architecture does not have.")
        if _type_name(module) != record.get("type"):
            raise ModelLoadError(
                f"architecture.json says {name!r} is a {record.get('type')}, but in this architecture it is a "
                f"{_type_name(module)}; the file belongs to a different architecture."
            )
        _set_attributes(module, name, record)
    for key, info in spec["tensors"].items():
        _resize_tensor(modules, key, info)
    return model


def sidecar_shapes(sidecar: Mapping[str, Any] | str | bytes) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape recorded in a sidecar (validated)."""
    return {key: tuple(info["shape"]) for key, info in _parse_sidecar(sidecar)["tensors"].items()}


def _parse_sidecar(sidecar: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    if isinstance(sidecar, (str, bytes)):
        sidecar = loads(sidecar, "architecture.json", ModelLoadError)
    if not isinstance(sidecar, Mapping) or sidecar.get("format") != SIDECAR_FORMAT:
        raise ModelLoadError("This is not a PruneScope architecture.json (its 'format' field is missing or different).")
    if sidecar.get("version") != SIDECAR_VERSION:
        raise ModelLoadError(
            f"architecture.json has version {sidecar.get('version')!r}; PruneScope reads version {SIDECAR_VERSION}."
        )
    tensors, modules = sidecar.get("tensors"), sidecar.get("modules")
    if not isinstance(tensors, Mapping) or not isinstance(modules, Mapping):
        raise ModelLoadError("architecture.json lacks its 'tensors' or 'modules' table; export it again.")
    for key, info in tensors.items():
        shape = info.get("shape") if isinstance(info, Mapping) else None
        if not isinstance(shape, list) or not all(isinstance(size, int) and size >= 0 for size in shape):
            raise ModelLoadError(f"architecture.json has no valid shape for {key!r}; export it again.")
    if not all(isinstance(record, Mapping) for record in modules.values()):
        raise ModelLoadError("architecture.json has a malformed 'modules' table; export it again.")
    return dict(sidecar)


def _attributes_of(module: nn.Module) -> tuple[str, ...] | None:
    for module_type, attributes in _MODULE_ATTRIBUTES.items():
        if isinstance(module, module_type):
            return attributes
    return None


def _type_name(module: nn.Module) -> str:
    return getattr(module, "original_name", None) or type(module).__name__


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _set_attributes(module: nn.Module, name: str, record: Mapping[str, Any]) -> None:
    """Set the recorded constructor attributes, each only if its type matches the current value's."""
    for attribute in _attributes_of(module) or ():
        if attribute not in record or not hasattr(module, attribute):
            continue
        current, value = getattr(module, attribute), record[attribute]
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        if type(value) is not type(current) and not (isinstance(current, float) and isinstance(value, int)):
            raise ModelLoadError(
                f"architecture.json gives {name}.{attribute} as {value!r}, which does not fit ({current!r} expected)."
            )
        setattr(module, attribute, value)


def _resize_tensor(modules: dict[str, nn.Module], key: str, info: Mapping[str, Any]) -> None:
    owner_name, _, attribute = key.rpartition(".")
    owner = modules.get(owner_name)
    if owner is None:
        raise ModelLoadError(f"architecture.json lists tensor {key!r}, which this architecture does not have.")
    shape = tuple(info["shape"])
    if attribute in owner._parameters:
        current = owner._parameters[attribute]
        if current is None or tuple(current.shape) != shape:
            dtype = current.dtype if current is not None else torch.float32
            owner._parameters[attribute] = nn.Parameter(torch.zeros(shape, dtype=dtype))
    elif attribute in owner._buffers:
        current = owner._buffers[attribute]
        if current is None or tuple(current.shape) != shape:
            dtype = current.dtype if current is not None else torch.float32
            owner._buffers[attribute] = torch.zeros(shape, dtype=dtype)
    else:
        raise ModelLoadError(f"architecture.json lists tensor {key!r}, which this architecture does not have.")
