"""Every cache of the app, in one module, and which of them sessions share.

Shared by every session, read-only (`st.cache_resource`): sample models, plan previews,
pruned models, iterative and sparsity-training results, the experiment store and the
importance shelf. Nothing may change what they hold in place: pruning and training work on copies.

Shared by every session, copied on each read (`st.cache_data`): tables, numbers, histograms,
outputs, scans and suggestions, keyed by the model's content fingerprint; the model itself is
passed as an unhashed `_model` argument.

Per session (`session_memo` in `st.session_state`, bounded by `put_latest`): latency
measurements and which results were saved to the history.

The engine keeps two caches of its own, both bounded: importance scores per (model, criterion)
and finished sensitivity scans. Every cache here is bounded too (`max_entries`, and a time to
live for pruned models and previews), so a server used by many sessions keeps only the latest few results.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

import prune_engine as pe
from prune_engine.comparison import run_request
from prune_engine.data import model_fingerprint
from prune_engine.experiments import default_db_path
from prune_engine.importance import ProgressFn
from prune_engine.latency import LatencyPredictor
from prune_engine.placement import placement
from prune_engine.sensitivity import ScanExecutor
from sample_models import load_sample
from sample_models.tiny_gpt import continue_text
from workbench import graph as graph_drawing
from workbench.capabilities import criterion_data
from workbench.session import LoadedModel, PrunedModel
from workbench.tasks import (
    L1_LEARNING_RATE,
    IterativeRequest,
    SparseRequest,
    SparseRun,
    seconds_per_epoch,
    slimming_plan,
)


@st.cache_resource(show_spinner="Loading the sample model…")
def load_sample_model(name: str) -> LoadedModel:
    """Sample `name` with its fingerprints, loaded once per server and shared read-only."""
    return LoadedModel.from_bundle(load_sample(name), source="sample")


@st.cache_data(show_spinner=False, max_entries=32)
def layer_table(fingerprint: str, _model: nn.Module) -> pd.DataFrame:
    """`prune_engine.layer_stats` of the model with this fingerprint."""
    return pe.layer_stats(_model)


@st.cache_data(show_spinner=False, max_entries=32)
def summary(
    fingerprint: str, _model: nn.Module, _example_input: torch.Tensor, sizes: bool = True
) -> dict[str, float | int | None]:
    """`prune_engine.model_summary`: params, non-zeros, FLOPs and (with `sizes`) bytes."""
    return pe.model_summary(_model, _example_input, sizes=sizes)


@st.cache_data(show_spinner="Evaluating the model…", max_entries=32)
def evaluation(fingerprint: str, data_fingerprint: str, _model: nn.Module, _data: pe.EvalData) -> dict[str, float]:
    """`prune_engine.evaluate` of the model on its evaluation data."""
    return pe.evaluate(_model, _data)


@st.cache_data(show_spinner=False, max_entries=256)
def histogram(
    fingerprint: str,
    layer_name: str,
    _model: nn.Module,
    bins: int = 100,
    value_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`(counts, edges)` of one layer's weights (over `value_range`, e.g. another model's bins, when given):
    only the bins ever reach the browser."""
    return pe.weight_histogram(_model, layer_name, bins=bins, value_range=value_range)


@st.cache_data(show_spinner=False, max_entries=256)
def channel_l1_norms(fingerprint: str, layer_name: str, _model: nn.Module) -> np.ndarray:
    """The L1 norm of each output channel of one layer."""
    return pe.channel_norms(_model, layer_name, p=1.0).cpu().numpy()


def model_evaluation(loaded: LoadedModel) -> dict[str, float] | None:
    """The cached evaluation of `loaded` on its own data, or None when it has none."""
    data = loaded.bundle.eval_data
    if data is None or loaded.data_fingerprint is None:
        return None
    return evaluation(loaded.fingerprint, loaded.data_fingerprint, loaded.bundle.model, data)


def model_summary(loaded: LoadedModel) -> dict[str, float | int | None]:
    """The cached summary of `loaded` on its example input."""
    return summary(loaded.fingerprint, loaded.bundle.model, loaded.bundle.example_input)


def model_layers(loaded: LoadedModel) -> pd.DataFrame:
    """The cached per-layer statistics of `loaded`."""
    return layer_table(loaded.fingerprint, loaded.bundle.model)


