"""The Sensitivity page's training panels: prune in steps with fine-tuning between them, and L1
sparsity training (on weights, or on BatchNorm γ as in network slimming) before pruning."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
from torch import nn

import prune_engine as pe

from . import background, cache, experiments, fmt, plan_edits, prune_controls, state
from . import sensitivity_charts as charts
from .sensitivity import SUGGESTION
from .state import LoadedModel, PrunedModel

COMPARE_PAGE = "pages/4_Compare.py"

PLAN_SOURCE = "sens_plan_source"
STEPS = "sens_steps"
SCHEDULE = "sens_schedule"
EPOCHS = "sens_epochs"
LEARNING_RATE = "sens_lr"
RUN_ITERATIVE = "sens_run_iterative"
CANCEL_ITERATIVE = "sens_cancel_iterative"
ITERATIVE = "sens_iterative"
"""Session key: the `IterativeOutcome` last shown."""
USE_PRUNED = "sens_use_pruned"

SPARSE_TARGET = "sens_l1_target"
L1_LAMBDA = "sens_l1_lambda"
L1_EPOCHS = "sens_l1_epochs"
L1_RATIO = "sens_l1_ratio"
L1_LAYER = "sens_l1_layer"
RUN_SPARSE = "sens_run_sparse"
CANCEL_SPARSE = "sens_cancel_sparse"
SPARSE = "sens_sparse"
"""Session key: the `SparseOutcome` last shown."""

PLAN_SOURCES = {"prune": "The Prune page's plan", "suggestion": "The suggested ratios"}
SCHEDULE_LABELS = {"agp": "AGP (gradual)", "linear": "Linear", "one_shot": "One shot"}
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
L1_LAMBDAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
SPARSE_TARGETS = {"weights": "Weights (then prune single weights)", "bn": "BatchNorm γ (network slimming)"}
L1_DEFAULTS = {"weights": (1e-3, 90), "bn": (1e-2, 50)}
"""Per target: λ and the pruning ratio (%) that show the effect on the samples in a few epochs."""
L1_LEARNING_RATE = 1e-2
"""Adam moves a weight by about lr per step whatever λ, so a visible effect in few epochs needs a large lr."""
HISTOGRAM_BINS = 80
PLAN_LAYERS_SHOWN = 6


def training_problem(loaded: LoadedModel) -> str | None:
    """Why this model cannot be trained here, or None."""
    bundle = loaded.bundle
    if bundle.train_data is None:
        return (
            "Training needs training examples, and this model has none (the digits samples carry them). "
            "It can be scanned and pruned, but not fine-tuned or trained here."
        )
    if bundle.eval_data is None or bundle.eval_data.labels is None:
        return "Training is judged by accuracy, which needs test examples with class labels; this model has none."
    return None


def data_key(loaded: LoadedModel) -> str:
    """What training results depend on besides the model: its test and its training examples."""
    train = loaded.bundle.train_data
    return f"{loaded.data_fingerprint}:{None if train is None else train.fingerprint()}"


def describe_plan(plan: pe.PruningPlan) -> str:
    """A plan in a few words: what is removed, by which criterion, how much."""
    kind = (
        "whole channels"
        if plan.granularity == "channel"
        else prune_controls.GRANULARITY_LABELS.get(plan.granularity, plan.granularity).lower()
    )
    criterion = pe.CRITERIA[plan.criterion].label if plan.criterion in pe.CRITERIA else plan.criterion
    parts = [kind, criterion]
    if plan.global_ratio is not None:
        others = "every other layer" if plan.ratios else "every layer"
        scope = "ranked globally" if plan.scope == "global" else f"in {others}"
        parts.append(f"{fmt.percent(plan.global_ratio, 0)} {scope}")
    ratios = [f"{layer} {fmt.percent(ratio, 0)}" for layer, ratio in plan.ratios.items()]
    if ratios:
        more = len(ratios) - PLAN_LAYERS_SHOWN
        parts.append(", ".join(ratios[:PLAN_LAYERS_SHOWN]) + (f" and {more} more" if more > 0 else ""))
    return " · ".join(parts)


# --- prune in steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class IterativeRequest:
    plan_json: str
    steps: int
    schedule: str
    epochs: int
    lr: float


@dataclass(frozen=True)
class IterativeOutcome:
    fingerprint: str
    request: IterativeRequest
    result: pe.PruneResult


@st.cache_resource(show_spinner=False, max_entries=4)
def iterative_result(
    fingerprint: str,
    data_key: str,
    request: IterativeRequest,
    _loaded: LoadedModel,
    _progress: background.ProgressFn,
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
    )


def iterative_panel(loaded: LoadedModel) -> None:
    """Plan source, steps, schedule, epochs and learning rate → a run with progress → accuracy per step."""
    problem = training_problem(loaded)
    if problem is not None:
        st.info(problem, icon=":material/info:")
        return
    source = st.radio(
        "Plan to reach", list(PLAN_SOURCES), key=PLAN_SOURCE, format_func=PLAN_SOURCES.get, horizontal=True
    )
    plan = st.session_state.get(SUGGESTION) if source == "suggestion" else state.current_plan()
    if source == "suggestion" and plan is None:
        st.info(
            "No suggestion yet: run a scan and choose a target on the “Suggested ratios” tab.", icon=":material/info:"
        )
        return
    if plan is None:
        plan = plan_edits.default_plan()
        st.caption("The Prune page has not been opened yet, so this is its starting plan.")
    st.markdown(f"**Plan:** {fmt.literal(describe_plan(plan))}")
    request = iterative_settings(plan)
    background.show_notice(CANCEL_ITERATIVE)
    if st.button("Prune and fine-tune in steps", key=RUN_ITERATIVE, type="primary", icon=":material/play_arrow:"):

        def work(progress: background.ProgressFn, _: threading.Event) -> pe.PruneResult:
            return iterative_result(loaded.fingerprint, data_key(loaded), request, loaded, progress)

        result = background.run(work, key=CANCEL_ITERATIVE, what="Iterative pruning", label="Pruning in steps…")
        if result is not None:
            st.session_state[ITERATIVE] = IterativeOutcome(loaded.fingerprint, request, result)
    outcome = st.session_state.get(ITERATIVE)
    if outcome is not None and outcome.fingerprint == loaded.fingerprint:
        iterative_results(loaded, outcome, request)


def iterative_settings(plan: pe.PruningPlan) -> IterativeRequest:
    """Steps, schedule, epochs per step and learning rate, with the schedule drawn."""
    settings, drawing = st.columns([1, 1.3])
    steps = settings.number_input("Steps", min_value=1, max_value=10, value=3, key=STEPS)
    schedule = settings.radio(
        "Schedule", list(pe.SCHEDULES), key=SCHEDULE, format_func=SCHEDULE_LABELS.get, horizontal=True
    )
    epochs = settings.number_input("Fine-tuning epochs per step", min_value=1, max_value=20, value=1, key=EPOCHS)
    lr = settings.select_slider(
        "Learning rate", LEARNING_RATES, value=1e-3, key=LEARNING_RATE, format_func=lambda rate: f"{rate:g}"
    )
    drawing.plotly_chart(
        charts.schedule_steps(pe.schedule_fractions(schedule, int(steps)), SCHEDULE_LABELS[schedule]),
        key="sens_schedule_chart",
    )
    return IterativeRequest(plan.to_json(), int(steps), schedule, int(epochs), float(lr))


HISTORY_COLUMNS = {
    "step": st.column_config.NumberColumn("Step"),
    "ratio_fraction": st.column_config.NumberColumn("Share of the plan", format="percent"),
    "pruned_accuracy": st.column_config.NumberColumn("Accuracy after pruning", format="percent"),
    "accuracy": st.column_config.NumberColumn("Accuracy after fine-tuning", format="percent"),
    "params": st.column_config.NumberColumn("Parameters", format="localized"),
    "nonzero": st.column_config.NumberColumn("Non-zero parameters", format="localized"),
}


def iterative_results(loaded: LoadedModel, outcome: IterativeOutcome, request: IterativeRequest) -> None:
    """Accuracy per step, the history table, and the button that makes the result the session's pruned model."""
    if outcome.request != request:
        st.caption("These results come from earlier settings: run again to see the current ones.")
    history = outcome.result.history
    st.plotly_chart(charts.accuracy_per_step(history), key="sens_steps_chart")
    st.dataframe(history, column_config=HISTORY_COLUMNS, hide_index=True, key="sens_history")
    current = state.current_pruned()
    if current is not None and current.result is outcome.result:
        st.success("This is now the session's pruned model.", icon=":material/check_circle:")
        st.page_link(COMPARE_PAGE, label="Compare it with the original", icon=":material/compare_arrows:")
        return
    if st.button("Use this model as the pruned model", key=USE_PRUNED, icon=":material/done:"):
        experiments.keep_result(loaded, PrunedModel.from_result(outcome.result, loaded), with_accuracy=True)
        st.rerun()
    st.caption("The Compare page then shows it beside the original. Moving a Prune slider replaces it again.")


