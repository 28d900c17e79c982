"""The per-layer report of a pruned model: one schema for every way of making one.

`apply_plan`, `iterative_prune` and `layer_report` (for a fine-tuned or sparsity-trained
model) all give a table with `REPORT_COLUMNS`, so whatever reads one reads them all.
Figures come from the weights as they are; `status` and `blocked_by` are typed values
(see `status.py`) and `note` is a sentence for people only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from .layers import get_layer, prunable_layers
from .metrics import eval_mode
from .plan import PruningPlan
from .status import BlockedBy, LayerStatus
from .structured import run_model

logger = logging.getLogger(__name__)

REPORT_COLUMNS = (
    "layer",
    "kind",
    "target_ratio",
    "assigned_ratio",
    "achieved_ratio",
    "params_before",
    "params_after",
    "weights_before",
    "weights_after",
    "nonzero_before",
    "nonzero_after",
    "channels_before",
    "channels_after",
    "status",
    "blocked_by",
    "note",
    "kept_changed",
)
"""Columns of every pruned model's report. `target_ratio`: what the plan asks of the layer;
`assigned_ratio`: what its ranking gave it (NaN when no single ranking made the model,
e.g. after pruning in steps); `achieved_ratio`: what it lost (output channels for channel
pruning, weights for head pruning, non-zero weights otherwise); `status`: a `LayerStatus`;
`blocked_by`: a `BlockedBy`, None unless blocked; `note`: for people only; `kept_changed`: True
when the pruning also changed the weights the layer keeps (SparseGPT), else False."""

PREVIEW_COLUMNS = ("layer", "kind", "target_ratio", "assigned_ratio", "group", "status", "blocked_by", "note")
"""Columns of `preview_plan`'s table; `group`: the layer whose channel group (or the
attention layer whose heads) it belongs to, itself when it stands alone."""

TYPED_COLUMNS = ("status", "blocked_by")

COUNT_BLOCK = 1 << 20
"""Weights checked at once when counting non-finite ones, which bounds the temporaries to a few MiB."""


@dataclass(frozen=True)
class LayerFigures:
    """Counts of one layer's parameters as they are: all, weights, non-zero weights, output channels."""

    params: int
    weights: int
    nonzero: int
    channels: int
    nonfinite: int = 0
    """Weights that are NaN or infinite (they stay through pruning and spoil every measurement)."""


REMOVED = LayerFigures(0, 0, 0, 0)
"""The figures of a layer that is gone (its block became the identity)."""


def present_figures(model: nn.Module, names: Collection[str]) -> dict[str, LayerFigures]:
    """The figures of each of `names` that `model` still has (a removed block's layers are left out)."""
    present = {layer.name for layer in prunable_layers(model)}
    return {name: layer_figures(model, name) for name in names if name in present}


def layer_figures(model: nn.Module, name: str) -> LayerFigures:
    """The figures of layer `name` of `model`, read from its weight and bias."""
    return _figures_of(get_layer(model, name))


def forward_figures(model: nn.Module, names: list[str], example_input: Any) -> dict[str, LayerFigures]:
    """Each layer's figures from the weight its forward pass on `example_input` really uses.

    Read inside the pass, after every hook that rebuilds a weight before the layer runs, so a
    weight the forward pass recomputes cannot be reported as pruned; a layer the pass does not
    reach (or a pass that fails) falls back to the weight as it is. Layers the model no longer has (a
    removed block's) are left out, as in `present_figures`.
    """
    present = {layer.name for layer in prunable_layers(model)}
    names = [name for name in names if name in present]
    if isinstance(model, torch.jit.ScriptModule):  # no hooks on TorchScript: its weights are what it runs
        return {name: layer_figures(model, name) for name in names}
    used: dict[str, LayerFigures] = {}

    def recorder(name: str) -> Callable[..., None]:
        return lambda module, inputs: used.setdefault(name, _figures_of(module)) and None

    handles = [get_layer(model, name).register_forward_pre_hook(recorder(name)) for name in names]
    try:
        with torch.no_grad(), eval_mode(model):
            run_model(model, example_input)
    except Exception as error:  # the figures then come from the weights as they are
        logger.debug("Forward pass for the report failed (%s); reading the weights as they are.", error)
    finally:
        for handle in handles:
            handle.remove()
    return {name: used.get(name) or layer_figures(model, name) for name in names}


