"""The sensitivity scan: prune one layer at a time and see what the model loses.

`sensitivity_scan` prunes each layer alone at each ratio of a grid (one job each, see
`jobs.py`), runs the jobs through an executor (`executors.py`) and records the metric
drop and the parameters and FLOPs saved, one row per (layer, ratio).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..data import EvalData, model_fingerprint
from ..errors import InvalidPlanError, PruneScopeError
from ..importance import ProgressFn
from ..latency import SHAPE_CHANGING, LatencyPredictor
from ..layers import get_layer, prunable_layers
from ..metrics import count_flops, count_parameters, evaluate, model_outputs
from ..placement import model_device
from ..plan import PruningPlan
from ..status import Blocked, BlockedBy
from ..structured import ChannelGraph
from .cache import cached_scan, store_scan
from .executors import ScanExecutor, default_executor
from .jobs import EVAL_BATCH, ScanJob, ScanSettings, job_loss

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

SCAN_COLUMNS = [
    "layer",
    "group",
    "ratio",
    "metric",
    "metric_name",
    "baseline",
    "drop",
    "loss",
    "loss_increase",
    "params",
    "nonzero",
    "params_saved",
    "flops",
    "flops_saved",
    "seconds",
    "note",
    "granularity",
    "criterion",
    "recalibrate_bn",
    "latency_ms",
    "latency_saved",
    "latency_batch",
]
"""`params`/`nonzero`: parameters of the pruned model, all and non-zero; `params_saved`:
non-zero parameters fewer than the original (removed by channel pruning, zeroed by
unstructured); `flops`/`flops_saved`: dense FLOPs per forward of the example input;
`group`: the channel group a layer belongs to (layers of one group lose the same
channels, so they share one result); `drop` = baseline − metric; `loss`: cross-entropy
with class labels, else 1 − cosine to the original outputs, a smooth companion of the
metric that still moves when a small change flips no prediction; `recalibrate_bn`: whether
each copy's BatchNorm statistics were re-estimated (the policy a plan from this scan
carries); `latency_ms`/`latency_saved`: predicted milliseconds of one forward pass of the
example input at `latency_batch` rows, and fewer than the dense model's (NaN where the granularity does not change
shapes, or latency was not asked for)."""


class ScanCancelled(PruneScopeError):
    """A scan was cancelled before it finished; `partial` holds the rows finished so far."""

    def __init__(self, message: str, partial: pd.DataFrame) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class _Unit:
    """What one job prunes: a layer, or a channel group scanned through one of its layers."""

    job_layer: str
    group: str
    layers: tuple[str, ...]
    blocked: Blocked | None = None


def sensitivity_scan(
    model: nn.Module,
    data: EvalData,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    granularity: str = "unstructured",
    criterion: str = "l1",
    layers: Sequence[str] | None = None,
    executor: ScanExecutor | None = None,
    progress: ProgressFn | None = None,
    example_input: torch.Tensor | None = None,
    cancel: threading.Event | None = None,
    recalibrate_bn: bool = False,
    calibration_data: EvalData | None = None,
    latency: bool = True,
    latency_batch: int | None = None,
) -> pd.DataFrame:
    """Prune each layer alone at each ratio and measure the metric drop and the savings.

    The metric is accuracy when `data` has class labels, otherwise fidelity to the
    original model (top-1 agreement, or cosine for single-output models). Returns one
    row per (layer, ratio) with `SCAN_COLUMNS`, in layer then ratio order. Layers that
    cannot lose channels (e.g. the output layer) get rows with a NaN metric and a note.
    Under channel granularity the layers of one channel group share one job.

    `recalibrate_bn` measures each copy with its BatchNorm statistics re-estimated on
    `calibration_data` (training examples, else `data`), as `apply_plan` does for a plan
    that asks for it: a scan must use the policy the plan will use, or its drops mislead
    (digits_resnet at −50 % parameters: predicted 0.00 points, measured 20.8 without it).
    With `latency` (channel and head scans), each copy's forward time on the example input
    is predicted from one dense profile (`LatencyPredictor`, one torch thread, the example
    input repeated to `latency_batch` rows if given), for `suggest_ratios(..., budget="latency")`.

    `executor` defaults to `default_executor`. `progress(fraction, message)` is called
    after every finished job; setting `cancel` stops the scan, which then raises
    `ScanCancelled` carrying the rows finished so far. Finished scans are cached in
    this process by model, data and settings.
    """
    grid = _checked_ratios(ratios)
    PruningPlan(granularity=granularity, criterion=criterion)
    if granularity == "n:m":
        raise InvalidPlanError("N:M sparsity is fixed by n and m, so there is no ratio to scan; scan unstructured.")
    example_input = data.inputs[:1] if example_input is None else example_input
    names = _checked_layers(model, layers)
    calibration_data = (calibration_data if calibration_data is not None else data) if recalibrate_bn else None
    latency = latency and granularity in SHAPE_CHANGING
    key = (
        model_fingerprint(model),
        data.fingerprint(),
        EvalData(example_input).fingerprint(),
        grid,
        granularity,
        criterion,
        tuple(names),
        recalibrate_bn,
        None if calibration_data is None else calibration_data.fingerprint(),
        latency,
        latency_batch,
    )
    cached = cached_scan(key)
    if cached is not None:
        return cached
    units = _scan_units(model, names, granularity, example_input)
    settings, baseline = _baseline(model, data, granularity, criterion, example_input)
    predictor = LatencyPredictor(model, example_input, batch_size=latency_batch) if latency else None
    settings = dataclasses.replace(
        settings, recalibrate_bn=recalibrate_bn, calibration_data=calibration_data, latency=predictor
    )
    jobs = [ScanJob(unit.job_layer, ratio) for unit in units if unit.blocked is None for ratio in grid]
    results: dict[ScanJob, dict[str, Any]] = {}
    chosen = executor or default_executor(len(jobs), settings.device)

    def frame() -> pd.DataFrame:
        return _scan_frame(units, grid, results, settings, baseline)

    if cancel is not None and cancel.is_set():
        raise ScanCancelled("The scan was cancelled before it started.", frame())
    with contextlib.closing(chosen.run(model, data, settings, jobs)) as finished:
        for job, row in finished:
            results[job] = row
            if progress is not None:
                shown = "not prunable" if math.isnan(row["metric"]) else f"{settings.metric_name} {row['metric']:.3f}"
                progress(len(results) / len(jobs), f"{job.layer} at {job.ratio:.0%}: {shown}")
            if cancel is not None and cancel.is_set() and len(results) < len(jobs):
                raise ScanCancelled(f"The scan was cancelled after {len(results)} of {len(jobs)} jobs.", frame())
    table = frame()
    store_scan(key, table)
    return table


def _checked_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    for ratio in ratios:
        PruningPlan(ratios={"layer": ratio})
    grid = tuple(sorted({float(ratio) for ratio in ratios}))
    if not grid:
        raise InvalidPlanError("Give at least one ratio to scan, e.g. 0.1, 0.2, …, 0.9.")
    return grid


def _checked_layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    known = [layer.name for layer in prunable_layers(model)]
    if layers is None:
        return known
    for name in layers:
        get_layer(model, name)
    wanted = set(layers)
    return [name for name in known if name in wanted]


def _scan_units(model: nn.Module, names: list[str], granularity: str, example_input: torch.Tensor) -> list[_Unit]:
    if granularity != "channel":
        return [_Unit(name, name, (name,)) for name in names]
    wanted = set(names)
    units, covered = [], set()
    graph = ChannelGraph(model, example_input)
    groups = graph.groups()
    graph.release()
    for group in groups:
        members = tuple(layer for layer in group.layers if layer in wanted and layer not in covered)
        if members:
            units.append(_Unit(members[0], group.root, members, group.blocked))
            covered.update(members)
    unreached = Blocked(BlockedBy.NOT_REACHED, "no prunable channel group reaches it")
    units += [_Unit(name, name, (name,), unreached) for name in names if name not in covered]
    order = {name: index for index, name in enumerate(names)}
    return sorted(units, key=lambda unit: order[unit.layers[0]])


@dataclass(frozen=True)
class _Baseline:
    """The unpruned model's figures that every row is compared with."""

    metric: float
    loss: float
    params: int
    nonzero: int