def layer_names(loaded: LoadedModel) -> list[str]:
    """The names of `loaded`'s prunable layers, in model order."""
    return model_layers(loaded)["name"].tolist()


class _SingleThreaded:
    """Counts the callers inside `single_threaded`, so overlapping sessions restore the thread count once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.threads_before = 1


_single_threaded = _SingleThreaded()


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread inside, for small models worked on live.

    They are no slower on one thread, and a server sharing its cores with browsers and other
    sessions stops stalling: with two threads and the other core busy, a forward pass of the
    MLP sample measured 70 ms instead of 1 ms.
    """
    counter = _single_threaded
    with counter.lock:
        if counter.depth == 0:
            counter.threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        counter.depth += 1
    try:
        yield
    finally:
        with counter.lock:
            counter.depth -= 1
            if counter.depth == 0:
                torch.set_num_threads(counter.threads_before)


SHARED_RESULTS = 8
"""Pruned models and plan previews kept for all sessions together: the latest few, enough for the
sessions of a classroom to share the results of the same plans without the cache growing with use."""
SHARED_RESULTS_TTL = dt.timedelta(hours=1)
"""Shared results unused for this long are dropped."""

CALIBRATION_EXAMPLES = 128
"""Training examples that re-estimate BatchNorm statistics after pruning (when a plan asks), in the
Prune page, scans, suggestions and trainings alike. On digits_cnn and digits_resnet at 30/50/70 %
channels, accuracy with 128 stayed within the spread between three sets of 256 (e.g. 89.4–90.8 % both
at 50 % on the ResNet), and half the examples halve the time every live slider step spends on it."""


@st.cache_resource(show_spinner=False, max_entries=SHARED_RESULTS, ttl=SHARED_RESULTS_TTL)
def plan_preview(
    fingerprint: str,
    plan_json: str,
    data_fingerprint: str | None,
    _model: nn.Module,
    _example_input: torch.Tensor,
    _data: pe.EvalData | None,
) -> pe.PlanPreview:
    """`prune_engine.preview_plan`, shared read-only: its score tensors are not copied on every rerun."""
    return pe.preview_plan(_model, pe.PruningPlan.from_json(plan_json), _example_input, _data)


@st.cache_resource(show_spinner=False, max_entries=SHARED_RESULTS, ttl=SHARED_RESULTS_TTL)
def pruned_model(
    fingerprint: str, plan_json: str, data_fingerprint: str | None, batchnorm_later: bool, _loaded: LoadedModel
) -> PrunedModel:
    """`prune_engine.apply_plan` of a plan to a model, shared read-only like the models it comes from."""
    plan = pe.PruningPlan.from_json(plan_json)
    return PrunedModel.from_result(apply(_loaded, plan, defer_batchnorm=batchnorm_later), _loaded)


@st.cache_resource(show_spinner=False, max_entries=SHARED_RESULTS, ttl=SHARED_RESULTS_TTL)
def finished_model(
    fingerprint: str, data_fingerprint: str | None, _loaded: LoadedModel, _draft: PrunedModel
) -> PrunedModel:
    """A draft with its BatchNorm statistics re-estimated (`prune_engine.finish_batchnorm`), shared read-only."""
    result = pe.finish_batchnorm(_draft.result, _calibration_for(_loaded.bundle, _draft.plan))
    return PrunedModel.from_result(result, _loaded, draft_fingerprint=_draft.fingerprint)


def calibration_examples(bundle: pe.ModelBundle) -> pe.EvalData | None:
    """The training examples that re-estimate BatchNorm statistics after pruning, or None without training data."""
    return bundle.train_data.subset(CALIBRATION_EXAMPLES) if bundle.train_data is not None else None


def _calibration_for(bundle: pe.ModelBundle, plan: pe.PruningPlan) -> pe.EvalData | None:
    """What re-estimates BatchNorm after `plan`: the calibration examples, else (as `apply_plan` does) the
    criterion's data."""
    calibration = calibration_examples(bundle)
    return calibration if calibration is not None else criterion_data(bundle, plan.criterion)


