"""PruneScope: the router and the frame shared by every page (`streamlit run app.py`)."""

import streamlit as st

import prune_engine as pe
from sample_models import list_samples
from ui.shared import caches, navigation, state
from ui.shared.widgets import device_picker, sidebar_model_card

st.set_page_config(page_title="PruneScope", page_icon="✂️", layout="wide")  # an emoji: no icon font to fetch offline


def load_default_model() -> None:
    """Start every session on the first sample, so that every page has a model to show."""
    if state.current_model() is not None:
        return
    try:
        state.set_current_model(caches.load_sample_model(list_samples()[0]))
    except pe.PruneScopeError as error:
        st.sidebar.warning(f"The default sample could not be loaded: {error}")


page = st.navigation(
    [
        st.Page(spec.script, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=index == 0)
        for index, spec in enumerate(navigation.PAGES)
    ]
)
load_default_model()
with st.sidebar:
    sidebar_model_card(state.current_model())
    device_picker()
page.run()
