"""The Sensitivity page's methods comparison: several criteria pruned at several ratios, each curve
with the band that chance alone gives (random seeds, calibration subsets), with and without recovery."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import prune_engine as pe
from prune_engine.comparison import Method, comparison_request, summarise
from ui.sensitivity import charts
from ui.shared import caches, keys
from workbench import quality
from workbench.session import LoadedModel

GRANULARITY_LABELS = {
    "unstructured": "Single weights",
    "n:m": "N:M (2:4)",
    "channel": "Channels (BatchNorm re-estimated)",
    "block": "Whole blocks (depth)",
}
RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
RECOVERIES = {"none": "None", "fine_tune": "Fine-tune 1 epoch (labels)", "distill": "Distill 1 epoch (no labels)"}
TEXT = (
    "Prune the same model by several criteria at several ratios and compare the curves. Chance matters: the "
    "random criterion is repeated with three seeds and data-driven criteria with three different calibration "
    "subsets, and the band around each curve spans the lowest and highest result. Where two bands overlap, "
    "the methods cannot be told apart on this model. On digits_cnn with BatchNorm re-estimated, L1, Taylor, "
    "activation and conductance all land within about a point of random at 30 % of channels. At 50 % of single "
    "weights on minilm, Wanda keeps about 2 points more nearest neighbours than magnitude and SparseGPT, which "
    "also updates the weights it keeps, about 4; on tiny_gpt only SparseGPT does clearly better. Wanda pays most "
    "on large language models, whose few huge input features these small models lack."
)


def methods_panel(loaded: LoadedModel) -> None:
    """Choose granularity, criteria, ratios and recovery → run → curves with bands and the table."""
    if loaded.bundle.eval_data is None:
        st.info("Comparing methods needs evaluation data; load some with the model first.", icon=":material/info:")
        return
    with st.form(keys.SENS_METHODS_FORM):
        granularity = st.selectbox(
            "Granularity",
            list(GRANULARITY_LABELS),
            format_func=GRANULARITY_LABELS.get,
            key=keys.SENS_METHODS_GRANULARITY,
        )
        criteria = st.multiselect(
            "Criteria",
            list(pe.CRITERIA),
            default=["l1", "random", "wanda"],
            format_func=lambda name: pe.CRITERIA[name].label,
            key=keys.SENS_METHODS_CRITERIA,
        )
        ratios = st.multiselect(
            "Ratios", RATIOS, default=[0.3, 0.5, 0.7], format_func="{:.0%}".format, key=keys.SENS_METHODS_RATIOS
        )
        recovery = st.radio(
            "Recovery", list(RECOVERIES), format_func=RECOVERIES.get, horizontal=True, key=keys.SENS_METHODS_RECOVERY
        )
        submitted = st.form_submit_button("Compare", type="primary", icon=":material/play_arrow:")
    if submitted and criteria and ratios:
        methods = [Method(name, granularity, _options(granularity), pe.CRITERIA[name].label) for name in criteria]
        request = comparison_request(methods, sorted(ratios), 3, None if recovery == "none" else recovery)
        bar = st.progress(0.0)
        try:
            runs = caches.methods_comparison(loaded.fingerprint, request, loaded, lambda f, m: bar.progress(f, m))
        except pe.PruneScopeError as error:
            st.error(str(error), icon=":material/error:")
            return
        finally:
            bar.empty()
        st.session_state[keys.SENS_METHODS] = (loaded.fingerprint, runs)
    shown = st.session_state.get(keys.SENS_METHODS)
    if shown is not None and shown[0] == loaded.fingerprint:
        table = summarise(shown[1])
        st.plotly_chart(curves(table), key=keys.SENS_METHODS_CHART)
        figure_format = "%.1f %%" if metric_axis(_metric(table))[1] else "%.3f"
        st.dataframe(
            table_view(table),
            hide_index=True,
            column_config={
                column: st.column_config.NumberColumn(format=figure_format) for column in ("mean", "lowest", "highest")
            },
        )


def _options(granularity: str) -> tuple[tuple[str, object], ...]:
    if granularity == "channel":
        return (("recalibrate_bn", True),)
    if granularity == "n:m":
        return (("m", 4), ("n", 2))
    return ()


def metric_axis(metric: str) -> tuple[str, bool, bool]:
    """How a comparison's figure is named and drawn: (label, in percent, lower is better)."""
    figure = quality.named(metric)
    return figure.label.lower(), figure.share, figure.lower_is_better


def curves(table: pd.DataFrame) -> go.Figure:
    """The mean of each method against the share removed, with a band from lowest to highest; dashed after
    recovery. Shares in percent like everywhere else in the app; perplexity on a reversed axis (up is better)."""
    label, share, lower_is_better = metric_axis(_metric(table))
    title = f"{label[0].upper()}{label[1:]} by method and share removed: mean of 3 repeats, band from lowest to highest"
    return charts.method_curves(table, label, share, lower_is_better, title)


def _metric(table: pd.DataFrame) -> str:
    return str(table["metric"].iloc[0]) if len(table) else ""


def table_view(table: pd.DataFrame) -> pd.DataFrame:
    """The summary as the page shows it: percent where the chart draws percent, plain words for columns."""
    _, share, _ = metric_axis(_metric(table))
    scale = 100 if share else 1
    return pd.DataFrame(
        {
            "method": table["method"],
            "removed (%)": (table["ratio"] * 100).round(0),
            "after recovery": table["recovered"].map({True: "yes", False: "no"}),
            "mean": table["mean"] * scale,
            "lowest": table["low"] * scale,
            "highest": table["high"] * scale,
            "repeats": table["runs"],
        }
    )