def apply(
    loaded: LoadedModel,
    plan: pe.PruningPlan,
    progress: Callable[[float, str], None] | None = None,
    *,
    defer_batchnorm: bool = False,
) -> pe.PruneResult:
    """Prune a copy of `loaded` as `plan` says, with its data for data-driven criteria and BatchNorm statistics
    (left for `finished` when `defer_batchnorm`)."""
    bundle = loaded.bundle
    data = criterion_data(bundle, plan.criterion)
    return pe.apply_plan(
        bundle.model,
        plan,
        bundle.example_input,
        data,
        progress=progress,
        calibration_data=_calibration_for(bundle, plan),
        defer_batchnorm=defer_batchnorm,
    )


@st.cache_data(show_spinner=False, max_entries=32)
def outputs(fingerprint: str, data_fingerprint: str, _model: nn.Module, _data: pe.EvalData) -> np.ndarray:
    """`prune_engine.model_outputs` of the model on its evaluation data, as an array."""
    return pe.model_outputs(_model, _data).cpu().numpy()


def preview(loaded: LoadedModel, plan: pe.PruningPlan) -> pe.PlanPreview:
    """The cached preview of `plan` on `loaded`: ratios the layers would get and the scores behind them."""
    bundle = loaded.bundle
    return plan_preview(
        loaded.fingerprint,
        plan.to_json(),
        loaded.data_fingerprint,
        bundle.model,
        bundle.example_input,
        criterion_data(bundle, plan.criterion),
    )


def pruned(loaded: LoadedModel, plan: pe.PruningPlan, *, batchnorm_later: bool = False) -> PrunedModel:
    """The cached result of applying `plan` to `loaded`; a draft that leaves BatchNorm re-estimation to
    `finished` when `batchnorm_later` and the plan asks for one (its structure and figures are final)."""
    later = batchnorm_later and plan.recalibrate_bn
    return pruned_model(loaded.fingerprint, plan.to_json(), loaded.data_fingerprint, later, loaded)


def finished(loaded: LoadedModel, pruned: PrunedModel) -> PrunedModel:
    """`pruned` ready for everything that runs it: a draft's BatchNorm statistics re-estimated (cached)."""
    if not pruned.result.batchnorm_pending:
        return pruned
    return finished_model(pruned.fingerprint, loaded.data_fingerprint, loaded, pruned)


def pruned_summary(loaded: LoadedModel, result: PrunedModel, sizes: bool = True) -> dict[str, float | int | None]:
    """The cached summary of a pruned model on its original's example input (without its sizes in bytes
    unless `sizes`: the Prune page shows none at every slider step)."""
    return summary(result.fingerprint, result.model, loaded.bundle.example_input, sizes)


def pruned_evaluation(loaded: LoadedModel, result: PrunedModel) -> dict[str, float] | None:
    """The cached evaluation of a pruned model on its original's data, or None without data."""
    data = loaded.bundle.eval_data
    if data is None or loaded.data_fingerprint is None:
        return None
    return evaluation(result.fingerprint, loaded.data_fingerprint, result.model, data)


@st.cache_resource(show_spinner=False, max_entries=4)
def experiment_store(path: str) -> pe.ExperimentStore:
    """The experiment database at `path`, opened once per server and shared by every session (it is thread-safe)."""
    return pe.ExperimentStore(path)


def experiments() -> pe.ExperimentStore:
    """The experiment database the app records into: `$PRUNESCOPE_DB`, else `.prunescope/experiments.db`."""
    return experiment_store(str(default_db_path()))


# --- Sensitivity page: scans, suggestions and trainings ------------------------------------


@st.cache_data(show_spinner=False, max_entries=16)
def scan_table(
    fingerprint: str,
    data_fingerprint: str,
    ratios: tuple[float, ...],
    granularity: str,
    criterion: str,
    layers: tuple[str, ...],
    recalibrate_bn: bool,
    _loaded: LoadedModel,
    _executor: ScanExecutor,
    _progress: ProgressFn,
    _cancel: threading.Event,
) -> pd.DataFrame:
    """`prune_engine.sensitivity_scan` of a model on its evaluation data, per model, data and settings;
    BatchNorm re-estimated on the same training examples as an applied plan (`apply`) when asked."""
    bundle = _loaded.bundle
    calibration = calibration_examples(bundle) if recalibrate_bn else None
    return pe.sensitivity_scan(
        bundle.model,
        bundle.eval_data,
        ratios,
        granularity,
        criterion,
        list(layers),
        executor=_executor,
        progress=_progress,
        example_input=bundle.example_input,
        cancel=_cancel,
        recalibrate_bn=recalibrate_bn,
        calibration_data=calibration,
    )


