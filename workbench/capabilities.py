"""What the app offers for a model: the criteria, granularities and options that can apply to it."""

from __future__ import annotations

import prune_engine as pe
from prune_engine.blocks import BLOCK_LEVEL_CRITERIA, candidate_blocks
from prune_engine.calibration import has_batchnorm
from prune_engine.heads import HEAD_LEVEL_CRITERIA
from workbench.session import LoadedModel

NO_TRAINING = (
    "Without training data, BatchNorm re-estimation after channel pruning and fine-tuning are not available: "
    "both learn from examples the model is not scored on. Upload the model again with a training or calibration "
    "file, or let the upload split its evaluation data."
)


def missing_training_data(loaded: LoadedModel) -> str | None:
    """Why BatchNorm re-estimation is not offered for a model that has BatchNorm: it has no training data; else None."""
    if loaded.bundle.train_data is None and has_batchnorm(loaded.bundle.model):
        return NO_TRAINING
    return None


def can_recalibrate(loaded: LoadedModel) -> bool:
    """Whether BatchNorm statistics can be re-estimated: the model has BatchNorm and training examples."""
    return loaded.bundle.train_data is not None and has_batchnorm(loaded.bundle.model)


def criteria(loaded: LoadedModel, granularity: str | None = None) -> list[str]:
    """The registered criteria this model can use under `granularity`: those that need data only when it has
    some, head-level ones only with attention layers, and block-level ones only to prune whole blocks (which
    only they, ablation and random can rank)."""
    has_data = loaded.bundle.eval_data is not None
    has_attention = bool(pe.attention_layers(loaded.bundle.model))
    if granularity == "block":
        candidates = [name for name in pe.BLOCK_CRITERIA if name in pe.CRITERIA]
    else:
        candidates = [name for name in pe.CRITERIA if name not in BLOCK_LEVEL_CRITERIA]
    return [
        name
        for name in candidates
        if (has_data or not pe.CRITERIA[name].needs_data)
        and (has_attention or granularity == "block" or name not in HEAD_LEVEL_CRITERIA)
    ]


def inspectable_criteria(loaded: LoadedModel) -> list[str]:
    """Every registered criterion the Inspect page offers for this model (those needing data say so when picked);
    head-level criteria only for models with attention layers."""
    has_attention = bool(pe.attention_layers(loaded.bundle.model))
    return [
        name
        for name in pe.CRITERIA
        if name not in BLOCK_LEVEL_CRITERIA and (has_attention or name not in HEAD_LEVEL_CRITERIA)
    ]


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


CALIBRATED = ("wanda", "sparsegpt", "block_influence")
"""Criteria whose papers calibrate on training text: they score on the training examples when a model has them."""


def criterion_data(bundle: pe.ModelBundle, criterion: str) -> pe.EvalData | None:
    """The examples `criterion` scores on when a plan is previewed or applied: Wanda, SparseGPT and block
    influence on the training examples when the model has some (scoring on the test examples would tune the
    pruning to the very examples it is judged on); every other criterion on the evaluation examples, the
    ones Inspect shows its scores on."""
    if criterion in CALIBRATED and bundle.train_data is not None:
        return bundle.train_data
    return bundle.eval_data
