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


MAX_CHANNEL_BARS = 512
"""Above this many channels each bar is the mean of a run of neighbouring channels (in the order
shown), so a 50,257-unit output layer sends 512 bars to the browser, not 50 k."""


def channel_norm_bars(norms: Sequence[float] | np.ndarray, layer_name: str, sort: bool = False) -> go.Figure:
    """L1 norm of each output channel, in channel order or smallest first (runs of channels averaged
    when there are more than `MAX_CHANNEL_BARS`)."""
    norms = np.asarray(norms, dtype=float)
    channels = np.arange(len(norms))
    if sort:
        order = np.argsort(norms, kind="stable")
        norms, channels = norms[order], channels[order]
    labels, hover = [str(channel) for channel in channels], "channel %{x}<br>L1 norm %{y:.3f}<extra></extra>"
    if len(norms) > MAX_CHANNEL_BARS:
        starts = np.linspace(0, len(norms), MAX_CHANNEL_BARS + 1).astype(int)
        norms = np.add.reduceat(norms, starts[:-1]) / np.diff(starts)
        labels = [f"{starts[run]}–{starts[run + 1] - 1}" for run in range(MAX_CHANNEL_BARS)]
        hover = "channels at places %{x}<br>mean L1 norm %{y:.3f}<extra></extra>"
    figure = go.Figure(go.Bar(x=labels, y=norms, marker_color=PARAMS_COLOR, hovertemplate=hover))
    figure.update_layout(showlegend=False, bargap=0.1)
    order_note = "smallest first" if sort else "in channel order"
    if len(labels) < len(channels):
        order_note += f"; each bar the mean of about {len(channels) // len(labels)} channels"
    figure.update_xaxes(title_text=f"output channel ({order_note})", type="category", showticklabels=len(norms) <= 40)
    figure.update_yaxes(title_text="L1 norm")
    return _finish(figure, f"L1 norm per output channel of {plain(layer_name)}")


HORIZONTAL_ABOVE = 12
"""Per-layer charts of more layers than this lay the layers out down the side, one readable row each: across
the bottom, 36 rotated names squashed the plot to a sliver and cut names so query, key and value looked alike."""
ROW_PX = 22


HALF_WIDTH_HORIZONTAL_ABOVE = 6
"""The same for a chart in half the page's width (the Prune page's preview), where fewer names fit across."""


def _layers_down(count: int, limit: int = HORIZONTAL_ABOVE) -> bool:
    return count > limit


def _rows_height_for(count: int) -> int:
    return max(CHART_HEIGHT, 120 + ROW_PX * count)


def _finish(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(
        title={"text": title},
        height=CHART_HEIGHT,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.05, "xanchor": "right", "x": 1.0},
    )
    return figure


REMOVED_COLOR = "#ef4444"
LOCKED_COLOR = "#1e3a8a"
BLOCKED_COLOR = "#94a3b8"
ORIGINAL_COLOR = "#64748b"
STATUS_COLORS = {
    "locked": LOCKED_COLOR,
    "follows the global slider": PARAMS_COLOR,
    "set by the global ranking": "#60a5fa",
    "pruned with N:M": PARAMS_COLOR,
    "left dense": BLOCKED_COLOR,
    "cannot be pruned": BLOCKED_COLOR,
}


def plan_ratios(table: pd.DataFrame, unit: str) -> dict:
    """Bars of the share each layer will lose, coloured by how its ratio is set.

    `table` columns: layer, ratio (0…1), status (a key of `STATUS_COLORS`), note. Like the other
    live preview figures, a plain plotly dict: the preview redraws at every slider step, and
    building it through `go.Figure` costs several times more.
    """
    names = [plain(name) for name in table["layer"]]
    down = _layers_down(len(names), HALF_WIDTH_HORIZONTAL_ABOVE)
    layer_axis, value_axis = ("y", "x") if down else ("x", "y")
    hover = f"%{{{layer_axis}}}<br>%{{{value_axis}:.1f}} % of its {unit} removed<br>%{{customdata}}"
    data = []
    for status, color in STATUS_COLORS.items():
        rows = (table["status"] == status).to_numpy()
        if not rows.any():
            continue
        data.append(
            {
                "type": "bar",
                "orientation": "h" if down else "v",
                layer_axis: [name for name, keep in zip(names, rows, strict=True) if keep],
                value_axis: (table.loc[rows, "ratio"] * 100).tolist(),
                "name": status,
                "marker": {"color": color},
                "customdata": [plain(note) for note in table.loc[rows, "note"]],
                "hovertemplate": f"{hover}<extra>{status}</extra>",
            }
        )
    categories = {"type": "category", "categoryorder": "array", "categoryarray": names, "automargin": True}
    if down:
        categories["autorange"] = "reversed"
    layout = {
        "barmode": "overlay",
        "showlegend": True,
        f"{layer_axis}axis": {"title": {"text": "layer"}, **categories},
        f"{value_axis}axis": {"title": {"text": f"{unit} removed (%)"}, "range": [0, 100]},
    }
    figure = _live_figure(data, layout, "What each layer will lose", legend=True)
    if down:
        figure["layout"]["height"] = _rows_height_for(len(names))
    return figure


