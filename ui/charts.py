"""Plotly figures built from aggregated numbers only (per-layer rows, histogram bins, norms).

Layer names come from model files, so they are escaped before they reach plotly,
which would otherwise read tags in labels as markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CHART_HEIGHT = 380
PARAMS_COLOR = "#2563eb"
SPARSITY_COLOR = "#f97316"


def plain(text: str) -> str:
    """`text` escaped so that plotly shows it literally."""
    return html.escape(text, quote=False)


def layer_overview(stats: pd.DataFrame) -> go.Figure:
    """Bars of parameters per layer, with each layer's sparsity on a second axis."""
    names = [plain(name) for name in stats["name"]]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Bar(
            x=names,
            y=stats["params"],
            name="parameters",
            marker_color=PARAMS_COLOR,
            hovertemplate="%{x}<br>%{y:,} parameters<extra></extra>",
        ),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            x=names,
            y=stats["sparsity"] * 100,
            name="sparsity",
            mode="lines+markers",
            marker={"color": SPARSITY_COLOR, "size": 9},
            line={"color": SPARSITY_COLOR, "width": 2},
            hovertemplate="%{x}<br>%{y:.1f} % of weights are zero<extra></extra>",
        ),
        secondary_y=True,
    )
    figure.update_yaxes(title_text="parameters", secondary_y=False)
    figure.update_yaxes(
        title_text="sparsity (%)",
        range=[0, 100],
        tickvals=[0, 25, 50, 75, 100],
        showgrid=False,
        secondary_y=True,
    )
    figure.update_xaxes(title_text="layer", type="category")
    return _finish(figure, "Parameters and sparsity per layer")


def weight_histogram(counts: np.ndarray, edges: np.ndarray, layer_name: str) -> go.Figure:
    """A histogram drawn from precomputed bins, with a line marking zero."""
    centers = (edges[:-1] + edges[1:]) / 2
    figure = go.Figure(
        go.Bar(
            x=centers,
            y=counts,
            width=np.diff(edges),
            marker_color=PARAMS_COLOR,
            customdata=np.stack([edges[:-1], edges[1:]], axis=1),
            hovertemplate="%{customdata[0]:.4f} to %{customdata[1]:.4f}<br>%{y:,} weights<extra></extra>",
        )
    )
    if edges[0] < 0 < edges[-1]:
        figure.add_vline(x=0, line_dash="dash", line_color="#64748b")
    figure.update_layout(bargap=0, showlegend=False)
    figure.update_xaxes(title_text="weight value")
    figure.update_yaxes(title_text="number of weights")
    return _finish(figure, f"Weight values of {plain(layer_name)}")


def channel_norm_bars(norms: Sequence[float] | np.ndarray, layer_name: str, sort: bool = False) -> go.Figure:
    """L1 norm of each output channel, in channel order or smallest first."""
    norms = np.asarray(norms, dtype=float)
    channels = np.arange(len(norms))
    if sort:
        order = np.argsort(norms, kind="stable")
        norms, channels = norms[order], channels[order]
    figure = go.Figure(
        go.Bar(
            x=[str(channel) for channel in channels],
            y=norms,
            marker_color=PARAMS_COLOR,
            hovertemplate="channel %{x}<br>L1 norm %{y:.3f}<extra></extra>",
        )
    )
    figure.update_layout(showlegend=False, bargap=0.1)
    order_note = "smallest first" if sort else "in channel order"
    figure.update_xaxes(title_text=f"output channel ({order_note})", type="category", showticklabels=len(norms) <= 40)
    figure.update_yaxes(title_text="L1 norm")
    return _finish(figure, f"L1 norm per output channel of {plain(layer_name)}")


def _finish(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(
        title={"text": title},
        height=CHART_HEIGHT,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.05, "xanchor": "right", "x": 1.0},
    )
    return figure
