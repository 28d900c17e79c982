"""Graph view speed: tracing a model's graph, collapsing its repeated blocks and drawing it.

Target (issue 19): minilm and gpt2_shaped draw collapsed in ≤ 3 s. Measured per model: tracing
(`pe.model_graph`, what the app caches per model), collapsing and writing DOT (every rerun), and
Graphviz's own layout of that DOT (`dot -Tsvg`, the layout engine the browser runs as WebAssembly).
Run: `python -m bench.graph`.
"""

from __future__ import annotations

import argparse

import prune_engine as pe
from bench.common import print_table, stopwatch
from sample_models import load_sample
from workbench import graph as drawing

MODELS = ("digits_resnet", "minilm", "gpt2_shaped")


def measure(name: str) -> dict[str, object]:
    bundle = load_sample(name)
    with stopwatch() as elapsed:
        graph = pe.model_graph(bundle.model, bundle.example_input)
    trace_s = elapsed()
    with stopwatch() as elapsed:
        collapsed = graph.collapsed()
        dot = drawing.to_dot(collapsed, drawing.params_overlay(graph))
    draw_s = elapsed()
    row: dict[str, object] = {
        "model": name,
        "nodes": len(graph.nodes),
        "collapsed nodes": len(collapsed.nodes),
        "trace s": trace_s,
        "collapse + DOT s": draw_s,
    }
    if drawing.svg_available():
        with stopwatch() as elapsed:
            drawing.to_svg(dot)
        row["Graphviz layout s"] = elapsed()
    row["total s"] = sum(value for key, value in row.items() if key.endswith(" s"))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=MODELS)
    print_table("Graph view: trace, collapse and draw", [measure(name) for name in parser.parse_args().models])


if __name__ == "__main__":
    main()
