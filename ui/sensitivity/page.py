"""Sensitivity: how much each layer can lose, suggested ratios, fine-tuning and sparsity training."""

from __future__ import annotations

import streamlit as st

from ui.sensitivity import methods, scan, text, training
from ui.shared.widgets import page_start

TABS = (
    ("Sensitivity scan", ("Sensitivity analysis", text.SENSITIVITY, scan.scan_panel)),
    ("Suggested ratios", ("Choosing a ratio per layer", text.ALLOCATION, scan.allocation_panel)),
    (
        "Prune in steps",
        ("Iterative pruning, schedules (AGP) and fine-tuning", text.ITERATIVE, training.iterative_panel),
    ),
    ("Sparsity training", ("L1 sparsity training and network slimming", text.SPARSITY, training.sparsity_panel)),
    ("Compare methods", ("Comparing pruning methods fairly", methods.TEXT, methods.methods_panel)),
)
"""Each tab: its title, and the "What is this?" text and panel it shows."""


def render() -> None:
    """Draw the page."""
    loaded_model = page_start(
        "Sensitivity",
        "Find out which layers of {model} can lose the most, let the scan suggest a "
        "ratio per layer, and win accuracy back by pruning in steps with fine-tuning or by training for sparsity "
        "first. Every step works on copies: the loaded model stays as it is.",
    )
    for tab, (title, text_body, panel) in zip(
        st.tabs([tab for tab, _ in TABS]), (part for _, part in TABS), strict=True
    ):
        with tab:
            text.what_is_this(title, text_body)
            panel(loaded_model)
