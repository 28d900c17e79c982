"""Plans as the app edits and names them: what each control does to a plan, and a plan in words.

Plain functions of plans and preview rows (no Streamlit), so each control's meaning is
stated once and can be tested on its own. Every edit returns a new, validated plan;
`describe_plan` is the one description every page and the history show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pandas as pd

import prune_engine as pe
from workbench import fmt

DEFAULT_RATIO = 0.3
PLAN_LAYERS_SHOWN = 6
"""Locked layers a plan's description names before it says "and k more"."""

GRANULARITY_LABELS = {
    "unstructured": "Single weights",
    "channel": "Whole channels",
    "n:m": "N:M pattern",
    "head": "Attention heads",
    "block": "Whole blocks",
}
SCOPE_LABELS = {"layer": "Per layer", "global": "Global ranking"}
SCHEDULE_LABELS = {"agp": "AGP (gradual)", "linear": "Linear", "one_shot": "One shot"}


def default_plan() -> pe.PruningPlan:
    """Where the sliders start: every layer loses 30 % of its weights by L1 magnitude."""
    return pe.PruningPlan(global_ratio=DEFAULT_RATIO)


def with_layers(plan: pe.PruningPlan, layers: Iterable[str], ratio: float) -> pe.PruningPlan:
    """`layers` locked at `ratio`: their own entries, which the global slider no longer moves."""
    return dataclasses.replace(plan, ratios={**plan.ratios, **dict.fromkeys(layers, ratio)})


def without_layers(plan: pe.PruningPlan, layers: Iterable[str]) -> pe.PruningPlan:
    """`layers` unlocked: they follow the global slider (or the global ranking) again."""
    dropped = set(layers)
    return dataclasses.replace(plan, ratios={name: ratio for name, ratio in plan.ratios.items() if name not in dropped})


def with_bounds(plan: pe.PruningPlan, low: float, high: float, top: float) -> pe.PruningPlan:
    """The global ranking's per-layer bounds; the slider's ends (0 and `top`) mean no bound."""
    return dataclasses.replace(plan, min_ratio=low if low > 0 else None, max_ratio=high if high < top else None)


def with_granularity(plan: pe.PruningPlan, granularity: str, recalibrate: bool) -> pe.PruningPlan:
    """`plan` switched to another granularity: per-layer ratios meant something else there, so they go."""
    changed = dataclasses.replace(plan, granularity=granularity, ratios={}, recalibrate_bn=recalibrate)
    if granularity == "n:m":
        return dataclasses.replace(changed, global_ratio=1.0 - plan.n / plan.m, min_ratio=None, max_ratio=None)
    if plan.granularity == "n:m":
        return dataclasses.replace(changed, global_ratio=DEFAULT_RATIO)
    return changed


def nm_selection(plan: pe.PruningPlan, layers: Iterable[str], selected: set[str]) -> pe.PruningPlan:
    """An N:M plan that prunes exactly the `selected` layers (the others get a ratio of 0)."""
    ratios = {layer: 0.0 for layer in layers if layer not in selected}
    return dataclasses.replace(plan, global_ratio=1.0 - plan.n / plan.m, ratios=ratios)


def with_pattern(plan: pe.PruningPlan, n: int, m: int, layers: list[str]) -> pe.PruningPlan:
    """Another N:M pattern for the same layers; n is kept below m."""
    selected = {layer for layer in layers if plan.target_ratio(layer) > 0}
    return nm_selection(dataclasses.replace(plan, n=min(n, m - 1), m=m), layers, selected)


def reset(plan: pe.PruningPlan) -> pe.PruningPlan:
    """Every layer unlocked, the global ratio back to its start, no bounds."""
    global_ratio = 1.0 - plan.n / plan.m if plan.granularity == "n:m" else DEFAULT_RATIO
    return dataclasses.replace(plan, ratios={}, global_ratio=global_ratio, min_ratio=None, max_ratio=None)


def is_blocked(row: pd.Series | None) -> bool:
    """Whether the engine's preview row says the layer cannot be pruned by this granularity."""
    return row is not None and row["status"] == pe.LayerStatus.BLOCKED


def coupled_layers(name: str, table: pd.DataFrame | None) -> tuple[str, ...]:
    """`name` and the layers that must lose the same channels: its group in the preview table (indexed by layer)."""
    if table is None or name not in table.index:
        return (name,)
    members = table.index[table["group"] == table.loc[name, "group"]].tolist()
    return (name, *(member for member in members if member != name))


