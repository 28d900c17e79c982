"""The Sensitivity page's scan and allocation: scan settings, a cancellable scan, its heatmap,
curves and table, and per-layer ratios suggested for a target that can go to the Prune sliders."""

from __future__ import annotations

import os
import threading

import pandas as pd
import streamlit as st

import prune_engine as pe
from prune_engine.importance import ProgressFn
from prune_engine.sensitivity import (
    POOL_MIN_JOBS,
    RAY_ADDRESS_ENV,
    ProcessExecutor,
    RayExecutor,
    ScanExecutor,
    SerialExecutor,
    default_executor,
)
from ui.sensitivity import charts
from ui.shared import background, caches, keys, navigation, state
from ui.shared.widgets import choice
from workbench import capabilities, fmt, plans, quality
from workbench.session import LoadedModel, PrunedModel
from workbench.tasks import SCAN_GRANULARITIES, ScanOutcome, ScanRequest, batchnorm_words

RATIO_CHOICES = tuple(range(5, 100, 5))
"""Ratios a scan can visit, in percent."""
EXECUTORS = {"auto": "Automatic", "serial": "This server process", "processes": "A local process pool"}
BUDGETS = {"params": "Non-zero parameters", "flops": "FLOPs", "latency": "Latency (predicted)"}
DEFAULT_TARGET_PCT = 50
DEFAULT_MAX_DROP_PTS = 2.0
GAP_WARNING_PTS = 2.0
"""A measured drop this much above the predicted one is called out, with a refinement offered."""


def make_executor(choice: str, jobs: int) -> ScanExecutor:
    """The executor a scan of `jobs` jobs runs on; "auto" is the engine's own choice."""
    if choice == "serial":
        return SerialExecutor()
    if choice == "processes":
        return ProcessExecutor()
    return default_executor(jobs)


def describe_executor(executor: ScanExecutor) -> str:
    """Where a scan runs, in words."""
    if isinstance(executor, RayExecutor):
        return f"the Ray cluster at {executor.address}"
    if isinstance(executor, ProcessExecutor):
        return f"a local pool of {executor.workers} worker processes"
    return "this server process, one job after another"


def current_scan(loaded: LoadedModel) -> ScanOutcome | None:
    """The last scan of this session, if it was made on the current model and data."""
    outcome = st.session_state.get(keys.SENS_SCAN)
    if outcome is None or (outcome.fingerprint, outcome.data_fingerprint) != (
        loaded.fingerprint,
        loaded.data_fingerprint,
    ):
        return None
    return outcome


# --- the scan ----------------------------------------------------------------------------


def scan_panel(loaded: LoadedModel) -> None:
    """Settings, the Run button with its cancellable progress, and the results of the last scan."""
    if loaded.bundle.eval_data is None or loaded.data_fingerprint is None:
        st.info(
            "A scan measures each pruned copy on test examples, and this model has none. Load it with "
            "evaluation data on the Model page.",
            icon=":material/info:",
        )
        return
    request = scan_settings(loaded)
    executor = make_executor(request.executor, request.jobs)
    ran_on = describe_executor(executor)
    st.caption(f"{request.jobs} job(s), one per layer and ratio · runs on {fmt.literal(ran_on)}.")
    background.show_notice(keys.SENS_CANCEL)
    if st.button(
        "Run the scan", key=keys.SENS_RUN, type="primary", icon=":material/play_arrow:", disabled=not request.jobs
    ):
        run_scan(loaded, request, executor, ran_on)
    outcome = current_scan(loaded)
    if outcome is not None:
        results(outcome, request)


