"""A model graph drawn as DOT: one overlay coloured on the nodes with its legend, and the picked channel group.

Streamlit renders DOT in the browser (`st.graphviz_chart`, Graphviz compiled to WebAssembly), so
the page needs no system package. The SVG download runs Graphviz's `dot` program on the server:
the same layout engine as the page, so the file matches what is on screen. `make run` and
`make test` install Debian's `graphviz` where they may; without it the DOT download still works.

Overlays are per-layer values (module path → number). A collapsed block shows the sum of its
members' values for counts (parameters, FLOPs, time) and their mean for shares and scores.
"""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from plotly.colors import sample_colorscale

import prune_engine as pe
from prune_engine.latency import OTHER
from workbench import fmt

COLOUR_SCALE = "YlOrRd"
"""Light (low) to dark red (high): the text stays readable on the light end, the dark end stands out."""
GROUP_COLOUR = "#1f6feb"
"""Border of the picked node's channel group: a blue that no overlay colour is."""
NO_VALUE_COLOUR = "#ffffff"
LEGEND_STOPS = 5
SVG_TIMEOUT_S = 60
JOIN_LABELS = {"add": "+", "concat": "concat", "multiply": "×", "divide": "÷", "attention": "attention"}


@dataclass(frozen=True)
class Overlay:
    """Values to colour the nodes by: `values` maps a module path to a number.

    `log`: colour by the logarithm (counts that span orders of magnitude); `total`: a collapsed
    block adds its members' values (else averages them); `show` writes a value for people;
    `floor`/`ceiling`: fixed ends of the colour scale (shares run from 0 to 1), else the values' range.
    """

    name: str
    title: str
    values: Mapping[str, float]
    show: fmt.Formatter = fmt.count
    log: bool = False
    total: bool = True
    note: str = ""
    floor: float | None = None
    ceiling: float | None = None


def params_overlay(graph: pe.ModelGraph) -> Overlay:
    """Parameters each module holds."""
    values = {node.id: float(node.params) for node in graph.nodes if not node.is_join and node.params}
    return Overlay("params", "Parameters", values, log=True)


def flops_overlay(graph: pe.ModelGraph) -> Overlay:
    """FLOPs of each module on one forward pass of the example input."""
    values = {node.id: float(node.flops) for node in graph.nodes if node.flops}
    note = "" if values else "This model's operations could not be counted."
    return Overlay("flops", "FLOPs per forward pass", values, log=True, note=note)


def latency_overlay(profile: pd.DataFrame) -> Overlay:
    """Each prunable layer's share of a forward pass's time, from `prune_engine.latency_profile`."""
    layers = profile[profile["layer"] != OTHER]
    other = profile.loc[profile["layer"] == OTHER, "share"]
    note = f"Everything else (normalisation, activations, additions): {fmt.percent(other.sum())} of the time."
    values = dict(zip(layers["layer"], layers["share"].astype(float), strict=True))
    return Overlay("latency", "Share of measured time", values, show=fmt.percent, note=note, floor=0.0)


def importance_overlay(scores: Mapping[str, object], criterion: str) -> Overlay:
    """Each layer's mean channel score under `criterion`, relative to the highest layer's mean (1)."""
    means = {layer: float(np.asarray(value, dtype=float).mean()) for layer, value in scores.items()}
    top = max((abs(mean) for mean in means.values()), default=0.0) or 1.0
    values = {layer: mean / top for layer, mean in means.items()}
    note = f"Mean channel score under {criterion}, divided by the highest layer's mean."
    return Overlay("importance", "Relative importance", values, show=lambda v: fmt.MISSING if v is None else f"{v:.2f}",
                   total=False, note=note)  # fmt: skip


def sensitivity_overlay(scan: pd.DataFrame, ratio: float) -> Overlay:
    """The metric's drop when each layer alone is pruned by `ratio`, from a sensitivity scan."""
    rows = scan[np.isclose(scan["ratio"].astype(float), ratio)]
    values = dict(zip(rows["layer"], rows["drop"].astype(float), strict=True))
    name = rows["metric_name"].iloc[0] if len(rows) and "metric_name" in rows else "metric"
    note = f"Drop in {name} when the layer alone loses {fmt.percent(ratio, 0)} (from the last sensitivity scan)."
    return Overlay("sensitivity", f"Drop at {fmt.percent(ratio, 0)}", values, show=fmt.points, total=False, note=note,
                   floor=0.0)  # fmt: skip