# --- sparsity training ---------------------------------------------------------------------


@dataclass(frozen=True)
class SparseRequest:
    target: str
    l1_lambda: float
    epochs: int


@dataclass(frozen=True)
class SparseRun:
    """The same training without and with the L1 penalty (read-only models, shared)."""

    plain: nn.Module
    sparse: nn.Module
    sparse_fingerprint: str


@dataclass(frozen=True)
class SparseOutcome:
    fingerprint: str
    request: SparseRequest
    run: SparseRun


@st.cache_resource(show_spinner=False, max_entries=4)
def sparse_run(
    fingerprint: str, data_key: str, request: SparseRequest, _loaded: LoadedModel, _progress: background.ProgressFn
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
    return SparseRun(plain, sparse, pe.model_fingerprint(sparse))


def slimming_plan(target: str, ratio: float) -> pe.PruningPlan:
    """How both trainings are pruned: single weights by magnitude, or channels by |γ| with BatchNorm re-estimated."""
    if target == "bn":
        return pe.PruningPlan(
            granularity="channel", criterion="bn_scale", scope="global", global_ratio=ratio, recalibrate_bn=True
        )
    return pe.PruningPlan(granularity="unstructured", criterion="l1", scope="global", global_ratio=ratio)


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
    calibration = bundle.train_data.subset(cache.CALIBRATION_EXAMPLES)
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
        np.concatenate([scores.numpy() for scores in pe.importance(model, "bn_scale").values()])
        for model in (_before, _after)
    ]
    edges = np.linspace(0.0, max(float(value.max()) for value in values), HISTOGRAM_BINS + 1)
    return tuple((np.histogram(value, bins=edges)[0], edges) for value in values)


