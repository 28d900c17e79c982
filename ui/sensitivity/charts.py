"""Figures of the Sensitivity page: the scan heatmap and curves, schedules, accuracy per step,
histograms before and after sparsity training. Aggregated numbers only; layer names escaped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.shared.charts import (
    BLOCKED_COLOR,
    ORIGINAL_COLOR,
    PARAMS_COLOR,
    REMOVED_COLOR,
    _finish,
    _legend_under_title,
    plain,
)

ANNOTATE_MAX_CELLS = 200
"""Heatmaps with at most this many cells write each value in its cell."""
HEATMAP_ROW_PX = 28
METRIC_WORDS = {"accuracy": "accuracy", "agreement": "agreement with the original", "cosine": "output cosine"}


def metric_words(metric_name: str) -> str:
    """The scan's metric in words ("accuracy", "agreement with the original")."""
    return METRIC_WORDS.get(metric_name, metric_name)


def drop_heatmap(scan: pd.DataFrame) -> go.Figure:
    """Layers × ratios, coloured by the metric drop (in points) when that layer alone is pruned."""
    layers = list(dict.fromkeys(scan["layer"]))
    ratios = sorted(scan["ratio"].unique())
    drops = scan.pivot_table(index="layer", columns="ratio", values="drop", aggfunc="first", dropna=False)
    drops = drops.reindex(index=layers, columns=ratios) * 100
    notes = scan.pivot_table(index="layer", columns="ratio", values="note", aggfunc="first").reindex(
        index=layers, columns=ratios
    )
    names = [plain(name) for name in layers]
    columns = [f"{ratio:.0%}" for ratio in ratios]
    cells = drops.to_numpy(dtype=float)
    hover_notes = [
        [plain(str(note)) if isinstance(note, str) and note else "" for note in row] for row in notes.to_numpy()
    ]
    figure = go.Figure(
        go.Heatmap(
            z=cells,
            x=columns,
            y=names,
            zmin=0,
            zmax=max(float(np.nanmax(cells)) if np.isfinite(cells).any() else 0.0, 1.0),
            colorscale="Reds",
            customdata=hover_notes,
            text=[["" if np.isnan(value) else f"{value:.1f}" for value in row] for row in cells],
            texttemplate="%{text}" if cells.size <= ANNOTATE_MAX_CELLS else None,
            hovertemplate="%{y} pruned by %{x}<br>drop %{z:.2f} points<br>%{customdata}<extra></extra>",
            colorbar={"title": {"text": "drop (points)"}},
        )
    )
    figure.update_xaxes(title_text="share of the layer removed", type="category")
    figure.update_yaxes(title_text="layer", type="category", autorange="reversed")
    metric = metric_words(str(scan["metric_name"].iloc[0]))
    figure = _finish(figure, f"Drop in {metric} when one layer is pruned alone")
    figure.update_layout(height=max(figure.layout.height, 120 + HEATMAP_ROW_PX * len(layers)))
    return figure


def layer_curves(scan: pd.DataFrame) -> go.Figure:
    """One line per layer: the metric against the share of that layer removed, with the unpruned baseline."""
    metric_name = str(scan["metric_name"].iloc[0])
    baseline = float(scan["baseline"].iloc[0]) * 100
    figure = go.Figure()
    for layer, rows in scan.groupby("layer", sort=False):
        rows = rows.sort_values("ratio")
        figure.add_trace(
            go.Scatter(
                x=[0.0, *(rows["ratio"] * 100)],
                y=[baseline, *(rows["metric"] * 100)],
                mode="lines+markers",
                name=plain(str(layer)),
                hovertemplate="%{x:.0f} % removed<br>%{y:.1f} %<extra>%{fullData.name}</extra>",
            )
        )
    figure.add_hline(y=baseline, line_dash="dash", line_color=ORIGINAL_COLOR, annotation_text="unpruned")
    figure.update_xaxes(title_text="share of the layer removed (%)", range=[0, 100])
    figure.update_yaxes(title_text=f"{metric_words(metric_name)} (%)")
    figure = _finish(figure, f"{metric_words(metric_name).capitalize()} with one layer pruned")
    return _legend_beside(figure, scan["layer"].nunique())


LEGEND_ROW_PX = 20
"""Pixels per entry of a legend that lists one layer per line."""


def _legend_beside(figure: go.Figure, entries: int) -> go.Figure:
    """One legend entry per line, right of the plot: a legend above the plot wraps into as many lines as the
    layers need and, with many layers, runs over the title. The chart grows to fit the entries."""
    figure.update_layout(
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.02},
        height=max(figure.layout.height, 120 + LEGEND_ROW_PX * entries),
    )
    return figure


def schedule_steps(fractions: Sequence[float], schedule: str) -> go.Figure:
    """The share of the plan reached after each step of a schedule."""
    steps = list(range(len(fractions) + 1))
    figure = go.Figure(
        go.Scatter(
            x=steps,
            y=[0.0, *(fraction * 100 for fraction in fractions)],
            mode="lines+markers",
            line={"color": PARAMS_COLOR},
            hovertemplate="after step %{x}: %{y:.0f} % of the plan<extra></extra>",
        )
    )
    figure.update_xaxes(title_text="step", dtick=1)
    figure.update_yaxes(title_text="share of the plan reached (%)", range=[0, 105])
    figure.update_layout(showlegend=False)
    figure = _finish(figure, f"How the {plain(schedule)} schedule reaches the plan")
    figure.update_layout(height=260)
    return figure


