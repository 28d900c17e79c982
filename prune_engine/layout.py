"""Running convolutional models in the channels-last memory format on the CPU.

PyTorch's CPU kernels for 2-D convolution and max-pooling are faster on NHWC ("channels last")
tensors than on the default NCHW: digits_cnn's forward pass over its 360 test images took 16.8 ms
in the default layout and 8.3 ms in channels last on one thread here (max-pooling alone 2.8 → 0.3 ms
a call), with outputs equal within 1e-5 and the same on any number of threads. The layout changes where
the numbers sit in memory, never what is computed, so evaluation runs that way. BatchNorm re-estimation
does not: in channels last its statistics came out different in the last bits on one thread and on two,
and a plan must give the same model wherever it runs. Latency is measured on the model as the user has
it, since that is the speed the user gets.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

CHANNELS_LAST_MAX_BYTES = 256 << 20
"""Largest model (its parameters and buffers) that evaluation copies into channels last: the copy
costs that much memory again while it runs."""


def wants_channels_last(model: nn.Module) -> bool:
    """Whether `model` would run faster in channels last: a plain (not TorchScript) module on the CPU
    with a 2-D convolution, small enough to copy (`CHANNELS_LAST_MAX_BYTES`)."""
    if isinstance(model, torch.jit.ScriptModule) or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return False
    tensors = [*model.parameters(), *model.buffers()]
    if any(tensor.device.type != "cpu" for tensor in tensors):
        return False
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors) <= CHANNELS_LAST_MAX_BYTES


def channels_last_copy(model: nn.Module) -> nn.Module | None:
    """A copy of `model` in channels last when it `wants_channels_last`, else None (also when it cannot be
    copied: the caller then runs the model as it is)."""
    if not wants_channels_last(model):
        return None
    try:
        duplicate = copy.deepcopy(model)
    except Exception as error:  # a module holding something deepcopy refuses: run it as it is
        logger.debug("No channels-last copy of %s (%s).", type(model).__name__, error)
        return None
    return duplicate.to(memory_format=torch.channels_last)


def channels_last_inputs(value: Any) -> Any:
    """A batch of images (a 4-D tensor) in channels last; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value
