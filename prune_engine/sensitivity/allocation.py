"""Turn a sensitivity scan into per-layer ratios that reach a size, FLOPs or latency target.

`suggest_ratios` solves a multiple-choice knapsack over the scan's ratios by dynamic
programming, predicting a plan's metric drop as the sum of each layer's own drop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..errors import InvalidPlanError, PruneScopeError
from ..latency import LatencyPredictor
from ..metrics import count_flops, count_parameters
from ..plan import PruningPlan
from ..pruning import apply_plan


class TargetUnreachableError(PruneScopeError, ValueError):
    """No choice of the scanned ratios reaches the requested reduction."""


BUDGETS = ("params", "flops", "latency")
SAVED_COLUMNS = {"params": "params_saved", "flops": "flops_saved", "latency": "latency_saved"}
TOTAL_COLUMNS = {"params": "nonzero", "flops": "flops", "latency": "latency_ms"}

DP_BUCKETS = 2000
"""The allocation's DP tracks the amount saved in this many steps up to the target."""

CHECK_ROUNDS = 12
"""How often `suggest_ratios` raises its internal target to meet the real reduction."""


@dataclass(frozen=True)
class _Option:
    """One ratio for one group: what it saves and what it is predicted to cost."""

    ratio: float
    saved: float
    drop: float
    loss_increase: float


def suggest_ratios(
    scan: pd.DataFrame,
    target: float,
    budget: str = "params",
    max_drop: float | None = None,
    granularity: str | None = None,
    criterion: str | None = None,
    model: nn.Module | None = None,
    example_input: torch.Tensor | None = None,
) -> PruningPlan:
    """Per-layer ratios from the scan's grid that remove `target` of the model's non-zero
    parameters (`budget="params"`), FLOPs or predicted latency (`"latency"`, the scan's
    `latency_ms`) for the least predicted metric drop. The plan carries the scan's
    BatchNorm policy (`recalibrate_bn`), since its drops were measured with it.

    The predicted drop of a plan is the sum of each layer's own drop in the scan: layers
    are assumed to hurt independently (additive), which holds for small drops and is
    optimistic for large ones. Each layer's curve is made non-decreasing (a drop is at
    least the drop at any lower ratio) and negative drops count as 0, so scan noise does
    not reward pruning. Equal drops are told apart by the summed loss increase (treated
    the same way), since small ratios often flip no prediction. The choice is an exact
    multiple-choice knapsack solved by dynamic programming over the amount saved, tracked
    in steps of 1/2000 of the target. Ratios whose drop exceeds `max_drop` are not used.
    A channel group gets one ratio for all its layers.

    Savings of channel pruning overlap (a layer's removed outputs are the next layer's
    removed inputs), so their sum overstates the real saving; given `model` (and
    `example_input`), the plan is applied and the target raised until the real reduction
    meets it (the internal target grows by the ratio of asked to real reduction each
    round; for latency the real reduction is predicted by one `LatencyPredictor`). Raises
    TargetUnreachableError, saying what the scan can reach, otherwise.
    """
    if budget not in BUDGETS:
        raise InvalidPlanError(f"Unknown budget {budget!r}; choose params, flops or latency.")
    if not 0 < target < 1:
        raise InvalidPlanError(f"The target is a fraction to remove between 0 and 1, got {target!r}.")
    granularity = granularity or str(_scan_setting(scan, "granularity"))
    criterion = criterion or str(_scan_setting(scan, "criterion"))
    recalibrate_bn = bool(_scan_setting(scan, "recalibrate_bn", default=False))
    if budget == "latency" and not scan.get("latency_ms", pd.Series(dtype=float)).notna().any():
        raise TargetUnreachableError(
            "The scan has no predicted latency: scan with channel granularity (and latency=True) to plan for speed."
        )
    total = _budget_total(scan, budget)
    curves = _curves(scan, SAVED_COLUMNS[budget], max_drop)
    reachable = sum(max(option.saved for option in options) for options in curves.values()) / total
    if budget == "flops" and reachable == 0 and granularity != "channel":
        raise TargetUnreachableError(
            f"{granularity.capitalize()} pruning keeps a model's dense FLOPs; "
            "use budget='params' or scan with channel granularity."
        )
    if target > reachable + 1e-12:
        raise TargetUnreachableError(_unreachable_message(target, reachable, budget, max_drop))
    members = _group_members(scan)
    measure = None if model is None else _Reduction(model, budget, example_input, _latency_batch(scan, budget))
    asked, achieved = target, 0.0
    for _ in range(CHECK_ROUNDS):
        choice = _allocate(curves, min(asked, reachable) * total)
        ratios = {layer: ratio for group, ratio in choice.items() if ratio > 0 for layer in members[group]}
        plan = PruningPlan(granularity=granularity, criterion=criterion, ratios=ratios, recalibrate_bn=recalibrate_bn)
        if measure is None:
            return plan
        achieved = max(achieved, real := measure(plan))
        if real >= target - 1e-9:
            return plan
        if asked >= reachable:
            break
        asked = asked * target / max(real, 1e-6) + 1.0 / DP_BUCKETS
    raise TargetUnreachableError(_unreachable_message(target, achieved, budget, max_drop))