STEP_METRICS = {
    "accuracy": ("accuracy (%)", 100.0),
    "perplexity": ("perplexity (lower is better)", 1.0),
    "retrieval_agreement": ("same nearest neighbour as the original (%)", 100.0),
    "agreement": ("same prediction as the original (%)", 100.0),
    "cosine": ("output cosine with the original", 1.0),
}
"""History metric → axis title and the scale it is shown at."""


def metric_per_step(history: pd.DataFrame, recovery: str = "fine-tuning") -> go.Figure:
    """The history's metric after each step's pruning and after its recovery, joined by the path the model took:
    down at each cut, back up with each recovery (step 0: the original)."""
    metric = str(history["metric"].iloc[0])
    title, scale = STEP_METRICS.get(metric, (metric, 1.0))
    steps = history[history["step"] > 0]
    path_x = [0, *np.repeat(steps["step"].to_numpy(), 2).tolist()]
    path_y = [history["value"].iloc[0], *np.column_stack([steps["pruned_value"], steps["value"]]).ravel()]
    figure = go.Figure(
        [
            go.Scatter(
                x=path_x,
                y=np.asarray(path_y) * scale,
                mode="lines",
                line={"color": BLOCKED_COLOR, "width": 1.5},
                hoverinfo="skip",
                showlegend=False,
            ),
            *(
                go.Scatter(x=x, y=y, name=name, mode="markers", marker={"color": color, "size": 10})
                for x, y, name, color in (
                    ([0], [history["value"].iloc[0] * scale], "original", ORIGINAL_COLOR),
                    (steps["step"], steps["pruned_value"] * scale, "after pruning", REMOVED_COLOR),
                    (steps["step"], steps["value"] * scale, f"after {recovery}", PARAMS_COLOR),
                )
            ),
        ]
    )
    figure.update_traces(
        hovertemplate="step %{x}<br>%{y:.3g}<extra>%{fullData.name}</extra>", selector={"mode": "markers"}
    )
    figure.update_xaxes(title_text="step (0 = the original)", dtick=1)
    figure.update_yaxes(title_text=title)
    return _legend_under_title(_finish(figure, f"{title[:1].upper() + title[1:].split(' (')[0]} at each step"))


def pruned_accuracy_bars(table: pd.DataFrame) -> go.Figure:
    """Accuracy of each training before and after the same pruning, side by side."""
    trainings = [plain(str(name)) for name in table["training"]]
    figure = go.Figure(
        [
            go.Bar(x=trainings, y=table["trained_accuracy"] * 100, name="before pruning", marker_color=ORIGINAL_COLOR),
            go.Bar(x=trainings, y=table["pruned_accuracy"] * 100, name="after pruning", marker_color=PARAMS_COLOR),
        ]
    )
    figure.update_traces(hovertemplate="%{x}<br>%{y:.1f} %<extra>%{fullData.name}</extra>")
    figure.update_layout(barmode="group")
    figure.update_yaxes(title_text="accuracy (%)", range=[0, 100])
    return _legend_under_title(_finish(figure, "Accuracy with and without L1 training, pruned alike"))


def method_curves(table: pd.DataFrame, label: str, share: bool, lower_is_better: bool, title: str) -> go.Figure:
    """One line per method (and recovery, dashed) of the mean `table["mean"]` against the share removed, each with
    a band from `low` to `high`; shares in percent, a lower-is-better figure on a reversed axis."""
    scale = 100 if share else 1
    figure = go.Figure()
    for (method, recovered), rows in table.groupby(["method", "recovered"], sort=False):
        rows = rows.sort_values("ratio")
        name = f"{method}{' + recovery' if recovered else ''}"
        removed = rows["ratio"] * 100
        figure.add_trace(
            go.Scatter(
                x=[*removed, *removed[::-1]],
                y=[*(rows["high"] * scale), *(rows["low"][::-1] * scale)],
                fill="toself",
                opacity=0.2,
                line={"width": 0},
                name=name,
                showlegend=False,
                legendgroup=name,
                hoverinfo="skip",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=removed, y=rows["mean"] * scale, mode="lines+markers", name=name, legendgroup=name,
                line={"dash": "dash" if recovered else "solid"},
                hovertemplate=f"{plain(name)}<br>%{{x:.0f}} % removed<br>%{{y:.{1 if share else 2}f}}"
                + (" %" if share else "") + "<extra></extra>",
            )
        )  # fmt: skip
    figure.update_xaxes(title_text="share removed (%)", ticksuffix=" %")
    figure.update_yaxes(
        title_text=label + (" (%)" if share else " (lower is better)" if lower_is_better else ""),
        autorange="reversed" if lower_is_better else True,
    )
    return _legend_under_title(_finish(figure, title))