def removed_overlay(table: pd.DataFrame) -> Overlay:
    """Share of each layer the current plan removes: from a pruning report (non-zero weights lost) when there
    is one, else from a plan preview (the ratio each layer is assigned)."""
    if "nonzero_before" in table:
        before = table["nonzero_before"].astype(float).clip(lower=1)
        shares = 1.0 - table["nonzero_after"].astype(float) / before
        note = "Share of each layer's weights the pruned model no longer has."
    else:
        shares = table["assigned_ratio"].astype(float)
        note = "Share of each layer the plan would remove (channels or weights, as the granularity says)."
    return Overlay("removed", "Removed by the plan", dict(zip(table["layer"], shares, strict=True)),
                   show=fmt.percent, total=False, note=note, floor=0.0, ceiling=1.0)  # fmt: skip


def node_values(graph: pe.ModelGraph, overlay: Overlay) -> dict[str, float]:
    """The overlay's value of every node that has one (a collapsed block: its members' sum or mean)."""
    found = {}
    for node in graph.nodes:
        if node.is_block:
            members = [overlay.values[member] for member in node.members if member in overlay.values]
            if members:
                found[node.id] = float(sum(members) if overlay.total else np.mean(members))
        elif node.id in overlay.values:
            found[node.id] = float(overlay.values[node.id])
    return found


@dataclass(frozen=True)
class ColourScale:
    """Values from `low` to `high` (on a log scale when `log`) mapped onto `COLOUR_SCALE`."""

    low: float
    high: float
    log: bool = False

    @classmethod
    def of(cls, overlay: Overlay, values: list[float]) -> ColourScale:
        """The scale for `values` under `overlay`'s fixed ends, if any; equal values give a one-colour scale."""
        usable = [value for value in values if value > 0] if overlay.log else values
        if not usable:
            return cls(0.0, 1.0, False)
        low = min(usable) if overlay.floor is None else overlay.floor
        high = max(usable) if overlay.ceiling is None else overlay.ceiling
        if math.isclose(low, high, rel_tol=1e-6, abs_tol=1e-12):
            return cls(high, high, overlay.log)
        return cls(low, max(high, low), overlay.log)

    def position(self, value: float) -> float:
        """Where `value` sits on the scale, from 0 to 1."""
        if self.log:
            low, high, value = math.log10(self.low), math.log10(self.high), math.log10(max(value, self.low))
        else:
            low, high = self.low, self.high
        return 0.5 if high == low else min(max((value - low) / (high - low), 0.0), 1.0)

    def colour(self, value: float) -> str:
        red, green, blue = _rgb(sample_colorscale(COLOUR_SCALE, [self.position(value)])[0])
        return f"#{red:02x}{green:02x}{blue:02x}"

    def stops(self, count: int = LEGEND_STOPS) -> list[float]:
        """`count` values evenly spread over the scale, for the legend (one when the scale has one colour)."""
        if self.low == self.high:
            return [self.high]
        if self.log:
            return [10**value for value in np.linspace(math.log10(self.low), math.log10(self.high), count)]
        return list(np.linspace(self.low, self.high, count))


def text_colour(fill: str) -> str:
    """Black or white, whichever reads better on `fill` (by its relative luminance)."""
    red, green, blue = (int(fill[index : index + 2], 16) / 255 for index in (1, 3, 5))
    return "#000000" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.45 else "#ffffff"


def to_dot(
    graph: pe.ModelGraph,
    overlay: Overlay | None = None,
    picked: str | None = None,
    group: pe.CoupledGroup | None = None,
) -> str:
    """DOT text of `graph`, top to bottom in data-flow order: nodes coloured by `overlay` with a legend,
    the node showing `picked` drawn bold, and every node holding a layer of `group` outlined in blue."""
    values = node_values(graph, overlay) if overlay is not None else {}
    scale = ColourScale.of(overlay, list(values.values())) if overlay is not None else None
    marked = {graph.node_of(layer) for layer in group.layers} if group is not None else set()
    picked_node = graph.node_of(picked) if picked is not None else None
    lines = [
        "digraph model {",
        '  graph [rankdir=TB, nodesep=0.25, ranksep=0.3, fontname="Helvetica", bgcolor="white"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, height=0.3, margin="0.1,0.04"];',
        '  edge [color="#666666", arrowsize=0.6];',
    ]
    if overlay is not None and scale is not None:
        lines += _legend(overlay, scale)
    for node in graph.nodes:
        attributes = _attributes(node, values, scale, overlay, node.id in marked, node.id == picked_node)
        lines.append(f"  {_quote(node.id)} [{attributes}];")
    lines += [f"  {_quote(source)} -> {_quote(target)};" for source, target in graph.edges]
    lines.append("}")
    return "\n".join(lines)


