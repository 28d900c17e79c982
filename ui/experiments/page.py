"""Experiments: the history of applied plans, their trade-offs and their differences."""

from __future__ import annotations

import streamlit as st

from ui.experiments import view
from ui.shared import keys, navigation
from ui.shared.widgets import page_start
from workbench import fmt


def render() -> None:
    """Draw the page."""
    loaded_model = page_start(
        "Experiments",
        "Every result you prune is saved here with what it measured, so you can come back to it, compare "
        "trade-offs and pick up a plan again. The Compare page adds accuracy and latency to a result's run.",
    )
    with st.expander("What is a Pareto front?", icon=":material/school:"):
        st.markdown(view.PARETO_ABOUT)
    view.show_notice()
    runs = view.history(loaded_model)
    if runs is None:
        st.stop()
    all_models = bool(st.session_state.get(keys.EXPERIMENTS_ALL_MODELS))
    if runs.empty:
        whose = "in the history" if all_models else f"for **{fmt.literal(loaded_model.name)}**"
        st.info(f"No runs {whose} yet: every plan applied on the Prune page is saved here.", icon=":material/info:")
        st.page_link(navigation.PRUNE_PAGE, label="Go to Prune", icon=":material/arrow_forward:")
        st.stop()
    shown = view.filtered(runs)
    selected = view.runs_table(shown, all_models)
    view.export(shown["id"].tolist())
    st.subheader("Trade-offs")
    current = shown[shown["model_fingerprint"] == loaded_model.identity]
    if all_models:
        st.caption(f"The charts show the runs of the current model, {fmt.literal(loaded_model.name)}, only.")
    if current.empty:
        st.caption("None of the listed runs is of the current model.")
    else:
        view.pareto_charts(current, loaded_model, selected)
    chosen = [shown[shown["id"] == run_id].iloc[0] for run_id in sorted(selected)]
    if len(chosen) == 1:
        st.subheader("Selected run")
        view.run_actions(chosen[0], loaded_model)
    elif len(chosen) == 2:
        st.subheader("Two plans side by side")
        view.plan_differences(chosen[0], chosen[1], loaded_model)
    elif len(chosen) > 2:
        st.caption("Select one run to rename, delete or re-load it, or two to compare their plans.")