def scan_settings(loaded: LoadedModel) -> ScanRequest:
    """The scan's widgets: granularity, criterion, where it runs, ratios and layers."""
    names = caches.layer_names(loaded)
    left, middle, right = st.columns([1.2, 1, 1])
    granularity = choice(
        left,
        "Granularity",
        SCAN_GRANULARITIES,
        SCAN_GRANULARITIES,
        keys.SENS_GRANULARITY,
        help="N:M is not scanned: its pattern fixes the ratio (half of the weights for 2:4).",
    )
    criteria = capabilities.criteria(loaded, granularity)
    criterion = middle.selectbox(
        "Criterion",
        criteria,
        key=keys.SENS_CRITERION,
        format_func=lambda name: pe.CRITERIA[name].label,
        help="How importance is scored inside each layer: the least important go first.",
    )
    address = os.environ.get(RAY_ADDRESS_ENV)
    automatic = (
        f"the Ray cluster at {address} ({RAY_ADDRESS_ENV} is set)"
        if address
        else f"a local process pool for {POOL_MIN_JOBS} jobs or more, else this process"
    )
    executor = right.selectbox(
        "Run on",
        list(EXECUTORS),
        key=keys.SENS_EXECUTOR,
        format_func=EXECUTORS.get,
        help=f"Automatic: {automatic}. Jobs are independent, so several worker processes (or a cluster, "
        f"set {RAY_ADDRESS_ENV} to its address) finish a big scan sooner; every choice gives the same numbers.",
    )
    if keys.SENS_RATIOS not in st.session_state:
        st.session_state[keys.SENS_RATIOS] = [round(ratio * 100) for ratio in pe.DEFAULT_RATIOS]
    ratios = st.multiselect(
        "Ratios to try",
        RATIO_CHOICES,
        key=keys.SENS_RATIOS,
        format_func=lambda pct: f"{pct} %",
        help="Each layer is pruned alone by each of these shares of its weights (or channels).",
    )
    if keys.SENS_LAYERS not in st.session_state or st.session_state.get(keys.SENS_LAYERS_MODEL) != loaded.fingerprint:
        st.session_state[keys.SENS_LAYERS] = names
        st.session_state[keys.SENS_LAYERS_MODEL] = loaded.fingerprint
    layers = st.multiselect(
        "Layers", names, key=keys.SENS_LAYERS, help="Leave out layers you do not mean to prune, to scan faster."
    )
    return ScanRequest(
        ratios=tuple(sorted(pct / 100 for pct in ratios)),
        granularity=granularity,
        criterion=criterion,
        layers=tuple(name for name in names if name in set(layers)),
        executor=executor,
        recalibrate_bn=batchnorm_policy(loaded, granularity),
    )


def batchnorm_policy(loaded: LoadedModel, granularity: str) -> bool:
    """The scan's BatchNorm toggle, on by default where the Prune page turns it on (channels, BatchNorm and
    training examples), so the scan measures what the plan will do; or why there is no choice."""
    if not capabilities.can_recalibrate(loaded):
        st.caption(
            "BatchNorm statistics stay as trained: re-estimating them needs BatchNorm layers and training examples, "
            "and this model lacks one of them."
        )
        return False
    return st.toggle(
        "Re-estimate BatchNorm statistics after pruning",
        value=granularity == "channel",
        key=keys.sens_recalibrate(granularity),
        help="As the Prune page does for this granularity: each pruned copy is measured with its BatchNorm "
        "statistics re-estimated on training examples, and the suggested plan carries the same setting. "
        "A scan without it can predict no drop for a plan that then loses a lot.",
    )


def run_scan(loaded: LoadedModel, request: ScanRequest, executor: ScanExecutor, ran_on: str) -> None:
    """Scan with progress and Cancel; keep the table in the session only when the scan finished."""

    def work(progress: ProgressFn, cancel: threading.Event) -> pd.DataFrame:
        return caches.scan_table(
            loaded.fingerprint,
            loaded.data_fingerprint,
            request.ratios,
            request.granularity,
            request.criterion,
            request.layers,
            request.recalibrate_bn,
            loaded,
            executor,
            progress,
            cancel,
        )

    table = background.run(
        work, key=keys.SENS_CANCEL, what="The scan", label=f"Scanning on {fmt.literal(ran_on)}…", hint=executor_hint
    )
    if table is not None:
        st.session_state[keys.SENS_SCAN] = ScanOutcome(
            loaded.fingerprint, loaded.data_fingerprint, request, table, ran_on
        )


def executor_hint(error: pe.PruneScopeError) -> str | None:
    """What to do in the app when the chosen executor could not run the scan."""
    if isinstance(error, pe.ExecutorError):
        return "Choose “This server process” under “Run on” to scan without worker processes or a cluster."
    return None


SCAN_COLUMNS = {
    "layer": st.column_config.TextColumn("Layer", pinned=True),
    "ratio": st.column_config.NumberColumn("Ratio", format="percent", help="Share of the layer removed."),
    "metric": st.column_config.NumberColumn("Metric", format="%.4f", help="Measured on the test examples."),
    "drop": st.column_config.NumberColumn("Drop (pts)", format="%.2f", help="Unpruned metric minus this one."),
    "loss_increase": st.column_config.NumberColumn("Loss increase", format="%.4f"),
    "params_saved": st.column_config.NumberColumn("Parameters saved", format="localized"),
    "flops_saved": st.column_config.NumberColumn("FLOPs saved", format="localized"),
    "latency_ms": st.column_config.NumberColumn(
        "Latency (ms)", format="%.3f", help="Predicted time of one forward pass of this copy, on one thread."
    ),
    "seconds": st.column_config.NumberColumn("Seconds", format="%.3f"),
    "note": st.column_config.TextColumn("Note"),
}


