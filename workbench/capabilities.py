"""What the app offers for a model: the criteria, granularities and options that can apply to it."""

from __future__ import annotations

import prune_engine as pe
from prune_engine.blocks import candidate_blocks
from prune_engine.calibration import has_batchnorm
from workbench.session import LoadedModel


def can_recalibrate(loaded: LoadedModel) -> bool:
    """Whether BatchNorm statistics can be re-estimated: the model has BatchNorm and training examples."""
    return loaded.bundle.train_data is not None and has_batchnorm(loaded.bundle.model)


def criteria(loaded: LoadedModel) -> list[str]:
    """The registered criteria this model can use: those that need data only when it has some."""
    has_data = loaded.bundle.eval_data is not None
    return [name for name, criterion in pe.CRITERIA.items() if has_data or not criterion.needs_data]


def granularities(loaded: LoadedModel, plan: pe.PruningPlan) -> list[str]:
    """The granularities offered: attention heads only for a model that has attention layers, whole
    blocks only for one with residual blocks or layer stacks."""
    model = loaded.bundle.model
    offered = [
        name
        for name in pe.GRANULARITIES
        if (name != "head" or pe.attention_layers(model)) and (name != "block" or candidate_blocks(model))
    ]
    return offered if plan.granularity in offered else [*offered, plan.granularity]
