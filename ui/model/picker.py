"""The Model page's sample picker: choose one of the shipped sample models, the large
scale-test models included when the "Show large models" toggle is on."""

from __future__ import annotations

import streamlit as st

import prune_engine as pe
from sample_models import list_samples, sample_info
from ui.shared import caches, keys, state
from workbench import fmt

LARGE_WARNING = (
    "Large models are scale tests with random weights (built in code, nothing to download), of 100–125 M "
    "parameters. Loading one takes a few seconds and about 0.5 GB of memory, which stays in use while the "
    "app runs; pruning it waits for the Apply button and takes up to half a minute, and timing it on the "
    "Compare page takes about a minute. Their outputs mean nothing: a pruned copy is scored by how closely "
    "it follows the original."
)


def load_picked_sample() -> None:
    """Make the sample chosen in the picker the current model (the picker's on_change)."""
    name = st.session_state[keys.MODEL_SAMPLE_PICKER]
    if name is None:
        return
    try:
        state.set_current_model(caches.load_sample_model(name))
    except pe.PruneScopeError as error:
        st.error(str(error), icon=":material/error:")


def sample_label(name: str) -> str:
    """How a sample reads in the picker: a large one says so, with its size."""
    if name in list_samples():
        return name
    return f"{name} · large, {fmt.count(sample_info(name).params)} parameters, random weights"


def sample_picker() -> None:
    """A "Show large models" toggle and a selectbox of the samples, showing the current model when it is a sample."""
    current = state.current_model()
    shown = current.name if current is not None and current.source == "sample" else None
    large = set(list_samples(include_large=True)) - set(list_samples())
    if shown in large:
        st.session_state[keys.MODEL_SHOW_LARGE] = True
    include_large = st.toggle(
        "Show large models",
        key=keys.MODEL_SHOW_LARGE,
        help="Add the 100 M+ parameter scale-test models (random weights) to the list.",
    )
    if include_large:
        st.warning(LARGE_WARNING, icon=":material/memory:")
    if st.session_state.get(keys.MODEL_SAMPLE_PICKER) != shown:
        st.session_state[keys.MODEL_SAMPLE_PICKER] = shown
    st.selectbox(
        "Sample model",
        list_samples(include_large=include_large),
        key=keys.MODEL_SAMPLE_PICKER,
        format_func=sample_label,
        on_change=load_picked_sample,
        placeholder="Choose a sample model",
        help="Models that ship with PruneScope, trained, with the data they are scored on"
        + ("; and the large scale-test models, with random weights." if include_large else "."),
        width=520,
    )
