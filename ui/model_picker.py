"""The Model page's sample picker: choose one of the shipped sample models."""

from __future__ import annotations

import streamlit as st

import prune_engine as pe
from sample_models import list_samples

from . import cache, state

SAMPLE_PICKER = "model_sample_picker"


def load_picked_sample() -> None:
    """Make the sample chosen in the picker the current model (the picker's on_change)."""
    name = st.session_state[SAMPLE_PICKER]
    if name is None:
        return
    try:
        state.set_current_model(cache.load_sample_model(name))
    except pe.PruneScopeError as error:
        st.error(str(error), icon=":material/error:")


def sample_picker() -> None:
    """A selectbox of the sample models, showing the current model when it is a sample."""
    current = state.current_model()
    shown = current.name if current is not None and current.source == "sample" else None
    if st.session_state.get(SAMPLE_PICKER) != shown:
        st.session_state[SAMPLE_PICKER] = shown
    st.selectbox(
        "Sample model",
        list_samples(),
        key=SAMPLE_PICKER,
        on_change=load_picked_sample,
        placeholder="Choose a sample model",
        help="Small classifiers of 8×8 handwritten digits that ship trained, with their test data.",
        width=420,
    )
