"""Cached engine calls.

Models are cached with `st.cache_resource` and therefore shared by every session:
nothing may change a cached model in place (pruning works on copies). Tables, numbers
and histograms are cached with `st.cache_data`, keyed by the model's content
fingerprint; the model itself is passed as an unhashed `_model` argument.

Every cache is bounded (`max_entries`, and a time to live for pruned models and
previews), so that a server used by many sessions keeps only the latest few results
in memory; a session holds its own result in its session state, which goes when it ends.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

import prune_engine as pe
from sample_models import load_sample

from .state import LoadedModel, PrunedModel


@st.cache_resource(show_spinner="Loading the sample model…")
def load_sample_model(name: str) -> LoadedModel:
    """Sample `name` with its fingerprints, loaded once per server and shared read-only."""
    return LoadedModel.from_bundle(load_sample(name), source="sample")


@st.cache_data(show_spinner=False, max_entries=32)
def layer_table(fingerprint: str, _model: nn.Module) -> pd.DataFrame:
    """`prune_engine.layer_stats` of the model with this fingerprint."""
    return pe.layer_stats(_model)


@st.cache_data(show_spinner=False, max_entries=32)
def summary(fingerprint: str, _model: nn.Module, _example_input: torch.Tensor) -> dict[str, float | int | None]:
    """`prune_engine.model_summary`: params, non-zeros, FLOPs and bytes."""
    return pe.model_summary(_model, _example_input)


@st.cache_data(show_spinner="Evaluating the model…", max_entries=32)
def evaluation(fingerprint: str, data_fingerprint: str, _model: nn.Module, _data: pe.EvalData) -> dict[str, float]:
    """`prune_engine.evaluate` of the model on its evaluation data."""
    return pe.evaluate(_model, _data)


@st.cache_data(show_spinner=False, max_entries=256)
def histogram(fingerprint: str, layer_name: str, _model: nn.Module, bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """`(counts, edges)` of one layer's weights: only the bins ever reach the browser."""
    return pe.weight_histogram(_model, layer_name, bins=bins)


@st.cache_data(show_spinner=False, max_entries=256)
def channel_l1_norms(fingerprint: str, layer_name: str, _model: nn.Module) -> np.ndarray:
    """The L1 norm of each output channel of one layer."""
    return pe.channel_norms(_model, layer_name, p=1.0).numpy()


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

CALIBRATION_EXAMPLES = 256
"""Training examples that re-estimate BatchNorm statistics after pruning (when a plan asks):
enough for stable statistics, few enough to re-prune live as a slider moves."""


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
def pruned_model(fingerprint: str, plan_json: str, data_fingerprint: str | None, _loaded: LoadedModel) -> PrunedModel:
    """`prune_engine.apply_plan` of a plan to a model, shared read-only like the models it comes from."""
    return PrunedModel.from_result(apply(_loaded, pe.PruningPlan.from_json(plan_json)), _loaded)


def apply(
    loaded: LoadedModel, plan: pe.PruningPlan, progress: Callable[[float, str], None] | None = None
) -> pe.PruneResult:
    """Prune a copy of `loaded` as `plan` says, with its data for data-driven criteria and BatchNorm statistics."""
    bundle = loaded.bundle
    calibration = bundle.train_data.subset(CALIBRATION_EXAMPLES) if bundle.train_data is not None else None
    return pe.apply_plan(
        bundle.model, plan, bundle.example_input, bundle.eval_data, progress=progress, calibration_data=calibration
    )


@st.cache_data(show_spinner=False, max_entries=32)
def outputs(fingerprint: str, data_fingerprint: str, _model: nn.Module, _data: pe.EvalData) -> np.ndarray:
    """`prune_engine.model_outputs` of the model on its evaluation data, as an array."""
    return pe.model_outputs(_model, _data).numpy()


def preview(loaded: LoadedModel, plan: pe.PruningPlan) -> pe.PlanPreview:
    """The cached preview of `plan` on `loaded`: ratios the layers would get and the scores behind them."""
    bundle = loaded.bundle
    return plan_preview(
        loaded.fingerprint,
        plan.to_json(),
        loaded.data_fingerprint,
        bundle.model,
        bundle.example_input,
        bundle.eval_data,
    )


def pruned(loaded: LoadedModel, plan: pe.PruningPlan) -> PrunedModel:
    """The cached result of applying `plan` to `loaded`."""
    return pruned_model(loaded.fingerprint, plan.to_json(), loaded.data_fingerprint, loaded)


def pruned_summary(loaded: LoadedModel, result: PrunedModel) -> dict[str, float | int | None]:
    """The cached summary of a pruned model on its original's example input."""
    return summary(result.fingerprint, result.model, loaded.bundle.example_input)


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
    return experiment_store(str(pe.default_db_path()))