def channel_cut(ordered_scores: np.ndarray, cut: int, layer_name: str, criterion: str) -> dict:
    """One layer's channel scores, least important first, with the cut line: channels left of it go."""
    ranks = np.arange(len(ordered_scores))
    data = [
        {
            "type": "bar",
            "x": ranks[part].tolist(),
            "y": ordered_scores[part].tolist(),
            "name": label,
            "marker": {"color": color},
            "hovertemplate": "rank %{x}<br>score %{y:.4g}<extra>" + label + "</extra>",
        }
        for label, part, color in (("removed", slice(0, cut), REMOVED_COLOR), ("kept", slice(cut, None), PARAMS_COLOR))
    ]
    layout = {
        "bargap": 0.1,
        "barmode": "overlay",
        "xaxis": {"title": {"text": "channels, least important first"}},
        "yaxis": {"title": {"text": f"importance ({plain(criterion)})"}},
        **_cut_line(cut - 0.5, f"cut: {cut} removed"),
    }
    return _live_figure(data, layout, f"Channel importance of {plain(layer_name)}", legend=True)


def score_histogram(
    counts: np.ndarray, edges: np.ndarray, threshold: float | None, layer_name: str, criterion: str
) -> dict:
    """How one layer's weight scores spread, with the threshold below which weights are removed."""
    centers = (edges[:-1] + edges[1:]) / 2
    colors = [REMOVED_COLOR if threshold is not None and center < threshold else PARAMS_COLOR for center in centers]
    data = [
        {
            "type": "bar",
            "x": centers.tolist(),
            "y": np.asarray(counts).tolist(),
            "width": np.diff(edges).tolist(),
            "marker": {"color": colors},
            "customdata": np.stack([edges[:-1], edges[1:]], axis=1).tolist(),
            "hovertemplate": "scores %{customdata[0]:.4g} to %{customdata[1]:.4g}<br>%{y:,} weights<extra></extra>",
        }
    ]
    layout = {
        "bargap": 0,
        "showlegend": False,
        "xaxis": {"title": {"text": f"importance ({plain(criterion)})"}},
        "yaxis": {"title": {"text": "number of weights"}},
        **(_cut_line(threshold, "threshold") if threshold is not None else {}),
    }
    return _live_figure(data, layout, f"Weight importance of {plain(layer_name)}")


def _cut_line(x: float, label: str) -> dict:
    """A dashed vertical line at `x` across the plot, labelled at its top."""
    return {
        "shapes": [
            {
                "type": "line",
                "x0": x,
                "x1": x,
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"dash": "dash", "color": "#0f172a"},
            }
        ],
        "annotations": [
            {
                "x": x,
                "y": 1,
                "yref": "paper",
                "text": label,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
                "xshift": 4,
                "bgcolor": "rgba(255, 255, 255, 0.8)",
            }
        ],
    }


def _live_figure(data: list[dict], layout: dict, title: str, legend: bool = False) -> dict:
    """A plotly figure dict with the same frame as `_finish` (and the legend under the title when asked)."""
    frame = {
        "title": {"text": title},
        "height": CHART_HEIGHT,
        "margin": {"l": 10, "r": 10, "t": 95 if legend else 60, "b": 10},
        "legend": {
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.02,
            "xanchor": "left" if legend else "right",
            "x": 0.0 if legend else 1.0,
        },
    }
    return {"data": data, "layout": {**frame, **layout}}


