"""The Sensitivity page's training panels: prune in steps with fine-tuning between them, and L1
sparsity training (on weights, or on BatchNorm γ as in network slimming) before pruning."""

from __future__ import annotations

import threading

import pandas as pd
import streamlit as st

import prune_engine as pe
from prune_engine.calibration import has_batchnorm
from prune_engine.importance import ProgressFn
from ui.sensitivity import charts
from ui.shared import background, caches, keys, navigation, runs, state
from ui.shared import charts as shared_charts
from ui.shared.widgets import choice
from workbench import fmt, plans, quality
from workbench.session import LoadedModel, PrunedModel
from workbench.tasks import (
    L1_LEARNING_RATE,
    RECOVERIES,
    IterativeOutcome,
    IterativeRequest,
    SparseOutcome,
    SparseRequest,
    SparseRun,
    data_key,
    default_recovery,
    slimming_plan,
    training_problem,
)

PLAN_SOURCES = {"prune": "The Prune page's plan", "suggestion": "The suggested ratios"}
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
L1_LAMBDAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
SPARSE_TARGETS = {"weights": "Weights (then prune single weights)", "bn": "BatchNorm γ (network slimming)"}
L1_DEFAULTS = {"weights": (1e-3, 90), "bn": (1e-2, 50)}
"""Per target: λ and the pruning ratio (%) that show the effect on the samples in a few epochs."""


# --- prune in steps ------------------------------------------------------------------------


def iterative_panel(loaded: LoadedModel) -> None:
    """Plan source, recovery, steps, schedule, epochs and learning rate → a run with progress → the metric per step."""
    if st.session_state.get(keys.SENS_RECOVERY) not in RECOVERIES:
        st.session_state[keys.SENS_RECOVERY] = default_recovery(loaded)
    recovery = choice(
        st,
        "Between steps, win accuracy back by",
        RECOVERIES,
        RECOVERIES,
        keys.SENS_RECOVERY,
        help="Fine-tuning trains on the labels. Distillation trains the pruned model to give the original's "
        "outputs (logits, or embeddings for a sentence encoder), so it needs no labels at all.",
    )
    problem = training_problem(loaded, recovery)
    if problem is not None:
        st.info(problem, icon=":material/info:")
        return
    source = choice(st, "Plan to reach", PLAN_SOURCES, PLAN_SOURCES, keys.SENS_PLAN_SOURCE)
    plan = st.session_state.get(keys.SENS_SUGGESTION) if source == "suggestion" else state.current_plan()
    if source == "suggestion" and plan is None:
        st.info(
            "No suggestion yet: run a scan and choose a target on the “Suggested ratios” tab.", icon=":material/info:"
        )
        return
    if plan is None:
        plan = plans.default_plan()
        st.caption("The Prune page has not been opened yet, so this is its starting plan.")
    st.markdown(f"**Plan:** {fmt.literal(plans.describe_plan(plan))}")
    request = iterative_settings(plan, recovery)
    estimate(loaded, request.steps * request.epochs, "fine-tuning")
    background.show_notice(keys.SENS_CANCEL_ITERATIVE)
    if st.button(
        "Prune and fine-tune in steps", key=keys.SENS_RUN_ITERATIVE, type="primary", icon=":material/play_arrow:"
    ):

        def work(progress: ProgressFn, _: threading.Event) -> pe.PruneResult:
            return caches.iterative_result(loaded.fingerprint, data_key(loaded), request, loaded, progress)

        result = background.run(
            work, key=keys.SENS_CANCEL_ITERATIVE, what="Iterative pruning", label="Pruning in steps…"
        )
        if result is not None:
            st.session_state[keys.SENS_ITERATIVE] = IterativeOutcome(loaded.fingerprint, request, result)
    outcome = st.session_state.get(keys.SENS_ITERATIVE)
    if outcome is not None and outcome.fingerprint == loaded.fingerprint:
        iterative_results(loaded, outcome, request)