def _baseline(
    model: nn.Module, data: EvalData, granularity: str, criterion: str, example_input: torch.Tensor
) -> tuple[ScanSettings, _Baseline]:
    outputs = model_outputs(model, data, EVAL_BATCH)
    metrics = evaluate(model, data, reference=outputs, batch_size=EVAL_BATCH)
    if "accuracy" in metrics:
        metric_name, reference = "accuracy", None
    else:
        metric_name, reference = ("agreement" if "agreement" in metrics else "cosine"), outputs
    settings = ScanSettings(
        granularity=granularity,
        criterion=criterion,
        example_input=example_input,
        metric_name=metric_name,
        reference=reference,
        flops=count_flops(model, example_input),
        device=str(model_device(model)),
    )
    params, nonzero = count_parameters(model)
    return settings, _Baseline(metrics[metric_name], job_loss(metrics, metric_name), params, nonzero)


def _scan_frame(
    units: list[_Unit],
    grid: tuple[float, ...],
    results: dict[ScanJob, dict[str, Any]],
    settings: ScanSettings,
    baseline: _Baseline,
) -> pd.DataFrame:
    """Rows of the finished jobs (every member layer of a group gets its group's result)."""
    flops = math.nan if settings.flops is None else settings.flops
    dense_ms = math.nan if settings.latency is None else settings.latency.dense_ms
    latency_batch = None if settings.latency is None else settings.latency.profile.batch
    rows = []
    for unit in units:
        coupled = ", ".join(unit.layers[1:])
        for ratio in grid:
            result = results.get(ScanJob(unit.job_layer, ratio))
            if result is None and unit.blocked is None:
                continue
            if result is None:
                result = {
                    "metric": math.nan,
                    "loss": math.nan,
                    "params": baseline.params,
                    "nonzero": baseline.nonzero,
                    "flops": flops,
                    "latency_ms": dense_ms,
                    "seconds": 0.0,
                    "note": f"cannot lose channels: {unit.blocked.reason}",
                }
            for layer in unit.layers:
                note = result["note"]
                if not note and coupled:
                    others = ", ".join(other for other in unit.layers if other != layer)
                    note = f"coupled with {others}: they lose the same channels"
                rows.append(
                    {
                        "layer": layer,
                        "group": unit.group,
                        "ratio": ratio,
                        "metric": result["metric"],
                        "metric_name": settings.metric_name,
                        "baseline": baseline.metric,
                        "drop": baseline.metric - result["metric"],
                        "loss": result["loss"],
                        "loss_increase": result["loss"] - baseline.loss,
                        "params": result["params"],
                        "nonzero": result["nonzero"],
                        "params_saved": baseline.nonzero - result["nonzero"],
                        "flops": result["flops"],
                        "flops_saved": flops - result["flops"],
                        "seconds": result["seconds"],
                        "note": note,
                        "granularity": settings.granularity,
                        "criterion": settings.criterion,
                        "recalibrate_bn": settings.recalibrate_bn,
                        "latency_ms": result["latency_ms"],
                        "latency_saved": dense_ms - result["latency_ms"],
                        "latency_batch": latency_batch,
                    }
                )
    return pd.DataFrame(rows, columns=SCAN_COLUMNS)
