"""Comparing pruning methods fairly: one model, several ratios, repeats where chance enters.

A method is a criterion with a granularity. The random criterion is repeated over seeds
and data-driven criteria over disjoint calibration subsets, so every curve comes with the
spread that chance alone gives; magnitude criteria depend on neither and run once. Every
run is measured by the model's own figure (`training.recovery_metric`: accuracy with class
labels, perplexity for a language model, retrieval agreement for an embedding model, else
agreement with the original), optionally again after a short recovery (fine-tuning on
labels, or distillation from the original when there are none). `summarise` turns the
runs into one row per method, ratio and recovery: mean, lowest and highest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from .data import EvalData, ModelBundle
from .errors import InvalidPlanError
from .importance import get_criterion
from .plan import PruningPlan
from .pruning import apply_plan
from .training import distill, fine_tune, recovery_metric

RECOVERY_CHOICES = (None, "fine_tune", "distill")
COMPARISON_COLUMNS = (
    "method",
    "criterion",
    "granularity",
    "ratio",
    "repeat",
    "recovered",
    "metric",
    "value",
    "seconds",
)
"""Columns of `compare_methods`: one row per run (`repeat`: seed or calibration subset index;
`recovered`: measured after recovery; `seconds`: the pruning's wall time)."""


@dataclass(frozen=True)
class Method:
    """A way to prune: a criterion at a granularity, with the plan's other settings in `options`
    (e.g. `{"n": 2, "m": 4}` or `{"recalibrate_bn": True}`). `name` labels its curve."""

    criterion: str
    granularity: str = "unstructured"
    options: tuple[tuple[str, object], ...] = ()
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.criterion} ({self.granularity})"

    def plan(self, ratio: float, seed: int) -> PruningPlan:
        return PruningPlan(
            granularity=self.granularity,
            criterion=self.criterion,
            scope="layer",
            global_ratio=ratio,
            seed=seed,
            **dict(self.options),
        )


def calibration_subsets(data: EvalData, count: int, size: int, seed: int = 0) -> list[EvalData]:
    """`count` disjoint random subsets of `size` examples of `data` (smaller if `data` is short)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    size = max(1, min(size, len(data) // max(count, 1)))
    subsets = []
    for index in range(count):
        chosen = order[index * size : (index + 1) * size]
        subsets.append(EvalData(data.inputs[chosen], None if data.labels is None else data.labels[chosen]))
    return subsets


def compare_methods(
    model: nn.Module,
    example_input: torch.Tensor,
    eval_data: EvalData,
    calibration_data: EvalData,
    methods: Sequence[Method],
    ratios: Sequence[float],
    repeats: int = 3,
    calibration_size: int = 128,
    recovery: str | None = None,
    recovery_data: EvalData | None = None,
    recovery_epochs: int = 1,
    recovery_lr: float = 1e-4,
    progress: Callable[[float, str], None] | None = None,
) -> pd.DataFrame:
    """Prune `model` by every method at every ratio and measure it on `eval_data` (`COMPARISON_COLUMNS`).

    The random criterion runs with seeds 0…repeats−1; data-driven criteria with `repeats`
    disjoint subsets of `calibration_size` examples of `calibration_data`; magnitude criteria
    once. With `recovery` each pruned model is also measured after `recovery_epochs` of
    fine-tuning (`"fine_tune"`, needs labels) or distillation from `model` (`"distill"`) on
    `recovery_data` (default: `calibration_data`).
    """
    if recovery not in RECOVERY_CHOICES:
        raise InvalidPlanError(f"Unknown recovery {recovery!r}; choose fine_tune, distill or none.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidPlanError(f"repeats must be a whole number of at least 1, got {repeats!r}.")
    subsets = calibration_subsets(calibration_data, repeats, calibration_size)
    runs = [(method, ratio, repeat) for method in methods for ratio in ratios for repeat in _repeats(method, repeats)]
    rows = []
    for index, (method, ratio, repeat) in enumerate(runs):
        if progress is not None:
            progress(index / max(len(runs), 1), f"{method.label} at {ratio:.0%} (repeat {repeat + 1})")
        data = subsets[repeat] if get_criterion(method.criterion).needs_data else None
        seed = repeat if method.criterion == "random" else 0
        start = time.perf_counter()
        pruned = apply_plan(model, method.plan(ratio, seed), example_input, data=data, calibration_data=subsets[repeat])
        seconds = time.perf_counter() - start
        base = {"method": method.label, "criterion": method.criterion, "granularity": method.granularity}
        base |= {"ratio": ratio, "repeat": repeat, "seconds": seconds}
        metric, value = recovery_metric(pruned.model, eval_data, model)
        rows.append({**base, "recovered": False, "metric": metric, "value": value})
        if recovery is not None:
            recovered = _recover(
                pruned.model, model, recovery, recovery_data or calibration_data, recovery_epochs, recovery_lr
            )
            rows.append(
                {**base, "recovered": True, "metric": metric, "value": recovery_metric(recovered, eval_data, model)[1]}
            )
    if progress is not None:
        progress(1.0, "done")
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def _repeats(method: Method, repeats: int) -> range:
    criterion = get_criterion(method.criterion)
    return range(repeats) if criterion.needs_data or criterion.name == "random" else range(1)


def _recover(
    pruned: nn.Module, original: nn.Module, recovery: str, data: EvalData, epochs: int, lr: float
) -> nn.Module:
    if recovery == "distill":
        return distill(pruned, original, data, epochs=epochs, lr=lr)
    return fine_tune(pruned, data, epochs=epochs, lr=lr)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per method, ratio and recovery: `mean`, `low` and `high` of the value over repeats, and `runs`."""
    grouped = runs.groupby(["method", "ratio", "recovered", "metric"], sort=False)["value"]
    return grouped.agg(mean="mean", low="min", high="max", runs="count").reset_index()


def comparison_request(
    methods: Sequence[Method], ratios: Sequence[float], repeats: int = 3, recovery: str | None = None
) -> str:
    """A comparison's settings as JSON text (what `run_request` reads; a cache key for the app)."""
    return json.dumps(
        {
            "methods": [
                {"criterion": m.criterion, "granularity": m.granularity, "options": dict(m.options), "name": m.name}
                for m in methods
            ],
            "ratios": [float(ratio) for ratio in ratios],
            "repeats": repeats,
            "recovery": recovery,
        },
        sort_keys=True,
    )


def run_request(
    bundle: ModelBundle, request: str, progress: Callable[[float, str], None] | None = None
) -> pd.DataFrame:
    """`compare_methods` on a bundle's evaluation data, calibrated on its training data (else its
    evaluation data), with the settings of `comparison_request`'s JSON."""
    settings = json.loads(request)
    if bundle.eval_data is None:
        raise InvalidPlanError("Comparing methods needs evaluation data; load some with the model first.")
    methods = [
        Method(item["criterion"], item["granularity"], tuple(sorted(item["options"].items())), item["name"])
        for item in settings["methods"]
    ]
    return compare_methods(
        bundle.model,
        bundle.example_input,
        bundle.eval_data,
        bundle.train_data or bundle.eval_data,
        methods,
        settings["ratios"],
        repeats=int(settings["repeats"]),
        recovery=settings["recovery"],
        recovery_lr=1e-3 if settings["recovery"] == "fine_tune" else 1e-4,
        progress=progress,
    )
