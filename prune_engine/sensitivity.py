"""Sensitivity analysis: prune one layer at a time and see what the model loses.

`sensitivity_scan` prunes each layer alone at each ratio of a grid and records the
metric drop and the parameters and FLOPs saved; `suggest_ratios` turns such a scan into
per-layer ratios that reach a size or FLOPs target for the least predicted drop.

The scan's jobs (one layer at one ratio) are independent and deterministic, so they run
through an executor: `SerialExecutor` (in this process), `ProcessExecutor` (a local
process pool) or `RayExecutor` (a Ray cluster, for models too large for one machine).
Every executor gives the same rows and numbers; only the `seconds` column differs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn

from .data import EvalData, model_fingerprint
from .errors import InvalidPlanError, PruneScopeError
from .importance import ProgressFn, get_criterion
from .layers import get_layer, prunable_layers
from .metrics import count_flops, count_parameters, evaluate, model_outputs
from .plan import PruningPlan
from .pruning import apply_plan
from .structured import ChannelGraph

logger = logging.getLogger(__name__)

RAY_ADDRESS_ENV = "PRUNESCOPE_RAY_ADDRESS"
"""Set to a Ray address (e.g. `ray://head:10001` or `auto`) to run scans on that cluster."""

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
]
"""`params`/`nonzero`: parameters of the pruned model, all and non-zero; `params_saved`:
non-zero parameters fewer than the original (removed by channel pruning, zeroed by
unstructured); `flops`/`flops_saved`: dense FLOPs per forward of the example input;
`group`: the channel group a layer belongs to (layers of one group lose the same
channels, so they share one result); `drop` = baseline − metric; `loss`: cross-entropy
with class labels, else 1 − cosine to the original outputs, a smooth companion of the
metric that still moves when a small change flips no prediction."""

EVAL_BATCH = 1024
"""Batch size of the scan's evaluations: few large batches are the fastest on a CPU."""

POOL_MIN_JOBS = 24
"""Below this many jobs the default executor stays in-process: starting workers costs more."""

SCAN_CACHE_SIZE = 16


class ScanCancelled(PruneScopeError):
    """A scan was cancelled before it finished; `partial` holds the rows finished so far."""

    def __init__(self, message: str, partial: pd.DataFrame) -> None:
        super().__init__(message)
        self.partial = partial


class ExecutorError(PruneScopeError):
    """Worker processes or a Ray cluster could not run the scan."""


class TargetUnreachableError(PruneScopeError, ValueError):
    """No choice of the scanned ratios reaches the requested reduction."""


@dataclass(frozen=True)
class ScanJob:
    """One unit of work: prune `layer` alone by `ratio`."""

    layer: str
    ratio: float


@dataclass(frozen=True)
class ScanSettings:
    """What every job needs besides the model and the data; small, sent with them once."""

    granularity: str
    criterion: str
    example_input: torch.Tensor
    metric_name: str
    reference: torch.Tensor | None
    flops: int | None


def run_job(model: nn.Module, data: EvalData, settings: ScanSettings, job: ScanJob) -> dict[str, Any]:
    """Prune a copy of `model` as `job` says and measure it; the same on every executor.

    An error the user's model or plan causes is recorded in `note`, not raised, so one
    layer that cannot be pruned does not stop the scan.
    """
    start = time.perf_counter()
    plan = PruningPlan(granularity=settings.granularity, criterion=settings.criterion, ratios={job.layer: job.ratio})
    needs_data = get_criterion(settings.criterion).needs_data
    try:
        pruned = apply_plan(model, plan, settings.example_input, data if needs_data else None).model
    except PruneScopeError as error:
        failed = dict.fromkeys(("metric", "loss", "params", "nonzero", "flops"), math.nan)
        return {**failed, "seconds": time.perf_counter() - start, "note": str(error)}
    metrics = evaluate(pruned, data, reference=settings.reference, batch_size=EVAL_BATCH)
    params, nonzero = count_parameters(pruned)
    flops = count_flops(pruned, settings.example_input) if settings.granularity == "channel" else settings.flops
    return {
        "metric": metrics[settings.metric_name],
        "loss": _loss(metrics, settings.metric_name),
        "params": params,
        "nonzero": nonzero,
        "flops": math.nan if flops is None else flops,
        "seconds": time.perf_counter() - start,
        "note": "",
    }