def sparsity_panel(loaded: LoadedModel) -> None:
    """Target, λ and epochs → both trainings with progress → histograms and the pruning comparison."""
    problem = training_problem(loaded)
    if problem is not None:
        st.info(problem, icon=":material/info:")
        return
    targets = [target for target in SPARSE_TARGETS if target == "weights" or pe.has_batchnorm(loaded.bundle.model)]
    left, middle, right = st.columns(3)
    target = left.radio(
        "Penalise",
        targets,
        key=SPARSE_TARGET,
        format_func=SPARSE_TARGETS.get,
        help="BatchNorm γ only for models with BatchNorm layers." if len(targets) == 1 else None,
    )
    default_lambda, default_ratio = L1_DEFAULTS[target]
    l1_lambda = middle.select_slider(
        "L1 strength λ",
        L1_LAMBDAS,
        value=default_lambda,
        key=f"{L1_LAMBDA}_{target}",
        format_func=lambda value: f"{value:g}",
        help="How hard values are pushed towards zero. Too strong costs accuracy before any pruning.",
    )
    epochs = right.number_input("Epochs", min_value=1, max_value=20, value=3, key=L1_EPOCHS)
    request = SparseRequest(target, float(l1_lambda), int(epochs))
    st.caption(
        f"Both trainings use Adam with a learning rate of {L1_LEARNING_RATE:g}; the one without L1 is the fair "
        "comparison, since more training alone also changes how well a model takes pruning."
    )
    background.show_notice(CANCEL_SPARSE)
    if st.button("Train with and without L1", key=RUN_SPARSE, type="primary", icon=":material/play_arrow:"):

        def work(progress: background.ProgressFn, _: threading.Event) -> SparseRun:
            return sparse_run(loaded.fingerprint, data_key(loaded), request, loaded, progress)

        run = background.run(work, key=CANCEL_SPARSE, what="Sparsity training", label="Training…")
        if run is not None:
            st.session_state[SPARSE] = SparseOutcome(loaded.fingerprint, request, run)
    outcome = st.session_state.get(SPARSE)
    if outcome is not None and outcome.fingerprint == loaded.fingerprint:
        sparsity_results(loaded, outcome, request, default_ratio)


def sparsity_results(loaded: LoadedModel, outcome: SparseOutcome, request: SparseRequest, default_ratio: int) -> None:
    """Histograms before and after, then pruning both trainings at one ratio."""
    if outcome.request != request:
        st.caption("These results come from earlier settings: train again to see the current ones.")
    shown = outcome.request
    if shown.target == "bn":
        before, after = scale_histograms(
            loaded.fingerprint, outcome.run.sparse_fingerprint, loaded.bundle.model, outcome.run.sparse
        )
        figure = charts.histograms_before_after(before, after, "|γ| of each channel", "channels")
    else:
        layer = st.selectbox("Layer", prune_controls.layer_names(loaded), key=L1_LAYER)
        before = cache.histogram(loaded.fingerprint, layer, loaded.bundle.model, HISTOGRAM_BINS)
        after = cache.histogram(outcome.run.sparse_fingerprint, layer, outcome.run.sparse, HISTOGRAM_BINS)
        figure = charts.histograms_before_after(before, after, f"weight values of {layer}", "weights")
    st.plotly_chart(figure, key="sens_l1_histograms")
    unit = "channels (by |γ|, BatchNorm re-estimated)" if shown.target == "bn" else "weights (by |w|, ranked globally)"
    ratio = st.slider(
        f"Prune this share of the {unit}",
        5,
        95,
        default_ratio,
        step=5,
        key=f"{L1_RATIO}_{shown.target}",
        format="%d%%",
    )
    table = pruned_accuracies(
        loaded.fingerprint,
        loaded.data_fingerprint,
        outcome.run.sparse_fingerprint,
        shown,
        ratio / 100,
        loaded,
        outcome.run,
    )
    chart, numbers = st.columns([1, 1], vertical_alignment="center")
    chart.plotly_chart(charts.pruned_accuracy_bars(table), key="sens_l1_bars")
    numbers.dataframe(
        table,
        column_config={
            "training": st.column_config.TextColumn("Training"),
            "trained_accuracy": st.column_config.NumberColumn("Before pruning", format="percent"),
            "pruned_accuracy": st.column_config.NumberColumn("After pruning", format="percent"),
        },
        hide_index=True,
        key="sens_l1_table",
    )
