"""Sensitivity: how much each layer can lose, suggested ratios, fine-tuning and sparsity training."""

from __future__ import annotations

import streamlit as st

from ui.sensitivity import scan, text, training
from ui.shared.widgets import require_model
from workbench import fmt


def render() -> None:
    """Draw the page."""
    st.title("Sensitivity")
    loaded_model = require_model()
    st.markdown(
        f"Find out which layers of **{fmt.literal(loaded_model.name)}** can lose the most, let the scan suggest a "
        "ratio per layer, and win accuracy back by pruning in steps with fine-tuning or by training for sparsity "
        "first. Every step works on copies: the loaded model stays as it is."
    )
    scan_tab, allocation_tab, iterative_tab, sparsity_tab = st.tabs(
        ["Sensitivity scan", "Suggested ratios", "Prune in steps", "Sparsity training"]
    )
    with scan_tab:
        text.what_is_this("Sensitivity analysis", text.SENSITIVITY)
        scan.scan_panel(loaded_model)
    with allocation_tab:
        text.what_is_this("Choosing a ratio per layer", text.ALLOCATION)
        scan.allocation_panel(loaded_model)
    with iterative_tab:
        text.what_is_this("Iterative pruning, schedules (AGP) and fine-tuning", text.ITERATIVE)
        training.iterative_panel(loaded_model)
    with sparsity_tab:
        text.what_is_this("L1 sparsity training and network slimming", text.SPARSITY)
        training.sparsity_panel(loaded_model)
