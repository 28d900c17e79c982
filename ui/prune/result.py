"""Applying the Prune page's plan: live for small models, behind a button with progress for large
ones; then a short before/after summary, the way to Compare, and the plan as a file."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import prune_engine as pe
from ui.shared import caches, importance, keys, navigation, runs, state
from ui.shared.widgets import SHARE_STEP, Figure, figure_metric
from workbench import fmt, quality
from workbench import plans as edits
from workbench.session import LoadedModel, PrunedModel

AUTO_APPLY_MAX_PARAMS = 5_000_000
"""Models with fewer parameters are pruned again whenever a control settles (the samples take
well under a second); larger ones wait for the Apply button."""
LIVE_ACCURACY_MAX_FLOPS = 2e9
"""The summary shows accuracy when one pass over the test data costs at most this many FLOPs
(the MLP and CNN samples; the ResNet's 13 GFLOPs take ~0.1 s, too long for every slider step)."""
RANK_ON_APPLY_MIN_PARAMS = 50_000_000
"""From this size, ranking every weight (single weights, N:M) takes tens of seconds and a few copies
of the weights, too much for every slider step: the preview shows the plan as set and the ranking
runs when the plan is applied."""
WEIGHT_RANKED = ("unstructured", "n:m")
FLOPS_HELP = "Dense work of one forward pass: zeros are multiplied too, so only removed channels lower it."


def applies_live(loaded: LoadedModel) -> bool:
    """Whether `loaded` is small enough to be pruned on every change of the controls."""
    return int(caches.model_summary(loaded)["params"]) < AUTO_APPLY_MAX_PARAMS


LIVE_SCORING_MAX_S = 3.0
"""A data criterion estimated to take longer than this scores on a button, not as soon as it is picked."""


def scoring_wait(loaded: LoadedModel, plan: pe.PruningPlan) -> float | None:
    """The estimated seconds `plan`'s criterion needs before anything can be previewed or pruned, when that is
    long and the user has not asked for it yet on this model; None when the page may go ahead."""
    criterion = pe.CRITERIA.get(plan.criterion)
    data = loaded.bundle.eval_data
    if criterion is None or not criterion.needs_data or data is None:
        return None
    if (loaded.fingerprint, plan.criterion) in caches.session_memo(keys.PRUNE_SCORED):
        return None
    seconds = importance.estimated_seconds(loaded, plan.criterion, min(len(data), importance.DEFAULT_EXAMPLES))
    return seconds if seconds > LIVE_SCORING_MAX_S else None


def scoring_button(loaded: LoadedModel, plan: pe.PruningPlan, seconds: float) -> None:
    """Say how long the criterion will take, and start it on a button."""
    label = edits.criterion_label(plan.criterion)
    st.info(
        f"{label} runs the model on its examples to score every weight or channel: "
        f"{fmt.rough_duration(seconds)} on this server. The sliders show the plan meanwhile.",
        icon=":material/hourglass_top:",
    )
    st.button(
        f"Score with {label}",
        key=keys.PRUNE_SCORE,
        icon=":material/play_arrow:",
        on_click=lambda: caches.session_memo(keys.PRUNE_SCORED).update({(loaded.fingerprint, plan.criterion): True}),
    )


def live_threads(loaded: LoadedModel) -> AbstractContextManager[None]:
    """One torch thread for a model worked on live (see `caches.single_threaded`); the default otherwise."""
    return caches.single_threaded() if applies_live(loaded) else nullcontext()


def ranks_on_apply(loaded: LoadedModel, plan: pe.PruningPlan) -> bool:
    """Whether `plan` ranks every weight of a model so large that the ranking waits for Apply."""
    return plan.granularity in WEIGHT_RANKED and int(caches.model_summary(loaded)["params"]) >= RANK_ON_APPLY_MIN_PARAMS


def plan_only_preview(loaded: LoadedModel, plan: pe.PruningPlan) -> pe.PlanPreview:
    """The preview of a plan that `ranks_on_apply`: the plan checked against the model, each layer's
    ratio as set (under a global ranking: as the last Apply of this same plan assigned it, else the
    global ratio until then) and no scores."""
    plan.validate()
    stats = caches.model_layers(loaded)
    plan.check_layers(stats["name"])
    pruned = state.current_pruned(finished=False)
    applied = pruned.result.report.set_index("layer") if pruned and pruned.plan.to_json() == plan.to_json() else None
    table = pd.DataFrame({"layer": stats["name"], "kind": stats["kind"]})
    table["target_ratio"] = [plan.target_ratio(name) for name in table["layer"]]
    table["assigned_ratio"] = table["target_ratio"]
    table["group"] = table["layer"]
    table["note"] = ""
    table["blocked_by"] = None
    if applied is not None:
        table["assigned_ratio"] = applied["assigned_ratio"].reindex(table["layer"]).fillna(0.0).to_numpy()
        table["note"] = applied["note"].reindex(table["layer"]).fillna("").to_numpy()
        table["blocked_by"] = applied["blocked_by"].reindex(table["layer"]).to_numpy()
    table["status"] = [
        pe.LayerStatus.BLOCKED
        if blocked_by is not None
        else pe.LayerStatus.PRUNED
        if ratio > 0
        else pe.LayerStatus.UNCHANGED
        for ratio, blocked_by in zip(table["assigned_ratio"], table["blocked_by"], strict=True)
    ]
    return pe.PlanPreview(table=table, scores={})


def applied_report(plan: pe.PruningPlan) -> pd.DataFrame | None:
    """The session result's per-layer report (indexed by layer) when it was made by `plan`, else None."""
    pruned = state.current_pruned(finished=False)
    if pruned is None or pruned.result.preview is None or pruned.plan.to_json() != plan.to_json():
        return None
    return pruned.result.report.set_index("layer")


def accuracy_is_cheap(loaded: LoadedModel) -> bool:
    """Whether evaluating the model on its test data is quick enough to redo on every change."""
    data, flops = loaded.bundle.eval_data, caches.model_summary(loaded)["flops"]
    return data is not None and flops is not None and flops * len(data) <= LIVE_ACCURACY_MAX_FLOPS


def section(loaded: LoadedModel, plan: pe.PruningPlan, plan_works: bool) -> None:
    """Apply the plan (live or on the button), then show what it did."""
    st.subheader("Result")
    params = int(caches.model_summary(loaded)["params"])
    live = applies_live(loaded)
    if live:
        st.caption(
            f"Models under {AUTO_APPLY_MAX_PARAMS / 1e6:g} M parameters are pruned again each time a control "
            f"settles; this one has {fmt.count(params)}."
        )
    else:
        st.caption(
            f"This model has {fmt.count(params)} parameters: pruning it takes a while, so it waits for the button "
            f"(models under {AUTO_APPLY_MAX_PARAMS / 1e6:g} M are pruned live)."
        )
        if st.button(
            "Apply the plan",
            key=keys.PRUNE_APPLY,
            type="primary",
            disabled=not plan_works,
            icon=":material/content_cut:",
        ):
            _apply_with_progress(loaded, plan)
    pruned = state.current_pruned(finished=False)
    summary(loaded, pruned, plan, with_accuracy=live and accuracy_is_cheap(loaded))
    link, save, download = st.columns(3, vertical_alignment="center")
    link.page_link(
        navigation.COMPARE_PAGE, label="Compare the pruned model with the original", icon=":material/compare_arrows:"
    )
    _save_button(save, loaded, pruned)
    download.download_button(
        "Download the plan (JSON)",
        data=plan.to_json(),
        file_name=f"{_file_stem(loaded.name)}-plan.json",
        mime="application/json",
        key=keys.PRUNE_DOWNLOAD,
        on_click="ignore",
        icon=":material/download:",
        help="Load it again here, keep it with an experiment, or apply it from a script with prune_engine.",
    )


def _save_button(column: DeltaGenerator, loaded: LoadedModel, pruned: PrunedModel | None) -> None:
    """Save the current result to the experiment history (opening Compare saves it too)."""
    run_id = None if pruned is None else state.saved_run(pruned)
    if run_id is not None:
        column.caption(f":material/check: Saved in the history as run #{run_id}.")
        return
    column.button(
        "Save to the history",
        key=keys.PRUNE_SAVE,
        disabled=pruned is None,
        on_click=runs.save_result,
        args=(loaded, pruned, accuracy_is_cheap(loaded)),
        icon=":material/bookmark_add:",
        help="Moving the sliders saves nothing: save a result you want to keep, or open Compare (which saves it).",
    )


def _apply_with_progress(loaded: LoadedModel, plan: pe.PruningPlan) -> None:
    with st.status("Pruning…", expanded=True) as status:
        bar = st.progress(0.0)
        try:
            result = caches.apply(loaded, plan, progress=lambda done, message: bar.progress(min(done, 1.0), message))
        except pe.PruneScopeError as error:
            status.update(label="Pruning failed", state="error")
            st.error(fmt.literal(str(error)), icon=":material/error:")
            return
        runs.keep_result(loaded, PrunedModel.from_result(result, loaded), with_accuracy=False)
        status.update(label="Pruned", state="complete", expanded=False)


def summary(loaded: LoadedModel, pruned: PrunedModel | None, plan: pe.PruningPlan, with_accuracy: bool) -> None:
    """Parameters, non-zeros, FLOPs and (when cheap) accuracy of the pruned model, against the original's."""
    if pruned is None:
        st.info("Nothing has been pruned yet.", icon=":material/info:")
        return
    if pruned.plan.to_json() != plan.to_json():
        st.warning("These figures come from an earlier plan: apply the current one to update them.")
    before, after = caches.model_summary(loaded), caches.pruned_summary(loaded, pruned, sizes=False)
    figures = [
        Figure("Parameters", before["params"], after["params"], fmt.count, help="Only removed channels lower it."),
        Figure("Non-zero parameters", before["nonzero_params"], after["nonzero_params"], fmt.count),
        Figure("FLOPs per example", before["flops"], after["flops"], fmt.count, help=FLOPS_HELP),
    ]
    metric = quality.expected_metric(loaded.bundle)
    original = _quality(loaded, None, metric) if with_accuracy and metric is not None else None
    if metric is not None and original is not None:
        after = _quality(loaded, pruned, metric)
        step = SHARE_STEP if metric.share else 0.01
        change = fmt.points if metric.share else None
        figures.append(
            Figure(metric.label, original, after, metric.show, metric.lower_is_better, metric.help, change, step)
        )
    columns = st.columns(len(figures) + 1)
    for column, figure in zip(columns, figures, strict=False):
        figure_metric(column, figure, "pruned")
    _predicted_speedup(columns[-1], loaded, pruned, plan)
    if original is None and metric is not None:
        st.caption(
            f"{metric.label} is on the Compare page: evaluating this model takes too long to redo at every step."
        )


PREDICTION_BATCH = 32
"""The batch the live prediction times layers at, as Compare measures by default."""


def _predicted_speedup(column: DeltaGenerator, loaded: LoadedModel, pruned: PrunedModel, plan: pe.PruningPlan) -> None:
    """The speed-up the engine predicts for this result before anyone measures it (layers that change shape,
    each timed alone near its new width); single weights and N:M predict none on dense kernels."""
    if plan.granularity in ("unstructured", "n:m"):
        column.metric(
            "Predicted speed-up",
            "none",
            help="Zeros are still multiplied by dense kernels; see Compare for sparse kernels.",
        )
        return
    if not st.toggle("Predict the speed-up", value=True, key=keys.PRUNE_PREDICT):
        return
    if pruned.plan.to_json() != plan.to_json():
        return
    speedup = caches.predicted_speedup(loaded.fingerprint, pruned.fingerprint, PREDICTION_BATCH, loaded, pruned.model)
    column.metric(
        "Predicted speed-up",
        f"{speedup:.2f}×",
        help=f"From one profile of the original at batch {PREDICTION_BATCH}, 1 thread, with each layer that changes "
        "shape timed alone (on a CPU at widths 1/8 of the original apart, the time in between interpolated). "
        "Compare measures the real one.",
    )


def _quality(loaded: LoadedModel, pruned: PrunedModel | None, metric: quality.QualityMetric) -> float | None:
    """`metric` on the model's test examples (of the pruned model when given); None when it cannot be had."""
    try:
        evaluation = caches.model_evaluation(loaded) if pruned is None else caches.pruned_evaluation(loaded, pruned)
    except pe.PruneScopeError:
        return None
    return (evaluation or {}).get(metric.key)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
