"""Where a model lives and how data reaches it: its device and floating dtype.

Every engine step follows the model: data stays as it was loaded (float32 on the CPU,
usually) and each batch is moved to the model's device and cast to its floating dtype
just before the forward pass; integer inputs (token ids) and labels keep their dtype.
A GPU check (H200, torch 2.11) found evaluation, importance, scans and fine-tuning
failing on a CUDA model because batches stayed on the CPU, and a float64 or bfloat16
model failed the same way on the CPU ("Input type (torch.FloatTensor) and weight type …
should be the same").

Where torch has no kernel for a device or dtype (e.g. `torch.histogram` on CUDA), the
step computes in float32 on the CPU and logs a note (`float32_fallback`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """A device and a floating dtype that tensors are moved and cast to."""

    device: torch.device
    dtype: torch.dtype

    def inputs(self, value: Any) -> Any:
        """`value` on this device; floating tensors cast to this dtype, integers (token ids) left as they are.

        Tuples, lists and dicts of inputs (a forward that takes several) are placed item by item.
        """
        if isinstance(value, Mapping):
            return {key: self.inputs(item) for key, item in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(self.inputs(item) for item in value)
        if not isinstance(value, torch.Tensor):
            return value
        dtype = self.dtype if value.is_floating_point() else value.dtype
        return value.to(device=self.device, dtype=dtype)

    def labels(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """`tensor` on this device, its dtype kept (class ids stay integers); None stays None."""
        return None if tensor is None else tensor.to(self.device)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model without tensors."""
    tensor = next(iter([*model.parameters(), *model.buffers()]), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (or buffer); float32 when it has none."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def placement(model: nn.Module) -> Placement:
    """Where `model` runs: its device and floating dtype."""
    return Placement(model_device(model), model_dtype(model))


def place_model(model: nn.Module, device: str | torch.device, dtype: torch.dtype | None = None) -> nn.Module:
    """A copy of `model` on `device` (and in floating `dtype` when given); `model` itself is not moved."""
    target = torch.device(device)
    if model_device(model) == target and (dtype is None or model_dtype(model) == dtype):
        return copy.deepcopy(model)
    copied = _copy_to(model, target)
    return copied if dtype is None else copied.to(dtype)


def _copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    """A deep copy of `model` on `device`, made without a second full copy on the source device."""
    memo: dict[int, Any] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in memo:
            moved = tensor.detach().to(device, copy=True)
            memo[id(tensor)] = nn.Parameter(moved, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else moved
    return copy.deepcopy(model, memo)


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 for sums that need it, except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def float32_fallback(what: str, dtype: torch.dtype, device: torch.device) -> None:
    """Log that `what` ran in float32 on the CPU because torch has no kernel for `dtype` on `device`."""
    logger.info("%s has no %s kernel on %s here; computed in float32 on the CPU instead.", what, dtype, device.type)
