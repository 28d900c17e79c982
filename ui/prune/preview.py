"""The Prune page's live preview: what each layer will lose, and where the cut falls in one layer's scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

import prune_engine as pe
from ui.prune import result as prune_result
from ui.shared import caches, charts, keys
from workbench import fmt
from workbench.plans import criterion_label, is_blocked
from workbench.session import LoadedModel, PrunedModel

HISTOGRAM_BINS = 80
CHART_CONFIG = {"displayModeBar": False}
"""The preview redraws on every slider step: without plotly's toolbar it draws faster."""


def compute(loaded: LoadedModel, plan: pe.PruningPlan) -> tuple[pe.PlanPreview | None, PrunedModel | None]:
    """The preview of `plan` and, for a model pruned live, the result it comes from: one decision for both
    (a slider move on a small model prunes once, and the preview is read from that). When the page shows no
    accuracy for the model, that result is a draft whose BatchNorm re-estimation waits until something runs
    it (`state.current_pruned`). (None, None) and the engine's sentence when the plan cannot be applied."""
    try:
        if prune_result.ranks_on_apply(loaded, plan):
            return prune_result.plan_only_preview(loaded, plan), None
        if (seconds := prune_result.scoring_wait(loaded, plan)) is not None:
            prune_result.scoring_button(loaded, plan, seconds)
            return prune_result.plan_only_preview(loaded, plan), None
        if prune_result.applies_live(loaded):
            pruned = caches.pruned(loaded, plan, batchnorm_later=not prune_result.accuracy_is_cheap(loaded))
            return pruned.result.preview, pruned
        return caches.preview(loaded, plan), None
    except pe.PruneScopeError as error:
        st.error(fmt.literal(str(error)), icon=":material/error:")
        return None, None


def ratio_table(plan: pe.PruningPlan, preview: pe.PlanPreview) -> pd.DataFrame:
    """layer, ratio (what it will lose), status (how that is set) and note, for `charts.plan_ratios`."""
    table = preview.table

    def status(row: pd.Series) -> str:
        if is_blocked(row):
            return "cannot be pruned"
        if plan.granularity == "n:m":
            return "pruned with N:M" if row["assigned_ratio"] > 0 else "left dense"
        if row["layer"] in plan.ratios:
            return "locked"
        return "set by the global ranking" if plan.is_global_ranked(row["layer"]) else "follows the global slider"

    return pd.DataFrame(
        {
            "layer": table["layer"],
            "ratio": table["assigned_ratio"],
            "status": table.apply(status, axis=1),
            "note": table["note"],
        }
    )


PREVIEW_TITLE = "Preview: the share each layer loses, and where the cut falls"


def section(plan: pe.PruningPlan, preview: pe.PlanPreview | None) -> None:
    """The per-layer ratio bars beside one layer's sorted scores with the cut line, drawn only while open.

    Two charts redrawn on every slider step were the slowest part of the page's answer to a
    slider (about 120 ms of browser work per step here), so they wait until the user opens them.
    """
    box = opened_box(PREVIEW_TITLE)
    if box is not None:
        with box:
            _charts(plan, preview)


def opened_box(title: str) -> DeltaGenerator | None:
    """The preview's expander (one open state for every granularity), or None while it is closed."""
    box = st.expander(title, key=keys.PRUNE_PREVIEW_OPEN, on_change="rerun", icon=":material/insights:")
    return box if box.open else None


def _charts(plan: pe.PruningPlan, preview: pe.PlanPreview | None) -> None:
    if preview is None:
        st.caption("No preview: the plan cannot be applied as it stands (see the message above).")
        return
    unit = "channels" if plan.granularity == "channel" else "weights"
    left, right = st.columns(2)
    left.plotly_chart(charts.plan_ratios(ratio_table(plan, preview), unit), config=CHART_CONFIG)
    scored = [layer for layer in preview.table["layer"] if layer in preview.scores]
    with right:
        if not scored:
            st.caption(
                "No scores to show: on a model this large the weights are ranked only when the plan is applied."
                if plan.granularity in prune_result.WEIGHT_RANKED and preview.table["assigned_ratio"].gt(0).any()
                else "No layer is pruned by this plan, so there are no scores to show."
            )
            return
        if st.session_state.get(keys.PRUNE_PREVIEW_LAYER_PICKER) not in scored:
            st.session_state[keys.PRUNE_PREVIEW_LAYER_PICKER] = scored[0]
        layer = st.selectbox("Layer to look into", scored, key=keys.PRUNE_PREVIEW_LAYER_PICKER, width=420)
        ratio = float(preview.table.set_index("layer").loc[layer, "assigned_ratio"])
        st.plotly_chart(cut_figure(plan, preview.scores[layer], ratio, layer), config=CHART_CONFIG)
    if plan.granularity == "n:m":
        right_side = "how the chosen layer's weight scores spread: N:M keeps the n largest of every m, so there is "
        right_side += "no single threshold."
    else:
        right_side = "the chosen layer's scores, least important first; everything left of the dashed line goes."
    st.caption(f"Left: the share each layer will lose. Right: {right_side}")


def cut_figure(plan: pe.PruningPlan, scores: torch.Tensor, ratio: float, layer: str) -> dict:
    """Sorted channel scores with the cut, or a histogram of weight scores with the threshold."""
    values = scores.detach().float().cpu().numpy()
    criterion = criterion_label(plan.criterion)
    if plan.granularity == "channel":
        ordered = np.sort(values.ravel())
        return charts.channel_cut(ordered, round(ratio * len(ordered)), layer, criterion)
    flat = values.ravel()
    counts, edges = np.histogram(flat, bins=HISTOGRAM_BINS)
    threshold = None if plan.granularity == "n:m" else weight_threshold(flat, ratio)
    return charts.score_histogram(counts, edges, threshold, layer, criterion)


def weight_threshold(scores: np.ndarray, ratio: float) -> float | None:
    """The score below which `ratio` of the weights lie (midway between the last removed and the first kept)."""
    removed = round(ratio * scores.size)
    if removed <= 0 or removed >= scores.size:
        return None
    low, high = np.partition(scores, [removed - 1, removed])[[removed - 1, removed]]
    return float((low + high) / 2)