def iterative_settings(plan: pe.PruningPlan, recovery: str) -> IterativeRequest:
    """Steps, schedule, epochs per step and learning rate, with the schedule drawn."""
    settings, drawing = st.columns([1, 1.3])
    steps = settings.number_input("Steps", min_value=1, max_value=10, value=3, key=keys.SENS_STEPS)
    schedule = choice(settings, "Schedule", pe.SCHEDULES, plans.SCHEDULE_LABELS, keys.SENS_SCHEDULE)
    epochs = settings.number_input("Training epochs per step", min_value=1, max_value=20, value=1, key=keys.SENS_EPOCHS)
    lr = settings.select_slider(
        "Learning rate", LEARNING_RATES, value=1e-3, key=keys.SENS_LEARNING_RATE, format_func=lambda rate: f"{rate:g}"
    )
    drawing.plotly_chart(
        charts.schedule_steps(pe.schedule_fractions(schedule, int(steps)), plans.SCHEDULE_LABELS[schedule]),
        key="sens_schedule_chart",
    )
    return IterativeRequest(plan.to_json(), int(steps), schedule, int(epochs), float(lr), recovery)


HISTORY_COLUMNS = ("step", "ratio_fraction", "pruned_value", "value", "params", "nonzero")


def history_table(history: pd.DataFrame, metric: quality.QualityMetric) -> pd.DataFrame:
    """The step table's values as `history_columns` shows them: shares in percent."""
    shown = history[list(HISTORY_COLUMNS)].copy()
    shown["ratio_fraction"] *= 100
    if metric.share:
        shown[["pruned_value", "value"]] *= 100
    return shown


def history_columns(metric: quality.QualityMetric) -> dict[str, object]:
    """The step table's columns, its figures named and formatted as `metric` is everywhere else."""
    shown = "%.1f %%" if metric.share else "%.2f"
    return {
        "step": st.column_config.NumberColumn("Step"),
        "ratio_fraction": st.column_config.NumberColumn("Share of the plan", format="%.0f %%"),
        "pruned_value": st.column_config.NumberColumn(f"{metric.label} after pruning", format=shown),
        "value": st.column_config.NumberColumn(f"{metric.label} after recovery", format=shown),
        "params": st.column_config.NumberColumn("Parameters", format="localized"),
        "nonzero": st.column_config.NumberColumn("Non-zero parameters", format="localized"),
    }


def iterative_results(loaded: LoadedModel, outcome: IterativeOutcome, request: IterativeRequest) -> None:
    """Accuracy per step, the history table, and the button that makes the result the session's pruned model."""
    if outcome.request != request:
        st.caption("These results come from earlier settings: run again to see the current ones.")
    history = outcome.result.history
    recovery = "distillation" if outcome.request.recovery == "distill" else "fine-tuning"
    st.plotly_chart(charts.metric_per_step(history, recovery), key="sens_steps_chart")
    metric = quality.named(str(history["metric"].iloc[0])) if len(history) else quality.ACCURACY
    st.dataframe(
        history_table(history, metric),
        column_config=history_columns(metric),
        hide_index=True,
        placeholder=fmt.MISSING,
        key="sens_history",
    )
    use_model_button(loaded, outcome.result, keys.SENS_USE_PRUNED, outcome.request.made_by())


def estimate(loaded: LoadedModel, epochs: int, what: str) -> None:
    """The estimated duration of `epochs` training epochs, shown before the button that starts them."""
    seconds = epochs * caches.epoch_seconds(loaded.fingerprint, data_key(loaded), loaded)
    st.caption(f"Estimated time: {fmt.rough_duration(seconds)} for {epochs} epoch(s) of {what} on this server.")


def use_model_button(loaded: LoadedModel, result: pe.PruneResult, key: str, made_by: str) -> None:
    """Make `result` the session's pruned model (saved to the history as a run named `made_by`), or say it
    already is."""
    current = state.current_pruned(finished=False)
    if current is not None and current.result is result:
        st.success("This is now the session's pruned model.", icon=":material/check_circle:")
        st.page_link(navigation.COMPARE_PAGE, label="Compare it with the original", icon=":material/compare_arrows:")
        return
    if st.button("Use this model as the pruned model", key=key, icon=":material/done:"):
        runs.keep_result(loaded, PrunedModel.from_result(result, loaded), with_accuracy=True, made_by=made_by)
        st.rerun()
    st.caption(
        "The Compare page then shows it beside the original, and exports it. Moving a Prune slider replaces it again."
    )


# --- sparsity training ---------------------------------------------------------------------


