"""Compare: the original and the pruned model side by side, measured the same way."""

import streamlit as st

from ui import compare, experiments, export_panel, fmt, state
from ui.widgets import require_model

PRUNE_PAGE = "pages/3_Prune.py"

st.title("Compare")
loaded_model = require_model()
pruned_model = state.current_pruned()
if pruned_model is None:
    st.info(
        f"Nothing has been pruned from **{fmt.literal(loaded_model.name)}** yet: set the sliders on the Prune page "
        "first, and the result shows up here beside the original.",
        icon=":material/info:",
    )
    st.page_link(PRUNE_PAGE, label="Go to Prune", icon=":material/arrow_forward:")
    st.stop()

st.markdown(
    f"**{fmt.literal(loaded_model.name)}** before and after pruning, measured the same way. "
    "Green changes are improvements, red ones are costs."
)
headline = st.container()

st.subheader("Latency")
latency = compare.latency_section(loaded_model, pruned_model)
with headline:
    compare.headline(loaded_model, pruned_model, latency)
experiments.record_measurements(loaded_model, pruned_model, latency)

st.subheader("Layer by layer")
compare.layer_changes(pruned_model)

st.subheader("Predictions that changed")
compare.prediction_changes(loaded_model, pruned_model)

st.subheader("Export")
export_panel.section(loaded_model, pruned_model, latency)
