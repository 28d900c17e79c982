"""Experiments: the history of applied plans, their trade-offs and their differences."""

import streamlit as st

from ui.widgets import require_model

st.title("Experiments")
require_model()
