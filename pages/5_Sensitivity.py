"""Sensitivity: how much each layer can lose, suggested ratios, fine-tuning and sparsity training."""

import streamlit as st

from ui.widgets import require_model

st.title("Sensitivity")
require_model()
