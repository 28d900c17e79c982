"""Prunable layers and their weight statistics.

A prunable layer is a module with a weight matrix or kernel whose first dimension
indexes output channels/neurons: Linear and Conv1d/2d/3d, wherever they sit in the
module tree. Everything here is computed in torch, one layer at a time, so it works
on layers of hundreds of millions of weights without Python-level copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import UnknownLayerError
from .placement import float32_fallback

LAYER_KINDS: dict[type[nn.Module], str] = {
    nn.Linear: "Linear",
    nn.Conv1d: "Conv1d",
    nn.Conv2d: "Conv2d",
    nn.Conv3d: "Conv3d",
}


@dataclass(frozen=True)
class LayerInfo:
    """What a prunable layer is: its module path, kind and weight shape."""

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    params: int
    out_channels: int
    in_channels: int
    groups: int = 1

    @property
    def fan_in(self) -> int:
        """Weights feeding one output channel (input channels per group × kernel size)."""
        return int(np.prod(self.weight_shape[1:]))


def layer_kind(module: nn.Module) -> str | None:
    """The kind name of a prunable module ("Linear", "Conv2d", ...), or None.

    TorchScript modules keep their original class name, so they are recognised too.
    """
    for layer_type, kind in LAYER_KINDS.items():
        if type(module) is layer_type or isinstance(module, layer_type):
            return kind
    original = getattr(module, "original_name", None)
    if original in LAYER_KINDS.values() and isinstance(getattr(module, "weight", None), torch.Tensor):
        return original
    return None


def prunable_layers(model: nn.Module) -> list[LayerInfo]:
    """Every Linear/Conv layer of `model` in definition order, named by module path."""
    layers = []
    for name, module in model.named_modules():
        kind = layer_kind(module)
        if kind is None or not name:
            continue
        weight = module.weight
        bias = getattr(module, "bias", None)
        params = weight.numel() + (bias.numel() if isinstance(bias, torch.Tensor) else 0)
        groups = int(getattr(module, "groups", 1))
        layers.append(
            LayerInfo(
                name=name,
                kind=kind,
                weight_shape=tuple(weight.shape),
                params=int(params),
                out_channels=int(weight.shape[0]),
                in_channels=int(weight.shape[1]) * groups if weight.dim() > 1 else 1,
                groups=groups,
            )
        )
    return layers


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The prunable module at path `name`, or a clear error naming the valid layers."""
    if isinstance(model, torch.jit.ScriptModule):  # no get_submodule there
        module = dict(model.named_modules()).get(name) if name else None
    else:  # a walk down the path, not a dict of every module: reports and masks look layers up by the hundred
        try:
            module = model.get_submodule(name) if name else None
        except AttributeError:
            module = None
    if module is None or layer_kind(module) is None:
        names = [layer.name for layer in prunable_layers(model)]
        shown = ", ".join(names[:8]) + (" …" if len(names) > 8 else "")
        raise UnknownLayerError(f"{name!r} is not a prunable layer of this model; its layers are: {shown}.")
    return module


def layer_stats(model: nn.Module) -> pd.DataFrame:
    """One row per prunable layer: size, non-zeros, sparsity and weight statistics."""
    rows = []
    for info in prunable_layers(model):
        weight = get_layer(model, info.name).weight.detach()
        nonzero = int(torch.count_nonzero(weight))
        values = weight.float() if weight.dtype != torch.float32 else weight
        std, mean = torch.std_mean(values) if values.numel() > 1 else (torch.tensor(0.0), values.mean())
        rows.append(
            {
                "name": info.name,
                "kind": info.kind,
                "shape": "×".join(str(size) for size in info.weight_shape),
                "params": info.params,
                "weights": weight.numel(),
                "nonzero": nonzero,
                "sparsity": 1.0 - nonzero / max(weight.numel(), 1),
                "out_channels": info.out_channels,
                "in_channels": info.in_channels,
                "mean": float(mean),
                "std": float(std),
                "abs_mean": float(values.abs().mean()),
                "l1_norm": float(values.abs().sum()),
                "l2_norm": float(torch.linalg.vector_norm(values)),
            }
        )
    return pd.DataFrame(rows, columns=_STATS_COLUMNS)


_STATS_COLUMNS = [
    "name", "kind", "shape", "params", "weights", "nonzero", "sparsity", "out_channels",
    "in_channels", "mean", "std", "abs_mean", "l1_norm", "l2_norm",
]  # fmt: skip


def weight_histogram(
    model: nn.Module,
    layer_name: str,
    bins: int = 100,
    value_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of one layer's weights: `(counts, edges)` with `bins` equal-width bins.

    Computed by `torch.histogram` on the weight tensor itself, so only `bins` numbers
    leave torch whatever the layer size. `torch.histogram` has kernels only for float32
    and float64 on the CPU: weights elsewhere (a GPU) or in another dtype (bfloat16,
    float16) are binned as float32 on the CPU, and a note is logged.
    """
    weight = get_layer(model, layer_name).weight.detach()
    values = weight
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64):
        float32_fallback("torch.histogram", weight.dtype, weight.device)
        values = weight.to(device="cpu", dtype=torch.float32)
    if value_range is None:
        low, high = float(values.min()), float(values.max())
        if low == high:
            low, high = low - 0.5, high + 0.5
        value_range = (low, high)
    counts, edges = torch.histogram(values.reshape(-1), bins=bins, range=value_range)
    return counts.numpy().astype(np.int64), edges.numpy()


def channel_norms(model: nn.Module, layer_name: str, p: float = 1.0) -> torch.Tensor:
    """The Lp norm of each output channel's weights (one value per row of the weight)."""
    weight = get_layer(model, layer_name).weight.detach()
    return torch.linalg.vector_norm(weight.float().reshape(weight.shape[0], -1), ord=p, dim=1)
