"""Compare: the original and the pruned model side by side, measured the same way."""

from __future__ import annotations

import streamlit as st

from ui.compare import export, view
from ui.shared import navigation, runs, state
from ui.shared.widgets import page_start
from workbench import fmt


def render() -> None:
    """Draw the page."""
    loaded_model = page_start("Compare")
    pruned_model = state.current_pruned()
    if pruned_model is None:
        st.info(
            f"Nothing has been pruned from **{fmt.literal(loaded_model.name)}** yet: set the sliders on the Prune page "
            "first, and the result shows up here beside the original.",
            icon=":material/info:",
        )
        st.page_link(navigation.PRUNE_PAGE, label="Go to Prune", icon=":material/arrow_forward:")
        st.stop()
    st.markdown(
        f"**{fmt.literal(loaded_model.name)}** before and after pruning, measured the same way. "
        "Green changes are improvements, red ones are costs."
    )
    headline = st.container()
    st.subheader("Latency")
    latency = view.latency_section(loaded_model, pruned_model)
    with headline:
        view.headline(loaded_model, pruned_model, latency)
    runs.record_measurements(loaded_model, pruned_model, latency)
    st.subheader("Layer by layer")
    view.layer_changes(loaded_model, pruned_model)
    st.subheader("Predictions that changed")
    view.prediction_changes(loaded_model, pruned_model)
    st.subheader("Export")
    export.section(loaded_model, pruned_model, latency)
