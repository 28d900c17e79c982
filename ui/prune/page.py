"""Prune: a global slider and one per layer build a pruning plan; small models are pruned as they move."""

from __future__ import annotations

import streamlit as st

from ui.prune import controls, heads, layers, result
from ui.prune import preview as plan_preview
from ui.shared import explain, graph_view, state
from ui.shared.widgets import page_start
from workbench.session import LoadedModel


@st.fragment
def controls_and_results(loaded: LoadedModel) -> None:
    """Everything the sliders drive, so that moving one reruns only this part of the page."""
    with result.live_threads(loaded):
        plan = controls.current_plan(loaded)
        controls.show_errors()
        controls.global_controls(plan)
        caption = st.empty()  # the browser draws the controls while the plan is applied; its count comes after
        preview, live = plan_preview.compute(loaded, plan)
        if live is not None:
            state.set_pruned(live)
        with caption:
            controls.global_caption(plan)
        if plan.granularity == "head":
            heads.section(loaded, plan, preview)
        else:
            st.subheader("Per layer")
            layers.sliders(loaded, plan, preview)
            plan_preview.section(plan, preview)
        result.section(loaded, plan, plan_works=preview is not None)


def render() -> None:
    """Draw the page."""
    loaded_model = page_start(
        "Prune",
        "Choose what to remove from {model}, and how much. "
        "The original stays untouched: pruning always works on a copy.",
    )
    explain.what_is_this()
    with st.expander("Load a plan from a file", icon=":material/upload_file:"):
        controls.plan_upload(loaded_model)
    controls.plan_settings(loaded_model, controls.current_plan(loaded_model))  # a slider step leaves them as drawn
    controls_and_results(loaded_model)
    graph_view.section(loaded_model)
