"""Per-layer charts stay readable however many layers a model has."""

from __future__ import annotations

import pandas as pd

from ui.shared import charts


def test_a_deep_models_layer_chart_lists_the_layers_down_the_side_one_row_each() -> None:
    layers = [
        f"encoder.layer.{block}.attention.self.{name}" for block in range(6) for name in ("query", "key", "value")
    ]
    layers += [f"encoder.layer.{block}.output.dense" for block in range(6)]
    layers += [f"encoder.layer.{block}.intermediate.dense" for block in range(6)]
    layers += [f"encoder.layer.{block}.attention.output.dense" for block in range(6)]
    figure = charts.layer_before_after(layers, [100] * 36, [50] * 36, "parameters")
    assert all(trace.orientation == "h" for trace in figure.data)
    assert list(figure.data[0].y) == layers, "every name whole, query/key/value told apart"
    assert figure.layout.height >= 36 * charts.ROW_PX


def test_a_few_layers_stay_across_the_bottom() -> None:
    figure = charts.layer_before_after(["fc1", "fc2", "fc3"], [1, 2, 3], [1, 1, 1], "parameters")
    assert all(trace.orientation in (None, "v") for trace in figure.data)
    assert figure.layout.height == charts.CHART_HEIGHT


def test_the_half_width_preview_turns_sideways_sooner() -> None:
    names = [f"layer{index}.conv" for index in range(11)]
    table = pd.DataFrame({"layer": names, "ratio": 0.3, "status": "follows the global slider", "note": ""})
    figure = charts.plan_ratios(table, "channels")
    assert figure["data"][0]["orientation"] == "h"
    assert figure["data"][0]["y"] == names