def results(outcome: ScanOutcome, request: ScanRequest) -> None:
    """The heatmap, the curves and the table of a finished scan."""
    table = outcome.table
    metric = charts.metric_words(str(table["metric_name"].iloc[0]))
    baseline = float(table["baseline"].iloc[0])
    st.markdown(
        f"**Last scan:** {fmt.literal(outcome.request.describe())}, on {fmt.literal(outcome.ran_on)}. "
        f"Unpruned {metric}: **{fmt.percent(baseline)}**."
    )
    if outcome.request != request:
        st.caption("The settings above have changed since: run the scan again to see them.")
    st.plotly_chart(charts.drop_heatmap(table), key="sens_heatmap")
    blocked = table[table["metric"].isna()].drop_duplicates("layer")
    if len(blocked):
        reasons = "; ".join(f"{layer}: {note}" for layer, note in zip(blocked["layer"], blocked["note"], strict=True))
        st.caption(f"Blank cells were not measured ({fmt.literal(reasons)}).")
    st.plotly_chart(charts.layer_curves(table), key="sens_curves")
    shown = [column for column in SCAN_COLUMNS if column != "latency_ms" or table[column].notna().any()]
    in_points = table.assign(drop=table["drop"] * 100)
    columns = dict(SCAN_COLUMNS)
    if quality.named(str(table["metric_name"].iloc[0])).share:  # in percent, as the unpruned figure above
        in_points["metric"] = in_points["metric"] * 100
        columns["metric"] = st.column_config.NumberColumn(
            metric.capitalize(), format="%.2f %%", help="Measured on the test examples."
        )
    st.dataframe(in_points[shown], column_config=columns, hide_index=True, key="sens_table")


# --- allocation --------------------------------------------------------------------------


def predicted_drops(scan: pd.DataFrame, plan: pe.PruningPlan) -> pd.DataFrame:
    """Per layer of the plan: its ratio, channel group and the drop the scan predicts for it,
    counted as `suggest_ratios` counts it (never below 0, never below the drop at a lower ratio)."""
    measured = scan.dropna(subset=["metric"]).sort_values(["layer", "ratio"])
    measured = measured.assign(predicted=measured.groupby("layer")["drop"].cummax().clip(lower=0.0))
    rows = []
    for layer in dict.fromkeys(scan["layer"]):
        ratio = plan.ratios.get(layer, 0.0)
        match = measured[(measured["layer"] == layer) & (measured["ratio"] == ratio)]
        group = scan.loc[scan["layer"] == layer, "group"].iloc[0]
        drop = float(match["predicted"].iloc[0]) if len(match) else 0.0
        rows.append({"layer": layer, "group": group, "ratio": ratio, "predicted_drop": drop})
    return pd.DataFrame(rows)


ALLOCATION_COLUMNS = {
    "layer": st.column_config.TextColumn("Layer", pinned=True),
    "group": st.column_config.TextColumn("Channel group", help="Layers of one group lose the same channels."),
    "ratio": st.column_config.ProgressColumn("Ratio", format="percent", min_value=0.0, max_value=1.0),
    "predicted_drop": st.column_config.NumberColumn(
        "Predicted drop", format="%.2f pts", help="The drop the scan measured with this layer alone at this ratio."
    ),
}


def allocation_panel(loaded: LoadedModel) -> None:
    """Target, budget and drop limit → suggested ratios, their predicted and measured cost, and Send."""
    outcome = current_scan(loaded)
    if outcome is None:
        st.session_state.pop(keys.SENS_SUGGESTION, None)
        st.info("Run a scan first (first tab): the suggestion is made from its curves.", icon=":material/info:")
        return
    left, middle, right = st.columns([2, 1.2, 1.4], vertical_alignment="bottom")
    target = left.slider(
        "Remove this share of the model",
        5,
        95,
        DEFAULT_TARGET_PCT,
        step=5,
        key=keys.SENS_TARGET,
        format="%d%%",
        help="Of its non-zero parameters, of its FLOPs (the work of one forward pass), or of its predicted "
        "latency (the time of one forward pass).",
    )
    budgets = list(BUDGETS) if outcome.request.granularity == "channel" else ["params"]
    budget = choice(
        middle,
        "Counted in",
        budgets,
        BUDGETS,
        keys.SENS_BUDGET,
        help="FLOPs and latency only after a channel scan: zeroing single weights leaves the dense FLOPs and "
        "the time of dense kernels as they are.",
    )
    limited = right.toggle("Limit each layer's drop", key=keys.SENS_LIMIT)
    max_drop = None
    if limited:
        max_drop = (
            right.number_input(
                "Largest drop per layer (points)",
                min_value=0.0,
                max_value=100.0,
                value=DEFAULT_MAX_DROP_PTS,
                step=0.5,
                key=keys.SENS_MAX_DROP,
            )
            / 100
        )
    plan, problem = caches.suggestion(loaded.fingerprint, outcome.table, target / 100, budget, max_drop, loaded)
    if plan is None:
        st.session_state.pop(keys.SENS_SUGGESTION, None)
        st.warning(fmt.literal(problem or "No suggestion."), icon=":material/warning:")
        return
    st.session_state[keys.SENS_SUGGESTION] = plan
    st.markdown(f"**Suggested plan:** {fmt.literal(plans.describe_plan(plan))}")
    drops = predicted_drops(outcome.table, plan)
    suggestion_figures(loaded, plan, drops, budget, outcome.table)
    shown = drops.assign(predicted_drop=drops["predicted_drop"] * 100)
    if plan.granularity != "channel":
        shown = shown.drop(columns="group")
    st.dataframe(shown, column_config=ALLOCATION_COLUMNS, hide_index=True, key="sens_allocation")
    if st.button("Send to the Prune sliders", key=keys.SENS_SEND, type="primary", icon=":material/tune:"):
        state.send_plan_to_sliders(plan)
        st.switch_page(navigation.PRUNE_PAGE)


