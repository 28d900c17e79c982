"""Drawing a model graph: overlays on collapsed blocks, colour scales, DOT that names survive, SVG."""

import re

import pandas as pd
import pytest

import prune_engine as pe
from sample_models import load_sample
from workbench import graph as drawing


@pytest.fixture(scope="module")
def graph() -> pe.ModelGraph:
    bundle = load_sample("digits_resnet")
    return pe.model_graph(bundle.model, bundle.example_input)


def test_a_collapsed_block_adds_counts_and_averages_shares(graph: pe.ModelGraph) -> None:
    collapsed = graph.collapsed()
    params = drawing.node_values(collapsed, drawing.params_overlay(graph))
    members = collapsed.node("layer2.0").members
    assert params["layer2.0"] == sum(graph.node(member).params for member in members if graph.node(member).params)
    table = pd.DataFrame({"layer": ["layer2.0.conv1", "layer2.0.conv2"], "assigned_ratio": [0.2, 0.4]})
    removed = drawing.node_values(collapsed, drawing.removed_overlay(table))
    assert removed == {"layer2.0": pytest.approx(0.3)}


def test_equal_values_draw_in_one_colour_and_shares_keep_their_fixed_scale() -> None:
    table = pd.DataFrame({"layer": ["a", "b"], "assigned_ratio": [0.3, 0.3 + 1e-12]})
    overlay = drawing.removed_overlay(table)
    scale = drawing.ColourScale.of(overlay, list(overlay.values.values()))
    assert (scale.low, scale.high) == (0.0, 1.0)
    assert scale.colour(0.3) == scale.colour(0.3 + 1e-12)
    flat = drawing.ColourScale.of(drawing.Overlay("x", "X", {"a": 5.0, "b": 5.0}), [5.0, 5.0])
    assert flat.stops() == [5.0]


def test_dot_outlines_the_group_and_colours_by_the_overlay(graph: pe.ModelGraph) -> None:
    group = graph.group_of("layer1.0.conv2")
    dot = drawing.to_dot(graph, drawing.params_overlay(graph), "layer1.0.conv2", group)
    outlined = set(re.findall(rf'^  "([^"]+)" \[.*color="{drawing.GROUP_COLOUR}"', dot, flags=re.MULTILINE))
    assert outlined == {"conv1", "layer1.0.conv2", "layer1.1.conv2"}
    assert 'label="Parameters (log scale)"' in dot
    assert dot.count(" -> ") == len(graph.edges) + 5  # the legend's swatches are chained invisibly


def test_names_with_quotes_and_backslashes_stay_one_dot_string() -> None:
    node = pe.GraphNode(id='odd"name\\x', kind="Linear", module='odd"name\\x', params=4, shape=(2, 2), prunable=True)
    dot = drawing.to_dot(pe.ModelGraph(nodes=(node,), edges=(), groups=()))
    assert '"odd\\"name\\\\x"' in dot


@pytest.mark.skipif(not drawing.svg_available(), reason="Graphviz's dot program is not installed")
def test_svg_is_drawn_by_graphviz(graph: pe.ModelGraph) -> None:
    svg = drawing.to_svg(drawing.to_dot(graph.collapsed()))
    assert svg.startswith(b"<?xml") and b"<title>layer2.0</title>" in svg
