"""Re-estimating BatchNorm statistics after pruning.

Removing channels changes what flows into every later BatchNorm (a residual sum loses
terms, a convolution loses inputs), so the running mean and variance it learnt no
longer fit, and accuracy can collapse although the remaining weights are fine. Running
a few hundred training examples through the pruned model in training mode, without
gradients, re-estimates those statistics; no weight changes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .data import EvalData
from .errors import DataError
from .placement import placement


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the model has any BatchNorm layer whose statistics could be re-estimated."""
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def recalibrate_batchnorm(
    model: nn.Module, data: EvalData, max_examples: int = 1024, batch_size: int = 128
) -> nn.Module:
    """A copy of `model` whose BatchNorm running statistics are re-estimated on `data`.

    Statistics are a plain average over up to `max_examples` examples (momentum None);
    weights, biases and every other module are untouched. Returns the copy in eval mode.
    """
    calibrated = copy.deepcopy(model)
    recalibrate_in_place(calibrated, data, max_examples, batch_size)
    return calibrated.train(model.training)


@torch.no_grad()
def recalibrate_in_place(model: nn.Module, data: EvalData, max_examples: int = 1024, batch_size: int = 128) -> None:
    """`recalibrate_batchnorm` on `model` itself (a working copy nobody else holds), left in eval mode."""
    if len(data) == 0:
        raise DataError("Re-estimating BatchNorm statistics needs at least one example.")
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.eval()
    for norm in norms:
        norm.train()
    place = placement(model)
    for inputs, _ in data.subset(max_examples).batches(batch_size):
        model(place.inputs(inputs))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