def suggestion_figures(
    loaded: LoadedModel, plan: pe.PruningPlan, drops: pd.DataFrame, budget: str, scan: pd.DataFrame
) -> None:
    """Predicted drop beside the drop and reduction measured by applying the plan (with its BatchNorm policy);
    a measured drop well above the prediction is called out, with a refinement offered."""
    predicted = float(drops.drop_duplicates("group")["predicted_drop"].sum())
    pruned = caches.pruned(loaded, plan)
    original, measured = caches.model_evaluation(loaded) or {}, caches.pruned_evaluation(loaded, pruned) or {}
    columns = st.columns(3)
    columns[0].metric(
        "Predicted drop", f"{predicted * 100:.2f} pts", help="The sum of each layer's own drop in the scan."
    )
    measured_drop = None
    if "accuracy" in original and "accuracy" in measured:
        measured_drop = original["accuracy"] - measured["accuracy"]
        columns[1].metric(
            "Measured drop",
            measured_words(measured_drop),
            help=f"The plan applied to the model ({batchnorm_words(plan.recalibrate_bn)}): accuracy "
            f"{fmt.percent(measured['accuracy'])} instead of {fmt.percent(original['accuracy'])}.",
        )
    columns[2].metric(f"{BUDGETS[budget]} removed", fmt.percent(reduction(loaded, plan, pruned, budget, scan)))
    if measured_drop is not None and (measured_drop - predicted) * 100 > GAP_WARNING_PTS:
        refinement(measured_drop, predicted)


def measured_words(drop: float) -> str:
    """A measured accuracy drop in points; a rise is said as one, not as a negative drop."""
    points = round(drop * 100, 2)
    if points == 0:
        return "no change"
    return f"{points:.2f} pts" if points > 0 else f"none: +{-points:.2f} pts"


def reduction(loaded: LoadedModel, plan: pe.PruningPlan, pruned: PrunedModel, budget: str, scan: pd.DataFrame) -> float:
    """The share of the budget the plan removes: counted on the pruned model, or predicted for latency."""
    if budget == "latency":
        batch = scan["latency_batch"].dropna()
        latency = caches.predicted_latency(
            loaded.fingerprint, plan.to_json(), int(batch.iloc[0]) if len(batch) else None, loaded
        )
        return 1 - latency["predicted_ms"] / latency["dense_ms"]
    before, after = caches.model_summary(loaded), caches.pruned_summary(loaded, pruned)
    field = "nonzero_params" if budget == "params" else "flops"
    return 1 - after[field] / before[field] if before[field] else 0.0


def refinement(measured_drop: float, predicted: float) -> None:
    """Say plainly that the prediction was too optimistic, and offer to reach the plan in steps."""
    st.warning(
        f"The plan loses {measured_drop * 100:.2f} points, {(measured_drop - predicted) * 100:.2f} more than "
        "predicted: the layers' damage compounds when they are pruned together. Lower the target or limit each "
        "layer's drop, or reach this plan in steps with fine-tuning between them, which wins most of it back.",
        icon=":material/warning:",
    )
    if st.button("Prune this plan in steps", key=keys.SENS_REFINE_STEPS, icon=":material/stairs:"):
        st.session_state[keys.SENS_PLAN_SOURCE] = "suggestion"
        st.info("The “Prune in steps” tab now reaches the suggested plan: open it and run.", icon=":material/info:")