def layer_before_after(layers: Sequence[str], before: Sequence[float], after: Sequence[float], unit: str) -> go.Figure:
    """Grouped bars per layer: the original's count beside the pruned model's."""
    names = [plain(name) for name in layers]
    if not _layers_down(len(names)):
        figure = go.Figure(
            [
                go.Bar(x=names, y=list(before), name="original", marker_color=ORIGINAL_COLOR),
                go.Bar(x=names, y=list(after), name="pruned", marker_color=PARAMS_COLOR),
            ]
        )
        figure.update_traces(hovertemplate="%{x}<br>%{y:,} " + unit + "<extra>%{fullData.name}</extra>")
        figure.update_layout(barmode="group")
        figure.update_xaxes(title_text="layer", type="category", automargin=True)
        figure.update_yaxes(title_text=unit)
        return _legend_under_title(_finish(figure, f"{unit.capitalize()} per layer, before and after"))
    figure = go.Figure(
        [
            go.Bar(y=names, x=list(before), name="original", marker_color=ORIGINAL_COLOR, orientation="h"),
            go.Bar(y=names, x=list(after), name="pruned", marker_color=PARAMS_COLOR, orientation="h"),
        ]
    )
    figure.update_traces(hovertemplate="%{y}<br>%{x:,} " + unit + "<extra>%{fullData.name}</extra>")
    figure.update_layout(barmode="group")
    figure.update_yaxes(type="category", autorange="reversed", automargin=True)
    figure.update_xaxes(title_text=unit)
    figure = _legend_under_title(_finish(figure, f"{unit.capitalize()} per layer, before and after"))
    figure.update_layout(height=_rows_height_for(len(names)))
    return figure


def latency_samples(samples: pd.DataFrame) -> go.Figure:
    """Every timed block of each model as a box with its points: the spread, not only the median."""
    figure = go.Figure()
    for model, color in zip(samples["model"].unique(), (ORIGINAL_COLOR, PARAMS_COLOR, SPARSITY_COLOR), strict=False):
        times = samples.loc[samples["model"] == model, "ms"]
        figure.add_trace(
            go.Box(
                y=times,
                name=plain(str(model)),
                marker_color=color,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                hovertemplate="%{y:.3f} ms per call<extra>%{fullData.name}</extra>",
            )
        )
    figure.update_layout(showlegend=False)
    figure.update_yaxes(title_text="ms per forward pass", rangemode="tozero")
    return _finish(figure, "Latency of every timed block")


def confusion_difference(difference: np.ndarray, classes: Sequence[str]) -> go.Figure:
    """Pruned minus original confusion counts, red where the pruned model does worse, blue where better.

    On the diagonal (correct answers) a rise is better; off it (mistakes) a rise is worse,
    so the colour follows the harm while the numbers show the plain difference; the colour bar names
    the harm, not a sign (a −36 on the diagonal is red beside a bar that read "+20" before).
    """
    labels = [plain(str(name)) for name in classes]
    counts = difference.astype(int)
    harm = np.where(np.eye(len(counts), dtype=bool), -counts, counts)
    extent = max(int(np.abs(counts).max()), 1)
    figure = go.Figure(
        go.Heatmap(
            z=harm,
            x=labels,
            y=labels,
            zmin=-extent,
            zmax=extent,
            colorscale="RdBu_r",
            customdata=counts,
            text=[[f"{value:+d}" if value else "" for value in row] for row in counts],
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}<br>%{customdata:+d} examples<extra></extra>",
            colorbar={"tickvals": [-extent, 0, extent], "ticktext": ["better", "same", "worse"]},
        )
    )
    figure.update_xaxes(title_text="predicted class", type="category")
    figure.update_yaxes(title_text="true class", type="category", autorange="reversed")
    return _finish(figure, "Confusion matrix: pruned minus original")


def _legend_under_title(figure: go.Figure) -> go.Figure:
    """The legend on its own line between title and plot, so that neither covers the other in a narrow column."""
    figure.update_layout(
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0},
        margin={"t": 95},
    )
    return figure


RANK_COLORSCALE = "Viridis"
RANK_AXIS = "place in the model-wide ranking (%)"
VIOLIN_HALF_WIDTH = 0.42
"""Half the width of the widest part of each layer's violin, in layers (1 = the gap between two layers)."""
ROW_HEIGHT = 24
"""Pixels per layer in charts with one row per layer, so that deep models stay readable."""