def sparsity_panel(loaded: LoadedModel) -> None:
    """Target, λ and epochs → both trainings with progress → histograms and the pruning comparison."""
    problem = training_problem(loaded)
    if problem is not None:
        st.info(problem, icon=":material/info:")
        return
    targets = [target for target in SPARSE_TARGETS if target == "weights" or has_batchnorm(loaded.bundle.model)]
    left, middle, right = st.columns(3)
    target = left.radio(
        "Penalise",
        targets,
        key=keys.SENS_SPARSE_TARGET,
        format_func=SPARSE_TARGETS.get,
        help="BatchNorm γ only for models with BatchNorm layers." if len(targets) == 1 else None,
    )
    default_lambda, default_ratio = L1_DEFAULTS[target]
    l1_lambda = middle.select_slider(
        "L1 strength λ",
        L1_LAMBDAS,
        value=default_lambda,
        key=keys.sens_l1_lambda(target),
        format_func=lambda value: f"{value:g}",
        help="How hard values are pushed towards zero. Too strong costs accuracy before any pruning.",
    )
    epochs = right.number_input("Epochs", min_value=1, max_value=20, value=3, key=keys.SENS_L1_EPOCHS)
    request = SparseRequest(target, float(l1_lambda), int(epochs))
    st.caption(
        f"Both trainings use Adam with a learning rate of {L1_LEARNING_RATE:g}; the one without L1 is the fair "
        "comparison, since more training alone also changes how well a model takes pruning."
    )
    estimate(loaded, 2 * request.epochs, "two trainings")
    background.show_notice(keys.SENS_CANCEL_SPARSE)
    if st.button("Train with and without L1", key=keys.SENS_RUN_SPARSE, type="primary", icon=":material/play_arrow:"):

        def work(progress: ProgressFn, _: threading.Event) -> SparseRun:
            return caches.sparse_run(loaded.fingerprint, data_key(loaded), request, loaded, progress)

        run = background.run(work, key=keys.SENS_CANCEL_SPARSE, what="Sparsity training", label="Training…")
        if run is not None:
            st.session_state[keys.SENS_SPARSE] = SparseOutcome(loaded.fingerprint, request, run)
    outcome = st.session_state.get(keys.SENS_SPARSE)
    if outcome is not None and outcome.fingerprint == loaded.fingerprint:
        sparsity_results(loaded, outcome, request, default_ratio)


def sparsity_results(loaded: LoadedModel, outcome: SparseOutcome, request: SparseRequest, default_ratio: int) -> None:
    """Histograms before and after, then pruning both trainings at one ratio."""
    if outcome.request != request:
        st.caption("These results come from earlier settings: train again to see the current ones.")
    shown = outcome.request
    if shown.target == "bn":
        before, after = caches.scale_histograms(
            loaded.fingerprint, outcome.run.sparse_fingerprint, loaded.bundle.model, outcome.run.sparse
        )
        figure = shared_charts.histograms_before_after(before, after, "|γ| of each channel", "channels")
    else:
        layer = st.selectbox("Layer", caches.layer_names(loaded), key=keys.SENS_L1_LAYER)
        before = caches.histogram(loaded.fingerprint, layer, loaded.bundle.model, caches.HISTOGRAM_BINS)
        after = caches.histogram(outcome.run.sparse_fingerprint, layer, outcome.run.sparse, caches.HISTOGRAM_BINS)
        figure = shared_charts.histograms_before_after(before, after, f"weight values of {layer}", "weights")
    st.plotly_chart(figure, key="sens_l1_histograms")
    unit = "channels (by |γ|, BatchNorm re-estimated)" if shown.target == "bn" else "weights (by |w|, ranked globally)"
    ratio = st.slider(
        f"Prune this share of the {unit}",
        5,
        95,
        default_ratio,
        step=5,
        key=keys.sens_l1_ratio(shown.target),
        format="%d%%",
    )
    table = caches.pruned_accuracies(
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
    described = plans.describe_plan(slimming_plan(shown.target, ratio / 100))
    st.markdown(f"**The L1-trained model, pruned:** {fmt.literal(described)}")
    result = caches.sparse_result(
        loaded.fingerprint, outcome.run.sparse_fingerprint, shown, ratio / 100, loaded, outcome.run
    )
    use_model_button(loaded, result, keys.SENS_USE_SPARSE, shown.made_by())
