"""One scan job: prune one layer alone at one ratio and measure the copy.

A job is independent and deterministic, so any executor (see `executors.py`) can run it
anywhere and get the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import EvalData
from ..errors import PruneScopeError
from ..importance import get_criterion
from ..latency import LatencyPredictor
from ..metrics import count_flops, count_parameters, evaluate
from ..plan import PruningPlan
from ..pruning import apply_plan

EVAL_BATCH = 1024
"""Batch size of the scan's evaluations: few large batches are the fastest on a CPU."""


@dataclass(frozen=True)
class ScanJob:
    """One unit of work: prune `layer` alone by `ratio`."""

    layer: str
    ratio: float


@dataclass(frozen=True)
class ScanSettings:
    """What every job needs besides the model and the data; sent with them once.

    `recalibrate_bn` and `calibration_data` are the BatchNorm policy the plan will use, so
    each copy is measured as the plan would leave it; `latency` (channel and head scans)
    predicts each copy's forward time from one dense profile.
    """

    granularity: str
    criterion: str
    example_input: torch.Tensor
    metric_name: str
    reference: torch.Tensor | None
    flops: int | None
    recalibrate_bn: bool = False
    calibration_data: EvalData | None = None
    latency: LatencyPredictor | None = None
    device: str = "cpu"
    """The device the scanned model was on; a worker elsewhere places its copy on the same kind of device."""


def run_job(model: nn.Module, data: EvalData, settings: ScanSettings, job: ScanJob) -> dict[str, Any]:
    """Prune a copy of `model` as `job` says and measure it; the same on every executor.

    An error the user's model or plan causes is recorded in `note`, not raised, so one
    layer that cannot be pruned does not stop the scan.
    """
    start = time.perf_counter()
    plan = PruningPlan(
        granularity=settings.granularity,
        criterion=settings.criterion,
        ratios={job.layer: job.ratio},
        recalibrate_bn=settings.recalibrate_bn,
    )
    needs_data = get_criterion(settings.criterion).needs_data
    try:
        pruned = apply_plan(
            model,
            plan,
            settings.example_input,
            data if needs_data else None,
            calibration_data=settings.calibration_data,
        ).model
    except PruneScopeError as error:
        failed = dict.fromkeys(("metric", "loss", "params", "nonzero", "flops", "latency_ms"), math.nan)
        return {**failed, "seconds": time.perf_counter() - start, "note": str(error)}
    metrics = evaluate(pruned, data, reference=settings.reference, batch_size=EVAL_BATCH)
    params, nonzero = count_parameters(pruned)
    flops = count_flops(pruned, settings.example_input) if settings.granularity == "channel" else settings.flops
    return {
        "metric": metrics[settings.metric_name],
        "loss": job_loss(metrics, settings.metric_name),
        "params": params,
        "nonzero": nonzero,
        "flops": math.nan if flops is None else flops,
        "latency_ms": math.nan if settings.latency is None else settings.latency.predict(pruned),
        "seconds": time.perf_counter() - start,
        "note": "",
    }


JobResults = Iterator[tuple[ScanJob, dict[str, Any]]]
"""What an executor yields: each job with its result, as they finish."""


def job_loss(metrics: dict[str, float], metric_name: str) -> float:
    """The smooth companion of the metric: cross-entropy with labels, else 1 − cosine to the original."""
    return metrics["loss"] if metric_name == "accuracy" else 1.0 - metrics["cosine"]