def importance_distribution(
    layers: Sequence[str],
    densities: Sequence[tuple[np.ndarray, np.ndarray]],
    quartiles: np.ndarray,
    channels: Sequence[int],
    criterion: str,
) -> go.Figure:
    """One horizontal violin per layer, drawn from its smoothed density of model-wide ranks, with its median.

    `densities` holds per layer (where, density): places in the ranking (0 to 1) and the density
    there, peak 1; `quartiles` one row per layer (25th, 50th, 75th percentile of its ranks).
    Layers run down the chart in the heatmap's order, so that deep models keep readable names.
    """
    xs: list[float | None] = []
    ys: list[float | None] = []
    for position, (where, density) in enumerate(densities):
        heights = density * VIOLIN_HALF_WIDTH
        xs += [*np.round(where * 100, 2).tolist(), *np.round(where[::-1] * 100, 2).tolist(), None]
        ys += [*np.round(position + heights, 3).tolist(), *np.round(position - heights[::-1], 3).tolist(), None]
    names = [plain(name) for name in layers]
    positions = list(range(len(layers)))
    figure = go.Figure(
        [
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                fill="toself",
                line={"color": PARAMS_COLOR, "width": 1},
                fillcolor="rgba(37, 99, 235, 0.35)",
                hoverinfo="skip",
                name="share of the layer's channels",
            ),
            go.Scatter(
                x=quartiles[:, 1] * 100,
                y=positions,
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 16, "color": LOCKED_COLOR, "line": {"width": 3}},
                customdata=[
                    [name, int(count), *row]
                    for name, count, row in zip(names, channels, (quartiles * 100).tolist(), strict=True)
                ],
                hovertemplate=(
                    "%{customdata[0]}: %{customdata[1]} channels<br>median %{customdata[3]:.0f} %"
                    "<br>half of them between %{customdata[2]:.0f} % and %{customdata[4]:.0f} %<extra></extra>"
                ),
                name="median",
            ),
        ]
    )
    figure.update_yaxes(
        title_text="layer",
        tickmode="array",
        tickvals=positions,
        ticktext=names,
        range=[len(layers) - 0.5, -0.5],
        showgrid=False,
    )
    figure.update_xaxes(title_text=RANK_AXIS, range=[0, 100])
    figure.update_layout(showlegend=False)
    figure = _finish(figure, f"Where each layer's channels rank under {plain(criterion)}")
    figure.update_layout(height=_rows_height(len(layers)))
    return figure


def importance_heatmap(
    layers: Sequence[str], rows: np.ndarray, bounds: Sequence[Sequence[tuple[int, int]]], criterion: str
) -> go.Figure:
    """Layers × channels: each row a layer's channels sorted least important first, coloured by model-wide rank.

    Every row is resampled to the same number of columns (`bounds[i][j]` are the channels
    behind cell (i, j)), so column x % reads "the channel per-layer pruning at x % would reach".
    """
    width = rows.shape[1]
    names = [plain(name) for name in layers]
    hover = [
        [
            f"channel {start + 1} of {spans[-1][1]}"
            if stop == start + 1
            else f"channels {start + 1}–{stop} of {spans[-1][1]}"
            for start, stop in spans
        ]
        for spans in bounds
    ]
    figure = go.Figure(
        go.Heatmap(
            z=rows * 100,
            x=(np.arange(width) + 0.5) / width * 100,
            y=names,
            zmin=0,
            zmax=100,
            colorscale=RANK_COLORSCALE,
            customdata=hover,
            hovertemplate="%{y}<br>%{customdata}, least important first<br>model-wide rank %{z:.0f} %<extra></extra>",
            colorbar={"title": {"text": "rank (%)"}},
        )
    )
    figure.update_xaxes(title_text="the layer's channels, least important first (% of the layer)", range=[0, 100])
    figure.update_yaxes(title_text="layer", type="category", autorange="reversed")
    figure = _finish(figure, f"Every layer's channels, sorted, under {plain(criterion)}")
    figure.update_layout(height=_rows_height(len(layers)))
    return figure


def _rows_height(rows: int) -> int:
    """The height of a chart with one row per layer: at least the usual, and `ROW_HEIGHT` per layer."""
    return max(CHART_HEIGHT, 140 + ROW_HEIGHT * rows)


def criteria_scatter(
    places: tuple[np.ndarray, np.ndarray], scores: tuple[np.ndarray, np.ndarray], criteria: tuple[str, str], layer: str
) -> go.Figure:
    """One point per channel of one layer: its rank within the layer under each of two criteria.

    Points on the diagonal are channels both criteria rank alike; the lower-left corner holds
    the channels both would prune first.
    """
    first, second = (plain(criterion) for criterion in criteria)
    figure = go.Figure(
        go.Scatter(
            x=places[0] * 100,
            y=places[1] * 100,
            mode="markers",
            marker={"color": PARAMS_COLOR, "size": 7, "opacity": 0.7},
            customdata=np.column_stack([np.arange(len(places[0])), *scores]),
            hovertemplate=(
                f"channel %{{customdata[0]}}<br>{first}: %{{customdata[1]:.4g}} (rank %{{x:.0f}} %)"
                f"<br>{second}: %{{customdata[2]:.4g}} (rank %{{y:.0f}} %)<extra></extra>"
            ),
        )
    )
    figure.add_shape(type="line", x0=0, y0=0, x1=100, y1=100, line={"dash": "dash", "color": ORIGINAL_COLOR})
    figure.update_layout(showlegend=False)
    figure.update_xaxes(title_text=f"rank under {first} (%, 0 = least important)", range=[-3, 103])
    figure.update_yaxes(title_text=f"rank under {second} (%)", range=[-3, 103])
    return _finish(figure, f"Channels of {plain(layer)}, ranked by two criteria")