def _attributes(
    node: pe.GraphNode,
    values: dict[str, float],
    scale: ColourScale | None,
    overlay: Overlay | None,
    marked: bool,
    picked: bool,
) -> str:
    value = values.get(node.id)
    fill = scale.colour(value) if scale is not None and value is not None else NO_VALUE_COLOUR
    if node.is_join:
        label = JOIN_LABELS.get(node.kind, node.kind)
        attributes = {"shape": "circle" if len(label) == 1 else "ellipse", "style": "filled", "fontsize": "12"}
    else:
        label = f"{node.id}\n{_describe(node)}"
        if overlay is not None:
            label += f"\n{overlay.show(value)}"
        attributes = {"style": '"rounded,filled,bold"' if node.prunable else '"rounded,filled"'}
        if node.is_block:
            attributes["peripheries"] = "2"
    attributes |= {
        "label": _quote(label),
        "fillcolor": _quote(fill),
        "fontcolor": _quote(text_colour(fill)),
        "color": _quote(GROUP_COLOUR if marked else ("#333333" if node.prunable else "#9a9a9a")),
        "penwidth": "5" if picked else "3" if marked else "1.4" if node.prunable else "1",
        "tooltip": _quote(f"{node.id} ({node.kind}): {node.params:,} parameters"),
    }
    return ", ".join(f"{key}={value}" for key, value in attributes.items())


def _describe(node: pe.GraphNode) -> str:
    """What kind of module a node is, with its channel counts: "Conv2d 1→64, 3×3", "Linear 384→1536"."""
    if node.is_block:
        layers = len(node.members)
        return f"{node.kind} ({layers} nodes, {fmt.count(node.params)} params)"
    if len(node.shape) >= 2:
        kernel = "×".join(str(size) for size in node.shape[2:])
        return f"{node.kind} {node.shape[1]}→{node.shape[0]}" + (f", {kernel}" if kernel else "")
    if len(node.shape) == 1:
        return f"{node.kind} {node.shape[0]}"
    return node.kind


def _legend(overlay: Overlay, scale: ColourScale) -> list[str]:
    """A row of swatches from low to high above the graph, titled by the overlay, and a 'no value' swatch."""
    title = overlay.title + (" (log scale)" if overlay.log else "")
    lines = ["  subgraph cluster_legend {", f'    label={_quote(title)}; fontsize=11; color="#cccccc";']
    names = []
    for index, value in enumerate(scale.stops()):
        fill = scale.colour(value)
        name = f"legend {index}"
        names.append(name)
        lines.append(
            f"    {_quote(name)} [label={_quote(overlay.show(value))}, fillcolor={_quote(fill)}, "
            f'fontcolor={_quote(text_colour(fill))}, color="#999999", shape=box, style=filled, width=0.9];'
        )
    names.append("legend none")
    lines.append(f'    {_quote("legend none")} [label="no value", fillcolor="{NO_VALUE_COLOUR}", color="#999999", '
                 'style="filled,dashed", shape=box, width=0.9];')  # fmt: skip
    lines.append("    { rank=same; " + " ".join(_quote(name) for name in names) + " }")
    lines += [f"    {_quote(a)} -> {_quote(b)} [style=invis];" for a, b in itertools.pairwise(names)]
    lines.append("  }")
    return lines


def _quote(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, line breaks as DOT's centred line break."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _rgb(colour: str) -> tuple[int, int, int]:
    """(red, green, blue) of plotly's 'rgb(r, g, b)'."""
    red, green, blue = (round(float(part)) for part in colour[colour.index("(") + 1 : -1].split(","))
    return red, green, blue


class SvgUnavailable(pe.PruneScopeError):
    """Graphviz's `dot` program is not installed, or it could not draw the graph."""


def svg_available() -> bool:
    """Whether this server can draw SVG (Graphviz's `dot` program is installed)."""
    return shutil.which("dot") is not None


def to_svg(dot: str) -> bytes:
    """The graph drawn as SVG by Graphviz's `dot` program, the layout the page shows."""
    program = shutil.which("dot")
    if program is None:
        raise SvgUnavailable(
            "Drawing SVG needs Graphviz's `dot` program, which this server lacks (install the Debian package "
            "graphviz, as `make run` does). The DOT file opens in any Graphviz viewer meanwhile."
        )
    try:
        drawn = subprocess.run(
            [program, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=SVG_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise SvgUnavailable(
            f"Graphviz took over {SVG_TIMEOUT_S} s to draw this graph; download the DOT file."
        ) from error
    if drawn.returncode != 0:
        raise SvgUnavailable(f"Graphviz could not draw this graph: {drawn.stderr.decode(errors='replace').strip()}")
    return drawn.stdout