def _scan_setting(scan: pd.DataFrame, column: str, default: object = None) -> object:
    """The one value of a setting column; `default` for a scan made before the column existed."""
    if column not in scan and default is not None:
        return default
    if column not in scan or scan[column].nunique() != 1:
        raise InvalidPlanError(f"The scan does not say its {column}; pass {column}=… to suggest_ratios.")
    return scan[column].iloc[0]


def _budget_total(scan: pd.DataFrame, budget: str) -> float:
    totals = (scan[TOTAL_COLUMNS[budget]] + scan[SAVED_COLUMNS[budget]]).dropna()
    if totals.empty or not totals.iloc[0] > 0:
        raise TargetUnreachableError(f"The scan has no {budget} figures (the model's FLOPs could not be counted).")
    return float(totals.iloc[0])


def _curves(scan: pd.DataFrame, saved_column: str, max_drop: float | None) -> dict[str, list[_Option]]:
    """Per group: the options (ratio, saved, predicted drop), ratio 0 first."""
    usable = scan.dropna(subset=["metric", saved_column]).drop_duplicates(subset=["group", "ratio"])
    curves = {}
    for group, rows in usable.sort_values("ratio").groupby("group", sort=False):
        options, worst, worst_loss = [_Option(0.0, 0.0, 0.0, 0.0)], 0.0, 0.0
        for row in rows.itertuples():
            worst, worst_loss = max(worst, float(row.drop)), max(worst_loss, float(row.loss_increase))
            if row.ratio > 0 and (max_drop is None or worst <= max_drop):
                options.append(_Option(float(row.ratio), float(getattr(row, saved_column)), worst, worst_loss))
        curves[str(group)] = options
    if not curves:
        raise TargetUnreachableError("The scan has no prunable layer with a measured metric.")
    return curves


def _group_members(scan: pd.DataFrame) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for layer, group in zip(scan["layer"], scan["group"], strict=True):
        members.setdefault(str(group), [])
        if layer not in members[str(group)]:
            members[str(group)].append(str(layer))
    return members


@dataclass(frozen=True)
class _State:
    """A partial allocation: its cost (summed drop, then summed loss increase) and saving."""

    drop: float
    loss_increase: float
    saved: float
    ratios: tuple[float, ...]

    @property
    def cost(self) -> tuple[float, float]:
        return round(self.drop, 9), self.loss_increase


def _allocate(curves: dict[str, list[_Option]], needed: float) -> dict[str, float]:
    """The ratio per group that saves at least `needed` for the least cost.

    States are bucketed by the amount saved (capped at `needed`), keeping the cheapest
    per bucket; a state that costs no less than one saving more is dropped.
    """
    step = needed / DP_BUCKETS
    states = [_State(0.0, 0.0, 0.0, ())]
    for options in curves.values():
        merged: dict[int, _State] = {}
        for state in states:
            for option in options:
                saved = state.saved + option.saved
                bucket = min(int(saved // step), DP_BUCKETS)
                candidate = _State(
                    state.drop + option.drop,
                    state.loss_increase + option.loss_increase,
                    saved,
                    (*state.ratios, option.ratio),
                )
                if bucket not in merged or candidate.cost < merged[bucket].cost:
                    merged[bucket] = candidate
        states, cheapest = [], (math.inf, math.inf)
        for bucket in sorted(merged, reverse=True):
            if merged[bucket].cost < cheapest:
                states.append(merged[bucket])
                cheapest = merged[bucket].cost
    best = min((state for state in states if state.saved >= needed * (1 - 1e-12)), key=lambda state: state.cost)
    return dict(zip(curves, best.ratios, strict=True))


def _latency_batch(scan: pd.DataFrame, budget: str) -> int | None:
    """The batch the scan predicted latency at, so a check on the model times the same batch."""
    if budget != "latency" or "latency_batch" not in scan:
        return None
    batches = scan["latency_batch"].dropna()
    return int(batches.iloc[0]) if len(batches) else None


class _Reduction:
    """The real share of the budget a plan removes from `model` (BatchNorm statistics change no
    size, FLOPs or shape, so plans are applied without re-estimating them)."""

    def __init__(
        self, model: nn.Module, budget: str, example_input: torch.Tensor | None, latency_batch: int | None
    ) -> None:
        if example_input is None:
            raise InvalidPlanError("Checking a suggestion on the model needs its example input.")
        self.model, self.budget, self.example_input = model, budget, example_input
        self.predictor = (
            LatencyPredictor(model, example_input, batch_size=latency_batch) if budget == "latency" else None
        )

    def __call__(self, plan: PruningPlan) -> float:
        pruned = apply_plan(self.model, dataclasses.replace(plan, recalibrate_bn=False), self.example_input).model
        if self.predictor is not None:
            before, after = self.predictor.dense_ms, self.predictor.predict(pruned)
        elif self.budget == "params":
            before, after = count_parameters(self.model)[1], count_parameters(pruned)[1]
        else:
            before, after = (
                count_flops(self.model, self.example_input) or 0,
                count_flops(pruned, self.example_input) or 0,
            )
        return 1.0 - after / before if before else 0.0


def _unreachable_message(target: float, reachable: float, budget: str, max_drop: float | None) -> str:
    limit = f" with no layer losing more than {max_drop:.3g}" if max_drop is not None else ""
    return (
        f"Removing {target:.0%} of the {budget} is out of reach: the scanned ratios{limit} reach "
        f"at most {reachable:.1%}. Lower the target, allow a larger drop, or scan higher ratios."
    )
