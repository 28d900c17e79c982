"""The Inspect page's Importance tab under AppTest: criterion picker, model-wide views, agreement of two criteria."""

import base64
from dataclasses import replace

import numpy as np
import torch
from scipy.stats import spearmanr
from streamlit.testing.v1 import AppTest
from torch import nn

import prune_engine as pe
from sample_models import load_sample
from tests.app.helpers import INSPECT_PAGE, chart_spec, chart_titles, metrics
from ui.shared import keys
from ui.shared.keys import CURRENT_MODEL
from workbench.session import LoadedModel

FEW_EXAMPLES = 32
"""Data-driven criteria look at this many examples here, to keep the Captum runs short."""


def open_importance(app: AppTest, sample: str | None = None) -> AppTest:
    """The Inspect page on its Importance tab, data criteria limited to a few examples."""
    if sample is not None:
        app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select(sample).run()
    at = app.switch_page(INSPECT_PAGE)
    at.session_state[keys.INSPECT_VIEW] = "Importance"
    at.session_state[keys.INSPECT_EXAMPLES] = FEW_EXAMPLES
    return at.run()


def score(at: AppTest, button: str = keys.INSPECT_SCORE) -> AppTest:
    """Press the button that scores a data criterion (picking one only shows its estimated time)."""
    return at.button(key=button).click().run()


def heatmap(at: AppTest) -> dict:
    return chart_spec(at, "Every layer's channels, sorted")["data"][0]