@st.cache_data(show_spinner="Choosing ratios…", max_entries=64)
def suggestion(
    fingerprint: str, scan: pd.DataFrame, target: float, budget: str, max_drop: float | None, _loaded: LoadedModel
) -> tuple[pe.PruningPlan | None, str | None]:
    """`prune_engine.suggest_ratios` checked on the model: the plan, or why there is none."""
    bundle = _loaded.bundle
    try:
        plan = pe.suggest_ratios(scan, target, budget, max_drop, model=bundle.model, example_input=bundle.example_input)
    except pe.PruneScopeError as error:
        return None, str(error)
    return plan, None


@st.cache_resource(show_spinner=False, max_entries=4)
def iterative_result(
    fingerprint: str,
    data_key: str,
    request: IterativeRequest,
    _loaded: LoadedModel,
    _progress: ProgressFn,
) -> pe.PruneResult:
    """`prune_engine.iterative_prune` of a model, shared read-only like the models it comes from."""
    bundle = _loaded.bundle
    return pe.iterative_prune(
        bundle.model,
        pe.PruningPlan.from_json(request.plan_json),
        bundle.train_data,
        bundle.eval_data,
        steps=request.steps,
        schedule=request.schedule,
        epochs_per_step=request.epochs,
        lr=request.lr,
        progress=_progress,
        example_input=bundle.example_input,
        recovery=request.recovery,
    )


@st.cache_resource(show_spinner=False, max_entries=4)
def sparse_run(
    fingerprint: str, data_key: str, request: SparseRequest, _loaded: LoadedModel, _progress: ProgressFn
) -> SparseRun:
    """Train the model `epochs` more epochs without the penalty, then with it (`prune_engine.train_sparse`)."""
    bundle = _loaded.bundle
    plain = pe.fine_tune(
        bundle.model,
        bundle.train_data,
        epochs=request.epochs,
        lr=L1_LEARNING_RATE,
        progress=lambda done, message: _progress(done / 2, f"Without L1: {message}"),
    )
    sparse = pe.train_sparse(
        bundle.model,
        bundle.train_data,
        request.l1_lambda,
        request.epochs,
        target=request.target,
        lr=L1_LEARNING_RATE,
        progress=lambda done, message: _progress(0.5 + done / 2, f"With L1: {message}"),
    )
    return SparseRun(plain, sparse, model_fingerprint(sparse))


