"""Per-layer charts stay readable however many layers a model has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ui.sensitivity.methods import curves, table_view
from ui.sensitivity.training import history_columns, history_table
from ui.shared import charts
from workbench import quality


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


def _summary(metric: str, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["Magnitude", "Magnitude"],
            "ratio": [0.3, 0.5],
            "recovered": [False, False],
            "metric": [metric, metric],
            "mean": values,
            "low": [value * 0.99 for value in values],
            "high": [value * 1.01 for value in values],
            "runs": [3, 3],
        }
    )


def test_the_methods_chart_draws_shares_in_percent_against_the_share_removed() -> None:
    table = _summary("accuracy", [0.97, 0.9])
    figure = curves(table)
    line = figure.data[1]
    assert list(line.x) == [30.0, 50.0]
    assert list(line.y) == [97.0, 90.0]
    assert figure.layout.title.text.startswith("Accuracy by method and share removed")
    assert figure.layout.yaxis.title.text == "accuracy (%)"
    assert table_view(table)["mean"].tolist() == [97.0, 90.0]


def test_the_methods_chart_draws_perplexity_on_a_reversed_axis() -> None:
    figure = curves(_summary("perplexity", [7.0, 9.5]))
    assert list(figure.data[1].y) == [7.0, 9.5]
    assert figure.layout.yaxis.autorange == "reversed"
    assert figure.layout.yaxis.title.text == "perplexity (lower is better)"


def test_the_prune_in_steps_table_names_and_formats_the_models_own_figure() -> None:
    accuracy = history_columns(quality.named("accuracy"))
    assert accuracy["value"]["label"] == "Accuracy after recovery"
    assert accuracy["value"]["type_config"]["format"] == "%.1f %%"
    perplexity = history_columns(quality.named("perplexity"))
    assert perplexity["pruned_value"]["label"] == "Perplexity after pruning"
    assert perplexity["pruned_value"]["type_config"]["format"] == "%.2f"
    history = pd.DataFrame(
        {"step": [0, 1], "ratio_fraction": [0.0, 0.7037], "metric": ["accuracy"] * 2, "pruned_value": [0.9972, 0.9694],
         "value": [0.9972, 0.9972], "params": [58474, 24923], "nonzero": [58474, 24923]}
    )  # fmt: skip
    shown = history_table(history, quality.named("accuracy"))
    assert shown["ratio_fraction"].tolist() == pytest.approx([0.0, 70.37])
    assert shown["pruned_value"].tolist() == pytest.approx([99.72, 96.94])
    assert history["ratio_fraction"].tolist() == [0.0, 0.7037], "the outcome's own table is left as it was"


def test_the_confusion_difference_colours_harm_and_its_bar_says_so_without_signs() -> None:
    difference = np.array([[-36, 30, 6], [0, 2, -2], [0, 0, 0]])
    figure = charts.confusion_difference(difference, ["0", "1", "2"])
    heatmap = figure.data[0]
    assert heatmap.z[0][0] == 36 and heatmap.z[0][1] == 30 and heatmap.z[1][1] == -2, "fewer right, more wrong: harm"
    assert heatmap.text[0][0] == "-36" and heatmap.text[1][1] == "+2", "the cells show the plain difference"
    assert list(heatmap.colorbar.ticktext) == ["better", "same", "worse"]
    assert list(heatmap.colorbar.tickvals) == [-36, 0, 36]