def layer_groups(names: list[str], size: int) -> list[tuple[str, list[str]]]:
    """Consecutive runs of layers under the same module-path prefix, cut at the shallowest
    depth that keeps every run within `size` layers (`layer1`, then `encoder.layer.0`, …)."""
    deepest = max(name.count(".") for name in names)
    depth = 1
    while depth < deepest and max(len(run) for _, run in _runs(names, depth)) > size:
        depth += 1
    return _runs(names, depth)


def _runs(names: list[str], depth: int) -> list[tuple[str, list[str]]]:
    runs: list[tuple[str, list[str]]] = []
    for name in names:
        parts = name.split(".")
        label = ".".join(parts[:depth]) if len(parts) > depth else name
        if runs and runs[-1][0] == label:
            runs[-1][1].append(name)
        else:
            runs.append((label, [name]))
    return runs


def criterion_label(name: str) -> str:
    """A criterion's name as people read it ("L1 magnitude"), or the name itself when it is not registered."""
    criterion = pe.CRITERIA.get(name)
    return criterion.label if criterion is not None else name


def follows_global(plan: pe.PruningPlan, report: pd.DataFrame) -> bool:
    """Whether any layer of a result's `report` takes the plan's global ratio: one that can be pruned and
    is not set on its own. False when every such layer is locked, and the global ratio changes nothing."""
    free = report[(report["status"] != pe.LayerStatus.BLOCKED) & ~report["layer"].isin(list(plan.ratios))]
    return len(free) > 0


def describe_plan(plan: pe.PruningPlan, *, global_used: bool = True) -> str:
    """A plan in a few words, telling apart every field that changes its result.

    What is removed, by which criterion, how much and how it is ranked; the layers set on their
    own; bounds, rounding, BatchNorm re-estimation and (for the random criterion) the seed.
    Without `global_used` (see `follows_global`) the global ratio, which moves no layer, is left out.
    """
    kind = GRANULARITY_LABELS.get(plan.granularity, plan.granularity).lower()
    if plan.granularity == "n:m":
        parts = [f"{plan.n}:{plan.m} pattern", criterion_label(plan.criterion)]
        dense = [layer for layer, ratio in plan.ratios.items() if ratio == 0]
        if dense:
            parts.append(f"{len(dense)} layer(s) left dense")
    else:
        parts = [kind, criterion_label(plan.criterion)]
        if plan.global_ratio is not None and global_used:
            others = "every other layer" if plan.ratios else "every layer"
            scope = "ranked globally" if plan.scope == "global" else f"in {others}"
            parts.append(f"{fmt.percent(plan.global_ratio, 0)} {scope}")
        set_alone = [f"{layer} {fmt.percent(ratio, 0)}" for layer, ratio in plan.ratios.items()]
        if set_alone:
            more = len(set_alone) - PLAN_LAYERS_SHOWN
            parts.append(", ".join(set_alone[:PLAN_LAYERS_SHOWN]) + (f" and {more} more" if more > 0 else ""))
    if plan.min_ratio is not None or plan.max_ratio is not None:
        parts.append(f"each layer {fmt.percent(plan.min_ratio or 0.0, 0)}–{fmt.percent(plan.max_ratio or 1.0, 0)}")
    if plan.round_to:
        parts.append(f"kept counts rounded to {plan.round_to}")
    if plan.ignored_layers:
        parts.append(f"{len(plan.ignored_layers)} layer(s) ignored")
    if plan.recalibrate_bn:
        parts.append("BatchNorm re-estimated")
    if plan.criterion == "random":
        parts.append(f"seed {plan.seed}")
    return " · ".join(parts)


def describe_result(result: pe.PruneResult) -> str:
    """`describe_plan` of the plan that made `result`, leaving out a global ratio none of its layers took."""
    return describe_plan(result.plan, global_used=follows_global(result.plan, result.report))


def stored_plan(plan_json: str) -> pe.PruningPlan | None:
    """A plan saved as JSON (the history), or None when this version cannot read it."""
    try:
        return pe.PruningPlan.from_json(plan_json)
    except pe.PruneScopeError:
        return None


def describe_stored_plan(plan_json: str) -> str:
    """`describe_plan` of a plan saved as JSON, or a placeholder for one this version cannot read."""
    plan = stored_plan(plan_json)
    return "(a plan this version cannot read)" if plan is None else describe_plan(plan)


def batchnorm_policy(plan: pe.PruningPlan | None) -> str | None:
    """What the plan does with BatchNorm statistics, in two words (None for an unreadable plan): "not
    re-estimated" holds for a model without BatchNorm too, where "as trained" suggested it had some."""
    if plan is None:
        return None
    return "re-estimated" if plan.recalibrate_bn else "not re-estimated"
