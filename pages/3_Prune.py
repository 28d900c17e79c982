"""Prune: a global slider and one per layer build a pruning plan; small models are pruned as they move."""

import streamlit as st

from ui import explain, fmt, head_controls, layer_controls, prune_controls, prune_preview, prune_result
from ui.state import LoadedModel
from ui.widgets import require_model


@st.fragment
def workbench(loaded: LoadedModel) -> None:
    """Everything the sliders drive, so that moving one reruns only this part of the page."""
    with prune_result.live_threads(loaded):
        plan = prune_controls.current_plan(loaded)
        prune_controls.show_errors()
        preview = prune_preview.compute(loaded, plan)
        prune_controls.plan_settings(loaded, plan)
        prune_controls.global_controls(plan)
        if plan.granularity == "head":
            head_controls.section(loaded, plan, preview)
        else:
            st.subheader("Per layer")
            layer_controls.sliders(loaded, plan, preview)
            prune_preview.section(plan, preview)
        prune_result.section(loaded, plan, plan_works=preview is not None)


st.title("Prune")
loaded_model = require_model()
st.markdown(
    f"Choose what to remove from **{fmt.literal(loaded_model.name)}**, and how much. "
    "The original stays untouched: pruning always works on a copy."
)
explain.what_is_this()
with st.expander("Load a plan from a file", icon=":material/upload_file:"):
    prune_controls.plan_upload(loaded_model)
workbench(loaded_model)