JobResults = Iterator[tuple[ScanJob, dict[str, Any]]]


class ScanExecutor(Protocol):
    """Runs scan jobs somewhere and yields each job's result as it finishes (in any order).

    Closing the iterator early (a cancel, an error) stops jobs that have not started.
    """

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults: ...


class SerialExecutor:
    """Runs the jobs one after the other in this process, with torch's own threads."""

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults:
        for job in jobs:
            yield job, run_job(model, data, settings, job)


_WORKER_STATE: tuple[nn.Module, EvalData, ScanSettings] | None = None


def _init_worker(payload: bytes, threads: int) -> None:
    global _WORKER_STATE
    torch.set_num_threads(threads)
    _WORKER_STATE = pickle.loads(payload)


def _worker_job(job: ScanJob) -> dict[str, Any]:
    assert _WORKER_STATE is not None, "the pool initializer did not run"
    return run_job(*_WORKER_STATE, job)


class ProcessExecutor:
    """A local process pool; the model and data go to each worker once, by its initializer.

    Workers start with "forkserver" (or "spawn" where that is missing), never "fork":
    forking a process in which torch has started threads can deadlock. Each worker uses
    `cpu_count // workers` torch threads so the workers do not fight over cores.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults:
        try:
            payload = pickle.dumps((model, data, settings), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # a model class defined inline, a TorchScript module, an open handle
            raise ExecutorError(
                f"This model cannot be sent to worker processes ({error}); scan with SerialExecutor() instead."
            ) from error
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(jobs)) or 1,
            mp_context=_start_context(),
            initializer=_init_worker,
            initargs=(payload, threads),
        )
        try:
            pending: dict[Future, ScanJob] = {pool.submit(_worker_job, job): job for job in jobs}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    yield job, future.result()
        except BrokenProcessPool as error:
            raise ExecutorError(f"A scan worker process died ({error}); try SerialExecutor().") from error
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _start_context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "prune_engine"])
        return context
    return multiprocessing.get_context("spawn")


class RayExecutor:
    """Runs the jobs as Ray tasks, on a cluster at `address` or on the Ray this process has started.

    The model, the data and the settings are put into Ray's object store once; every
    task receives their references. Ray workers must be able to import `prune_engine`
    and the model's class: install PruneScope on the cluster, or pass
    `runtime_env={"py_modules": [...]}`. Connecting is kept for later scans; `close()`
    disconnects if this executor connected.
    """

    def __init__(
        self,
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        cpus_per_task: float = 1,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.runtime_env = runtime_env
        self.cpus_per_task = cpus_per_task
        self.init_options = dict(init_options or {})
        self._connected_here = False

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults:
        ray = _import_ray()
        self._connect(ray)
        model_ref, data_ref, settings_ref = ray.put(model), ray.put(data), ray.put(settings)
        task = ray.remote(num_cpus=self.cpus_per_task, max_retries=1)(_ray_job)
        threads = max(1, math.floor(self.cpus_per_task))
        pending = {task.remote(model_ref, data_ref, settings_ref, job, threads): job for job in jobs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                yield job, ray.get(done[0])
        except ray.exceptions.RayError as error:
            raise ExecutorError(f"The Ray cluster could not run a scan job: {error}") from error
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        """Disconnect from Ray if this executor connected (a Ray it found running stays)."""
        if self._connected_here:
            _import_ray().shutdown()
            self._connected_here = False

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, runtime_env=self.runtime_env, **self.init_options)
        except Exception as error:  # ray raises ConnectionError, RuntimeError, ValueError… for a bad address
            raise ExecutorError(
                f"Could not connect to Ray at {self.address or 'a new local instance'}: {error}"
            ) from error
        self._connected_here = True


def _ray_job(model: nn.Module, data: EvalData, settings: ScanSettings, job: ScanJob, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    return run_job(model, data, settings, job)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ExecutorError(
            "Scanning on a cluster needs Ray: install ray (pip install 'ray==2.60.0'), or unset "
            f"{RAY_ADDRESS_ENV} to scan on this machine."
        ) from error
    return ray


def default_executor(job_count: int) -> ScanExecutor:
    """Ray when `PRUNESCOPE_RAY_ADDRESS` is set; else a process pool for big scans on a
    multi-core machine; else in-process."""
    address = os.environ.get(RAY_ADDRESS_ENV)
    if address:
        return RayExecutor(address=address)
    if (os.cpu_count() or 1) > 1 and job_count >= POOL_MIN_JOBS:
        return ProcessExecutor()
    return SerialExecutor()


_SCAN_CACHE: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_SCAN_CACHE_LOCK = threading.Lock()


def clear_scan_cache() -> None:
    """Forget every cached scan (they are keyed by content, so this is rarely needed)."""
    with _SCAN_CACHE_LOCK:
        _SCAN_CACHE.clear()


@dataclass(frozen=True)
class _Unit:
    """What one job prunes: a layer, or a channel group scanned through one of its layers."""

    job_layer: str
    group: str
    layers: tuple[str, ...]
    skip_reason: str | None = None


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
) -> pd.DataFrame:
    """Prune each layer alone at each ratio and measure the metric drop and the savings.

    The metric is accuracy when `data` has class labels, otherwise fidelity to the
    original model (top-1 agreement, or cosine for single-output models). Returns one
    row per (layer, ratio) with `SCAN_COLUMNS`, in layer then ratio order. Layers that
    cannot lose channels (e.g. the output layer) get rows with a NaN metric and a note.
    Under channel granularity the layers of one channel group share one job.

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
    key = (
        model_fingerprint(model),
        data.fingerprint(),
        EvalData(example_input).fingerprint(),
        grid,
        granularity,
        criterion,
        tuple(names),
    )
    with _SCAN_CACHE_LOCK:
        if key in _SCAN_CACHE:
            _SCAN_CACHE.move_to_end(key)
            return _SCAN_CACHE[key].copy()
    units = _scan_units(model, names, granularity, example_input)
    settings, baseline = _baseline(model, data, granularity, criterion, example_input)
    jobs = [ScanJob(unit.job_layer, ratio) for unit in units if unit.skip_reason is None for ratio in grid]
    results: dict[ScanJob, dict[str, Any]] = {}
    chosen = executor or default_executor(len(jobs))

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
    with _SCAN_CACHE_LOCK:
        _SCAN_CACHE[key] = table.copy()
        while len(_SCAN_CACHE) > SCAN_CACHE_SIZE:
            _SCAN_CACHE.popitem(last=False)
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
            units.append(_Unit(members[0], group.root, members, group.skip_reason))
            covered.update(members)
    reason = "no prunable channel group reaches it"
    units += [_Unit(name, name, (name,), reason) for name in names if name not in covered]
    order = {name: index for index, name in enumerate(names)}
    return sorted(units, key=lambda unit: order[unit.layers[0]])