def _figures_of(module: nn.Module) -> LayerFigures:
    weight = module.weight.detach()
    bias = getattr(module, "bias", None)
    params = weight.numel() + (bias.numel() if isinstance(bias, torch.Tensor) else 0)
    nonfinite = 0 if weight.is_complex() or not weight.is_floating_point() else _count_nonfinite(weight)
    return LayerFigures(params, weight.numel(), int(torch.count_nonzero(weight)), int(weight.shape[0]), nonfinite)


def _count_nonfinite(weight: torch.Tensor) -> int:
    """NaN and infinite weights, counted a block at a time: `isfinite` of a whole weight builds a
    float copy and three bool masks of it (257 MiB more for GPT-2's 38.6 M-weight head)."""
    blocks = weight.reshape(-1).split(COUNT_BLOCK)
    return weight.numel() - int(sum(torch.count_nonzero(torch.isfinite(block)) for block in blocks))


def layer_report(
    original: nn.Module,
    pruned: nn.Module,
    plan: PruningPlan,
    *,
    assigned: Mapping[str, float] | None = None,
    blocked: Mapping[str, BlockedBy] | None = None,
    notes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The report (`REPORT_COLUMNS`) comparing `pruned` with `original`, layer by layer.

    Works for any pair whose prunable layers have the same module paths: an applied plan,
    a model pruned in steps, fine-tuned or trained for sparsity. Status is `pruned` when
    the counts show a loss, else `unchanged`, unless `blocked` names the layer. `assigned`
    (the ratios a ranking gave), `blocked` and `notes` come from the decision when there
    was one; without them assigned ratios are NaN and notes empty.
    """
    before = {layer.name: (layer.kind, layer_figures(original, layer.name)) for layer in prunable_layers(original)}
    after = present_figures(pruned, before)
    return report_table(before, after, plan, assigned, blocked or {}, notes or {})


def report_table(
    before: Mapping[str, tuple[str, LayerFigures]],
    after: Mapping[str, LayerFigures],
    plan: PruningPlan,
    assigned: Mapping[str, float] | None,
    blocked: Mapping[str, BlockedBy],
    notes: Mapping[str, str],
    kept_changed: Collection[str] = (),
) -> pd.DataFrame:
    """Rows of `REPORT_COLUMNS` from each layer's (kind, figures) before and its figures after
    (`after` may leave out a layer that was removed with its block: it then has no weights)."""
    rows = []
    for name, (kind, old) in before.items():
        new = after.get(name, REMOVED)
        lost = new.params < old.params or new.nonzero < old.nonzero
        rows.append(
            {
                "layer": name,
                "kind": kind,
                "target_ratio": plan.target_ratio(name),
                "assigned_ratio": math.nan if assigned is None else assigned.get(name, 0.0),
                "achieved_ratio": _achieved(plan.granularity, old, new),
                "params_before": old.params,
                "params_after": new.params,
                "weights_before": old.weights,
                "weights_after": new.weights,
                "nonzero_before": old.nonzero,
                "nonzero_after": new.nonzero,
                "channels_before": old.channels,
                "channels_after": new.channels,
                **typed_status(name, blocked, lost),
                "note": _with_nonfinite(notes.get(name, ""), new.nonfinite),
                "kept_changed": name in kept_changed,
            }
        )
    return typed_table(rows, REPORT_COLUMNS)


def _with_nonfinite(note: str, nonfinite: int) -> str:
    if not nonfinite:
        return note
    warning = f"holds {nonfinite:,} NaN or infinite weights, which pruning keeps: its outputs are not trustworthy"
    return f"{note}; {warning}" if note else warning


def _achieved(granularity: str, old: LayerFigures, new: LayerFigures) -> float:
    if granularity == "channel":
        return 1.0 - new.channels / max(old.channels, 1)
    if granularity in ("head", "block"):
        return 1.0 - new.weights / max(old.weights, 1)
    return 1.0 - new.nonzero / max(old.weights, 1)


def typed_status(name: str, blocked: Mapping[str, BlockedBy], loses: bool) -> dict[str, object]:
    """The `status` and `blocked_by` cells of one row: blocked wins, then whether it loses something."""
    if name in blocked:
        return {"status": LayerStatus.BLOCKED, "blocked_by": blocked[name]}
    return {"status": LayerStatus.PRUNED if loses else LayerStatus.UNCHANGED, "blocked_by": None}


def typed_table(rows: list[dict[str, object]], columns: tuple[str, ...]) -> pd.DataFrame:
    """A table whose typed columns keep their enum members and None (pandas would make them plain text)."""
    table = pd.DataFrame(rows, columns=list(columns))
    for column in TYPED_COLUMNS:
        table[column] = pd.Series([row[column] for row in rows], index=table.index, dtype=object)
    return table
