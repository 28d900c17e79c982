"""Pieces of UI shared by several pages: the sidebar model card, the no-model hint, the layer table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import prune_engine as pe

from . import cache, fmt
from .state import LoadedModel, current_model

MODEL_PAGE = "pages/1_Model.py"
TABLE_ROWS_SHOWN = 40
"""Layer tables up to this many rows show in full; longer ones scroll inside a fixed height."""
TABLE_SCROLL_HEIGHT = 700

_LAYER_COLUMNS = {
    "name": st.column_config.TextColumn(
        "Layer", width="medium", pinned=True, help="The module path of the layer in the model."
    ),
    "kind": st.column_config.TextColumn("Kind"),
    "shape": st.column_config.TextColumn("Weight shape", help="Output channels × inputs (× kernel size)."),
    "params": st.column_config.NumberColumn("Parameters", format="localized", help="Weights and bias."),
    "share": st.column_config.ProgressColumn(
        "Share of model",
        format="percent",
        min_value=0.0,
        max_value=1.0,
        help="This layer's share of all the model's parameters.",
    ),
    "sparsity": st.column_config.NumberColumn("Sparsity", format="percent", help="Share of weights that are zero."),
    "out_channels": st.column_config.NumberColumn("Out channels", format="localized"),
    "in_channels": st.column_config.NumberColumn("In channels", format="localized"),
    "std": st.column_config.NumberColumn("Std", format="%.4f", help="Standard deviation of the weights."),
    "abs_mean": st.column_config.NumberColumn("Mean |w|", format="%.4f", help="Mean absolute weight."),
}


def require_model() -> LoadedModel:
    """The current model; without one, a hint to pick one on the Model page, and the page stops."""
    loaded = current_model()
    if loaded is None:
        st.info("No model is loaded yet. Pick one on the Model page first.", icon=":material/info:")
        st.page_link(MODEL_PAGE, label="Choose a model", icon=":material/arrow_forward:")
        st.stop()
    return loaded


def sidebar_model_card(loaded: LoadedModel | None) -> None:
    """The current model's name, size and accuracy, or a hint to pick one (call inside `st.sidebar`)."""
    st.markdown("**Current model**")
    if loaded is None:
        st.caption("None yet: pick a sample on the Model page.")
        return
    st.markdown(fmt.literal(loaded.name))
    parts = [f"{fmt.count(cache.model_summary(loaded)['params'])} parameters"]
    try:
        accuracy = (cache.model_evaluation(loaded) or {}).get("accuracy")
    except pe.PruneScopeError:
        accuracy = None
    if accuracy is not None:
        parts.append(f"{fmt.percent(accuracy)} accuracy")
    st.caption(" · ".join(parts))


def layer_table(stats: pd.DataFrame, total_params: int) -> None:
    """Per-layer statistics from `prune_engine.layer_stats`, with readable column names and units."""
    view = stats.assign(share=stats["params"] / max(total_params, 1))
    height = "content" if len(view) <= TABLE_ROWS_SHOWN else TABLE_SCROLL_HEIGHT
    st.dataframe(view[list(_LAYER_COLUMNS)], column_config=_LAYER_COLUMNS, hide_index=True, height=height)