def _loss(metrics: dict[str, float], metric_name: str) -> float:
    return metrics["loss"] if metric_name == "accuracy" else 1.0 - metrics["cosine"]


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
    )
    params, nonzero = count_parameters(model)
    return settings, _Baseline(metrics[metric_name], _loss(metrics, metric_name), params, nonzero)


def _scan_frame(
    units: list[_Unit],
    grid: tuple[float, ...],
    results: dict[ScanJob, dict[str, Any]],
    settings: ScanSettings,
    baseline: _Baseline,
) -> pd.DataFrame:
    """Rows of the finished jobs (every member layer of a group gets its group's result)."""
    flops = math.nan if settings.flops is None else settings.flops
    rows = []
    for unit in units:
        coupled = ", ".join(unit.layers[1:])
        for ratio in grid:
            result = results.get(ScanJob(unit.job_layer, ratio))
            if result is None and unit.skip_reason is None:
                continue
            if result is None:
                result = {
                    "metric": math.nan,
                    "loss": math.nan,
                    "params": baseline.params,
                    "nonzero": baseline.nonzero,
                    "flops": flops,
                    "seconds": 0.0,
                    "note": f"cannot lose channels: {unit.skip_reason}",
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
                    }
                )
    return pd.DataFrame(rows, columns=SCAN_COLUMNS)