def array(value: list | dict) -> np.ndarray:
    """A plotly data array as numpy: plotly sends numpy arrays as base64 (`bdata`), lists as they are."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(size) for size in shape.split(",")]) if shape else flat
    return np.asarray(value)


def test_the_criterion_picker_changes_the_distribution_and_the_heatmap(app: AppTest) -> None:
    at = open_importance(app, "digits_resnet")
    assert not at.exception
    layers = [layer.name for layer in pe.prunable_layers(load_sample("digits_resnet").model)]
    before = heatmap(at)
    assert before["y"] == layers
    rows = array(before["z"])
    assert rows.shape == (len(layers), 64)
    assert (np.diff(rows, axis=1) >= 0).all(), "each layer's channels are sorted, least important first"
    assert rows.min() >= 0 and rows.max() <= 100
    assert "Magnitude (L1)" in chart_spec(at, "Where each layer's channels rank")["layout"]["title"]["text"]

    at.selectbox(key=keys.INSPECT_CRITERION).select("random").run()
    assert not at.exception
    after = heatmap(at)
    assert not np.array_equal(array(after["z"]), rows)
    assert chart_spec(at, "Where each layer's channels rank")["layout"]["title"]["text"].endswith("Random (baseline)")

    at.selectbox(key=keys.INSPECT_BLOCK).select("layer1").run()
    assert heatmap(at)["y"] == ["layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"]
    violins = chart_spec(at, "Where each layer's channels rank")["layout"]["yaxis"]["ticktext"]
    assert violins == heatmap(at)["y"]


def test_the_correlation_shown_is_spearmans_rho_of_the_two_criteria(app: AppTest) -> None:
    at = open_importance(app, "digits_cnn")
    score(at.selectbox(key=keys.INSPECT_CRITERION).select("grad_x_activation").run())
    at.selectbox(key=keys.INSPECT_COMPARE_LAYER).select("conv2").run()
    at.selectbox(key=keys.INSPECT_COMPARE_WITH).select("l1").run()
    assert not at.exception

    bundle = load_sample("digits_cnn")
    attribution = pe.importance(bundle.model, "grad_x_activation", bundle.eval_data, max_examples=FEW_EXAMPLES)
    magnitude = pe.importance(bundle.model, "l1")
    rho = spearmanr(magnitude["conv2"].numpy(), attribution["conv2"].numpy()).statistic
    assert metrics(at)["Spearman rank correlation"] == f"{rho:+.2f}"
    scatter = chart_spec(at, "Channels of conv2")
    assert scatter["layout"]["xaxis"]["title"]["text"].startswith("rank under Magnitude (L1)")
    assert scatter["layout"]["yaxis"]["title"]["text"].startswith("rank under Gradient × activation (Captum)")
    assert len(array(scatter["data"][0]["x"])) == 64
    sentence = at.main.markdown[-1].value
    assert f"ρ = {rho:+.2f}" in sentence
    assert "how large a channel's weights are tells" in sentence


def test_a_data_criterion_scores_every_layer_of_digits_cnn_with_progress(app: AppTest) -> None:
    at = open_importance(app, "digits_cnn")
    at.selectbox(key=keys.INSPECT_CRITERION).select("activation").run()
    assert not at.exception
    assert not at.status, "picking a data criterion does not start it"
    assert f"Activation size runs the model on {FEW_EXAMPLES} examples: " in " ".join(c.value for c in at.caption)
    score(at)
    assert [status.state for status in at.status] == ["complete"]
    assert at.status[0].label.startswith(f"Scored with Activation size on {FEW_EXAMPLES} examples in ")
    assert heatmap(at)["y"] == ["conv1", "conv2", "conv3", "fc"]
    assert not at.warning
    at.selectbox(key=keys.INSPECT_COMPARE_LAYER).select("conv3").run()
    assert not at.status, "scores already computed are kept, not computed again"
    assert "Channels of conv3" in " ".join(chart_titles(at))


def test_bn_scale_on_digits_mlp_says_why_instead_of_failing(app: AppTest) -> None:
    at = open_importance(app)
    at.selectbox(key=keys.INSPECT_CRITERION).select("bn_scale").run()
    assert not at.exception
    assert len(at.warning) == 1
    assert "BatchNorm" in at.warning[0].value
    assert chart_titles(at) == ["Parameters and sparsity per layer"]


def test_bn_scale_names_the_layer_it_cannot_score_on_digits_cnn(app: AppTest) -> None:
    at = open_importance(app, "digits_cnn")
    at.selectbox(key=keys.INSPECT_CRITERION).select("bn_scale").run()
    at.selectbox(key=keys.INSPECT_COMPARE_LAYER).select("fc").run()
    assert not at.exception
    assert heatmap(at)["y"] == ["conv1", "conv2", "conv3"]
    notes = " ".join(info.value for info in at.info)
    assert "No BatchNorm scale (network slimming) score for fc: bn\\_scale needs a BatchNorm" in notes
    assert "gives no score for fc, so there is nothing to compare" in notes


def test_a_model_without_data_points_to_the_model_page_for_data_criteria(app: AppTest) -> None:
    bundle = load_sample("digits_mlp")
    app.session_state[CURRENT_MODEL] = LoadedModel.from_bundle(replace(bundle, eval_data=None), source="upload")
    at = open_importance(app)
    assert not at.exception
    assert "Every layer's channels, sorted, under Magnitude (L1)" in chart_titles(at)
    assert not at.select_slider, "no examples to choose from"

    at.selectbox(key=keys.INSPECT_COMPARE_WITH).select("taylor").run()
    assert not at.exception
    assert "Taylor (weight × gradient) needs data" in at.warning[0].value
    assert [link.proto.label for link in at.get("page_link")] == ["Add evaluation data on the Model page"]

    at.selectbox(key=keys.INSPECT_CRITERION).select("conductance").run()
    assert not at.exception
    assert "needs data" in at.warning[0].value
    assert "Model page" in at.warning[0].value
    assert chart_titles(at) == ["Parameters and sparsity per layer"]


def test_a_layer_wider_than_the_scatter_limit_is_compared_as_a_grid_of_counts(app: AppTest) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 3000), nn.ReLU(), nn.Linear(3000, 10)).eval()
    bundle = pe.ModelBundle("wide", model, torch.randn(2, 8), pe.EvalData(torch.randn(64, 8)))
    app.session_state[CURRENT_MODEL] = LoadedModel.from_bundle(bundle, source="upload")
    at = open_importance(app)
    at.selectbox(key=keys.INSPECT_COMPARE_LAYER).select("0").run()
    assert not at.exception
    grid = chart_spec(at, "Channels of 0, ranked by two criteria")["data"][0]
    assert grid["type"] == "heatmap"
    counts = np.nan_to_num(array(grid["z"]))
    assert counts.shape == (40, 40)
    assert counts.sum() == 3000, "every channel is counted once, and none is sent on its own"