def criteria_grid(counts: np.ndarray, criteria: tuple[str, str], layer: str) -> go.Figure:
    """Channels of one large layer counted on a grid of their ranks under two criteria (rows: the second)."""
    first, second = (plain(criterion) for criterion in criteria)
    edges = np.linspace(0, 100, counts.shape[0] + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    figure = go.Figure(
        go.Heatmap(
            z=np.where(counts > 0, counts, np.nan),
            x=centers,
            y=centers,
            colorscale="Blues",
            hovertemplate=(
                f"rank under {first} ≈ %{{x:.0f}} %<br>rank under {second} ≈ %{{y:.0f}} %"
                "<br>%{z} channels<extra></extra>"
            ),
            colorbar={"title": {"text": "channels"}},
        )
    )
    figure.add_shape(type="line", x0=0, y0=0, x1=100, y1=100, line={"dash": "dash", "color": ORIGINAL_COLOR})
    figure.update_xaxes(title_text=f"rank under {first} (%, 0 = least important)", range=[0, 100])
    figure.update_yaxes(title_text=f"rank under {second} (%)", range=[0, 100])
    return _finish(figure, f"Channels of {plain(layer)}, ranked by two criteria")


SPIKE_FACTOR = 20
"""Histograms whose tallest bar is this many times their typical one (the zeros after heavy pruning) count on a
log scale, so the rest of the distribution stays visible beside the spike."""


def histograms_before_after(
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
    what: str,
    unit: str,
    change: str = "L1 training",
) -> go.Figure:
    """Two histograms from precomputed bins, overlaid: before and after `change` (sparsity training, pruning)."""
    figure = go.Figure()
    for (counts, edges), name, color in (
        (before, "before", ORIGINAL_COLOR),
        (after, f"after {change}", PARAMS_COLOR),
    ):
        figure.add_trace(
            go.Bar(
                x=(edges[:-1] + edges[1:]) / 2,
                y=counts,
                width=np.diff(edges),
                name=name,
                marker_color=color,
                opacity=0.6,
                hovertemplate="%{x:.4f}<br>%{y:,} " + unit + "<extra>%{fullData.name}</extra>",
            )
        )
    figure.update_layout(barmode="overlay", bargap=0)
    figure.update_xaxes(title_text=what)
    counts = np.concatenate([before[0], after[0]])
    spiked = counts.max() > SPIKE_FACTOR * max(float(np.median(counts[counts > 0])), 1.0)
    figure.update_yaxes(
        title_text=f"number of {unit}" + (" (log scale)" if spiked else ""), type="log" if spiked else "linear"
    )
    return _legend_under_title(_finish(figure, f"{what[:1].upper() + what[1:]} before and after {change}"))


SHARE_COLORS = {"parameters": PARAMS_COLOR, "FLOPs": "#a855f7", "latency": SPARSITY_COLOR}


def cost_shares(profile: pd.DataFrame) -> go.Figure:
    """Each layer's share of the parameters, the FLOPs and the measured time, side by side, one row per layer."""
    layers = profile[profile["kind"] != "other"]
    names = [plain(name) for name in profile["layer"]]
    shares = {
        "parameters": profile["params"].fillna(0) / max(float(layers["params"].sum()), 1.0),
        "FLOPs": profile["flops"].astype("float").fillna(0) / max(float(layers["flops"].astype("float").sum()), 1.0),
        "latency": profile["share"],
    }
    figure = go.Figure(
        [
            go.Bar(
                y=names,
                x=values * 100,
                name=name,
                orientation="h",
                marker_color=SHARE_COLORS[name],
                hovertemplate="%{y}<br>%{x:.1f} % of the " + name + "<extra></extra>",
            )
            for name, values in shares.items()
        ]
    )
    figure.update_layout(barmode="group", height=max(CHART_HEIGHT, 60 + 42 * len(names)))
    figure.update_yaxes(autorange="reversed", automargin=True)
    figure.update_xaxes(title_text="share of the model (%)")
    return _legend_under_title(_finish(figure, "Share of parameters, FLOPs and time per layer"))
