"""PruneScope: the router and the frame shared by every page (`streamlit run app.py`)."""

import streamlit as st

import prune_engine as pe
from sample_models import list_samples
from ui import cache, state
from ui.widgets import sidebar_model_card

st.set_page_config(page_title="PruneScope", page_icon=":material/content_cut:", layout="wide")

# One line per page. Give each page a lowercase url_path unlike its file name: Streamlit also
# knows the files of a `pages/` folder by name ("Model" for 1_Model.py) and can run such a page
# without this script, skipping the frame (AppTest reruns do; so does a fresh server's first request).
PAGES = [
    st.Page("pages/1_Model.py", title="Model", icon=":material/deployed_code:", url_path="model", default=True),
    st.Page("pages/2_Inspect.py", title="Inspect", icon=":material/query_stats:", url_path="inspect"),
    st.Page("pages/3_Prune.py", title="Prune", icon=":material/content_cut:", url_path="prune"),
    st.Page("pages/4_Compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/5_Sensitivity.py", title="Sensitivity", icon=":material/monitor_heart:", url_path="sensitivity"),
    st.Page("pages/6_Experiments.py", title="Experiments", icon=":material/history:", url_path="experiments"),
]


def load_default_model() -> None:
    """Start every session on the first sample, so that every page has a model to show."""
    if state.current_model() is not None:
        return
    try:
        state.set_current_model(cache.load_sample_model(list_samples()[0]))
    except pe.PruneScopeError as error:
        st.sidebar.warning(f"The default sample could not be loaded: {error}")


page = st.navigation(PAGES)
load_default_model()
with st.sidebar:
    sidebar_model_card(state.current_model())
page.run()