BUDGETS = ("params", "flops")

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
    parameters (`budget="params"`) or FLOPs for the least predicted metric drop.

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
    round). Raises TargetUnreachableError, saying what the scan can reach, otherwise.
    """
    if budget not in BUDGETS:
        raise InvalidPlanError(f"Unknown budget {budget!r}; choose params or flops.")
    if not 0 < target < 1:
        raise InvalidPlanError(f"The target is a fraction to remove between 0 and 1, got {target!r}.")
    granularity = granularity or _scan_setting(scan, "granularity")
    criterion = criterion or _scan_setting(scan, "criterion")
    saved_column = "params_saved" if budget == "params" else "flops_saved"
    total = _budget_total(scan, budget)
    curves = _curves(scan, saved_column, max_drop)
    reachable = sum(max(option.saved for option in options) for options in curves.values()) / total
    if budget == "flops" and reachable == 0 and granularity != "channel":
        raise TargetUnreachableError(
            f"{granularity.capitalize()} pruning keeps a model's dense FLOPs; "
            "use budget='params' or scan with channel granularity."
        )
    if target > reachable + 1e-12:
        raise TargetUnreachableError(_unreachable_message(target, reachable, budget, max_drop))
    members = _group_members(scan)
    asked, achieved = target, 0.0
    for _ in range(CHECK_ROUNDS):
        choice = _allocate(curves, min(asked, reachable) * total)
        ratios = {layer: ratio for group, ratio in choice.items() if ratio > 0 for layer in members[group]}
        plan = PruningPlan(granularity=granularity, criterion=criterion, ratios=ratios)
        if model is None:
            return plan
        achieved = max(achieved, real := _achieved_fraction(model, plan, budget, example_input))
        if real >= target - 1e-9:
            return plan
        if asked >= reachable:
            break
        asked = asked * target / max(real, 1e-6) + 1.0 / DP_BUCKETS
    raise TargetUnreachableError(_unreachable_message(target, achieved, budget, max_drop))


def _scan_setting(scan: pd.DataFrame, column: str) -> str:
    if column not in scan or scan[column].nunique() != 1:
        raise InvalidPlanError(f"The scan does not say its {column}; pass {column}=… to suggest_ratios.")
    return str(scan[column].iloc[0])


def _budget_total(scan: pd.DataFrame, budget: str) -> float:
    totals = (
        scan["nonzero"] + scan["params_saved"] if budget == "params" else scan["flops"] + scan["flops_saved"]
    ).dropna()
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


def _achieved_fraction(model: nn.Module, plan: PruningPlan, budget: str, example_input: torch.Tensor | None) -> float:
    if example_input is None:
        raise InvalidPlanError("Checking a suggestion on the model needs its example input.")
    pruned = apply_plan(model, plan, example_input).model
    if budget == "params":
        before, after = count_parameters(model)[1], count_parameters(pruned)[1]
    else:
        before, after = count_flops(model, example_input) or 0, count_flops(pruned, example_input) or 0
    return 1.0 - after / before if before else 0.0


def _unreachable_message(target: float, reachable: float, budget: str, max_drop: float | None) -> str:
    limit = f" with no layer losing more than {max_drop:.3g}" if max_drop is not None else ""
    return (
        f"Removing {target:.0%} of the {budget} is out of reach: the scanned ratios{limit} reach "
        f"at most {reachable:.1%}. Lower the target, allow a larger drop, or scan higher ratios."
    )
