"""What directly follows each prunable layer: its BatchNorm and its activation, found by tracing.

Network slimming reads the BatchNorm that normalises a layer's output; activation and
attribution criteria observe a layer's channels as the next layer reads them, after that
BatchNorm and activation. The order of modules in `__init__` says nothing about the data
flow, so this traces the forward pass with `torch.fx` and follows each layer's output
through the modules that alone consume it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

from .errors import CriterionError
from .layers import layer_kind

ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.Softplus,
)  # fmt: skip
"""Activation modules a layer's output may pass through before the next layer reads it."""


@dataclass(frozen=True)
class Followers:
    """Module paths: the BatchNorm and the activation that directly follow a layer (None where
    there is none), and `observed`, the module whose output carries the layer's channels as
    the rest of the network sees them (the last of layer → BatchNorm → activation)."""

    batch_norm: str | None
    activation: str | None
    observed: str


def trace_followers(model: nn.Module) -> dict[str, Followers]:
    """Followers of every prunable layer called exactly once as a module of its own.

    Layers called more than once, or only inside a fused module (e.g. the output
    projection of `nn.MultiheadAttention`), have no single output and are left out.
    Raises CriterionError when `torch.fx` cannot trace the model (e.g. data-dependent
    control flow, TorchScript).
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as error:  # tracing runs the model's own Python code with proxies
        raise CriterionError(f"torch.fx could not trace this model ({type(error).__name__}: {error}).") from error
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    found = {}
    for node in graph.nodes:
        if node.op != "call_module" or layer_kind(modules[node.target]) is None or calls[node.target] != 1:
            continue
        batch_norm = _sole_consumer(node, modules, calls, nn.modules.batchnorm._BatchNorm)
        if batch_norm is not None and not _normalises(modules[batch_norm.target], modules[node.target]):
            batch_norm = None
        activation = _sole_consumer(batch_norm or node, modules, calls, ACTIVATIONS)
        found[node.target] = Followers(
            batch_norm=None if batch_norm is None else batch_norm.target,
            activation=None if activation is None else activation.target,
            observed=(activation or batch_norm or node).target,
        )
    return found


def _sole_consumer(
    node: fx.Node, modules: dict[str, nn.Module], calls: Counter, types: type | tuple[type, ...]
) -> fx.Node | None:
    """The one node reading `node`'s output, if it is a call of a module of `types` called only there."""
    users = list(node.users)
    if len(users) != 1 or users[0].op != "call_module" or calls[users[0].target] != 1:
        return None
    return users[0] if isinstance(modules[users[0].target], types) else None


def _normalises(batch_norm: nn.Module, layer: nn.Module) -> bool:
    """Whether `batch_norm` has one learned scale per output channel of `layer`."""
    weight = getattr(batch_norm, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.shape[0] == layer.weight.shape[0]