@st.cache_data(show_spinner="Pruning both models…", max_entries=32)
def pruned_accuracies(
    fingerprint: str,
    data_fingerprint: str | None,
    sparse_fingerprint: str,
    request: SparseRequest,
    ratio: float,
    _loaded: LoadedModel,
    _run: SparseRun,
) -> pd.DataFrame:
    """Accuracy of the original, the plain training and the L1 training, before and after the same pruning."""
    bundle = _loaded.bundle
    plan = slimming_plan(request.target, ratio)
    calibration = calibration_examples(bundle)
    rows = []
    more = f"+{request.epochs} epoch{'' if request.epochs == 1 else 's'}"
    trainings = (
        ("original", bundle.model),
        (f"{more}, no L1", _run.plain),
        (f"{more}, L1 λ={request.l1_lambda:g}", _run.sparse),
    )
    for training, model in trainings:
        pruned = pe.apply_plan(model, plan, bundle.example_input, bundle.eval_data, calibration_data=calibration)
        rows.append(
            {
                "training": training,
                "trained_accuracy": pe.evaluate(model, bundle.eval_data)["accuracy"],
                "pruned_accuracy": pe.evaluate(pruned.model, bundle.eval_data)["accuracy"],
            }
        )
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=32)
def scale_histograms(
    fingerprint: str, sparse_fingerprint: str, _before: nn.Module, _after: nn.Module
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Histograms, on shared bins, of |γ| of every channel that has a BatchNorm scale, before and after."""
    values = [
        np.concatenate([scores.cpu().numpy() for scores in pe.importance(model, "bn_scale").values()])
        for model in (_before, _after)
    ]
    edges = np.linspace(0.0, max(float(value.max()) for value in values), HISTOGRAM_BINS + 1)
    return tuple((np.histogram(value, bins=edges)[0], edges) for value in values)


HISTOGRAM_BINS = 80


@st.cache_resource(show_spinner="Pruning the L1-trained model…", max_entries=4)
def sparse_result(
    fingerprint: str,
    sparse_fingerprint: str,
    request: SparseRequest,
    ratio: float,
    _loaded: LoadedModel,
    _run: SparseRun,
) -> pe.PruneResult:
    """The L1-trained model pruned as the comparison prunes it, reported against the original (`layer_report`),
    so it can become the session's pruned model and go to Compare and Export."""
    bundle = _loaded.bundle
    plan = slimming_plan(request.target, ratio)
    calibration = calibration_examples(bundle)
    pruned = pe.apply_plan(_run.sparse, plan, bundle.example_input, bundle.eval_data, calibration_data=calibration)
    return pe.PruneResult(
        model=pruned.model, plan=plan, report=pe.layer_report(bundle.model, pruned.model, plan), skipped=pruned.skipped
    )


@st.cache_data(show_spinner=False, max_entries=32)
def epoch_seconds(fingerprint: str, data_key: str, _loaded: LoadedModel) -> float:
    """Estimated seconds of one training epoch of the model (`workbench.tasks.seconds_per_epoch`)."""
    return seconds_per_epoch(_loaded.bundle.model, _loaded.bundle.train_data)


@st.cache_data(show_spinner="Predicting the latency…", max_entries=32)
def predicted_latency(
    fingerprint: str, plan_json: str, batch_size: int | None, _loaded: LoadedModel
) -> dict[str, float]:
    """`prune_engine.predict_latency` of a plan (dense and predicted milliseconds) on the model's example input."""
    bundle = _loaded.bundle
    prediction = pe.predict_latency(
        bundle.model, pe.PruningPlan.from_json(plan_json), bundle.example_input, batch_size=batch_size
    )
    return {"dense_ms": prediction["dense_ms"], "predicted_ms": prediction["predicted_ms"]}


PROFILE_BATCH = 32
"""The batch each layer is timed at for the per-layer latency views (Compare's default, so the figures agree)."""


@st.cache_data(show_spinner="Timing every layer inside the running model…", max_entries=32)
def latency_profile(fingerprint: str, batch_size: int, _loaded: LoadedModel) -> pd.DataFrame:
    """`prune_engine.latency_profile` of the model at `batch_size` on one thread: each layer's own time."""
    bundle = _loaded.bundle
    return pe.latency_profile(bundle.model, bundle.example_input, batch_size=batch_size)


@st.cache_resource(show_spinner="Timing each layer of the model once…", max_entries=SHARED_RESULTS)
def latency_predictor(fingerprint: str, batch_size: int, _loaded: LoadedModel) -> LatencyPredictor:
    """One dense per-layer profile of a model at `batch_size`, on one thread, shared read-only; it predicts the
    latency of every pruned copy of the model (its per-shape layer timings are kept inside)."""
    bundle = _loaded.bundle
    return LatencyPredictor(bundle.model, bundle.example_input, batch_size=batch_size)


@st.cache_data(show_spinner=False, max_entries=256)
def predicted_speedup(
    fingerprint: str, pruned_fingerprint: str, batch_size: int, _loaded: LoadedModel, _pruned: nn.Module
) -> float:
    """The speed-up of a pruned copy that the dense profile predicts: dense ms ÷ predicted ms."""
    predictor = latency_predictor(fingerprint, batch_size, _loaded)
    return predictor.dense_ms / predictor.predict(_pruned)


@st.cache_resource(show_spinner="Putting the sparse layers on sparse kernels…", max_entries=SHARED_RESULTS)
def sparse_copy(fingerprint: str, min_sparsity: float, threads: int, _model: nn.Module) -> nn.Module:
    """`prune_engine.sparse_runtime` of a pruned model (its layers timed on `threads` threads), shared read-only
    like the model it copies."""
    return pe.sparse_runtime(_model, min_sparsity, threads=threads)


@st.cache_data(show_spinner=False, max_entries=32)
def forward_seconds(
    fingerprint: str, data_fingerprint: str, examples: int, _model: nn.Module, _data: pe.EvalData
) -> float:
    """The time of one forward pass of the model over `examples` of its evaluation examples (for estimates)."""
    inputs = _data.subset(examples).inputs
    with torch.no_grad(), single_threaded():
        _model(inputs[:1])
        start = time.perf_counter()
        _model(inputs)
    return time.perf_counter() - start


# --- Inspect page: importance scores --------------------------------------------------------

IMPORTANCE_SHELF_SIZE = 64
"""Criterion results (every layer's channel scores for one model, criterion and data) kept for all sessions."""


class SharedLRU:
    """A thread-safe least-recently-used map shared by every session; its values are read-only."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[Hashable, object] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> object | None:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
            return found

    def put(self, key: Hashable, value: object) -> None:
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


@st.cache_resource(show_spinner=False)
def importance_shelf() -> SharedLRU:
    """This server's `CriterionScores`, shared read-only: a criterion is scored once per model and data.

    Not `st.cache_data`: the scoring shows its own progress, which a cached function must not draw.
    """
    return SharedLRU(IMPORTANCE_SHELF_SIZE)


# --- Per-session memos ----------------------------------------------------------------------


def put_latest(entries: dict, key: Hashable, value: object, keep: int) -> None:
    """Set `entries[key]` as the newest entry of a per-session memo, dropping the oldest beyond `keep`."""
    entries.pop(key, None)
    entries[key] = value
    while len(entries) > keep:
        entries.pop(next(iter(entries)))


def session_memo(session_key: str) -> dict:
    """A per-session memo dict kept in `st.session_state` under `session_key` (made empty when missing)."""
    return st.session_state.setdefault(session_key, {})


WORKING_COPIES = 4
"""Working copies of models on a device kept at once (one per model, device and dtype), shared by every session."""


@st.cache_resource(show_spinner="Placing the model on the device…", max_entries=WORKING_COPIES)
def placed_model(fingerprint: str, device: str, dtype: str | None, _loaded: LoadedModel) -> LoadedModel:
    """A read-only working copy of the model with this fingerprint on `device` (in `dtype`, e.g.
    "float16", when given), shared by every session that chose that device."""
    return _loaded.placed(device, None if dtype is None else getattr(torch, dtype))


def working_copy(loaded: LoadedModel, device: str, dtype: str | None = None) -> LoadedModel:
    """`loaded` on `device` in `dtype`: the shared model itself when it is already there, else its cached copy."""
    here = placement(loaded.bundle.model)
    same_dtype = dtype is None or here.dtype == getattr(torch, dtype)
    if here.device.type == torch.device(device).type and same_dtype:
        return loaded
    return placed_model(loaded.fingerprint, device, dtype, loaded)


@st.cache_data(show_spinner=False, max_entries=64)
def sample_continuation(fingerprint: str, prompt: str, _model: nn.Module) -> str:
    """The greedy continuation of `prompt` by a byte-level language model (tiny_gpt), cached per model."""
    return continue_text(_model, prompt)


def continuation(loaded: LoadedModel, model: nn.Module | None = None, fingerprint: str | None = None) -> str:
    """How the model (or `model`, e.g. a pruned copy, with its `fingerprint`) continues the sample's prompt."""
    prompt = str(loaded.bundle.metadata.get("prompt", ""))
    if model is None:
        return sample_continuation(loaded.fingerprint, prompt, loaded.bundle.model)
    return sample_continuation(fingerprint or model_fingerprint(model), prompt, model)


@st.cache_data(show_spinner=False, max_entries=8)
def methods_comparison(
    fingerprint: str, request_json: str, _loaded: LoadedModel, _progress: ProgressFn | None = None
) -> pd.DataFrame:
    """The runs of a methods comparison (`prune_engine.comparison.compare_methods`) asked by `request_json`."""
    return run_request(_loaded.bundle, request_json, _progress)


# --- Graph view ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Tracing the model's graph…", max_entries=8)
def model_graph(fingerprint: str, _model: nn.Module, _example_input: object) -> pe.ModelGraph:
    """`prune_engine.model_graph`, shared read-only (a frozen value: nothing can change it)."""
    return pe.model_graph(_model, _example_input)


@st.cache_data(show_spinner=False, max_entries=32)
def graph_svg(dot: str) -> bytes:
    """The graph drawn as SVG by Graphviz (`workbench.graph.to_svg`)."""
    return graph_drawing.to_svg(dot)
