"""The Inspect page under AppTest: charts for the model, and for the layer picked."""

from streamlit.testing.v1 import AppTest

from tests.app.helpers import INSPECT_PAGE, chart_spec, chart_titles, metrics
from ui.shared import keys
from ui.shared.navigation import MODEL_PAGE


def open_inspect(app: AppTest, sample: str | None = None) -> AppTest:
    if sample is not None:
        app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select(sample).run()
    return app.switch_page(INSPECT_PAGE).run()


def test_inspect_shows_the_overview_and_the_first_layer(app: AppTest) -> None:
    at = open_inspect(app)
    assert not at.exception
    assert chart_titles(at) == [
        "Parameters and sparsity per layer",
        "Weight values of fc1",
        "L1 norm per output channel of fc1",
    ]
    assert metrics(at)["Weight shape"] == "256×64"
    assert at.expander[0].label == "About these charts"


def test_picking_another_layer_changes_the_histogram_and_the_metrics(app: AppTest) -> None:
    at = open_inspect(app, "digits_resnet")
    before = chart_spec(at, "Weight values of")
    at.selectbox(key=keys.INSPECT_LAYER_PICKER).select("layer2.0.downsample.0").run()
    assert not at.exception
    after = chart_spec(at, "Weight values of")
    assert after["layout"]["title"]["text"] == "Weight values of layer2.0.downsample.0"
    assert after["data"][0]["y"] != before["data"][0]["y"]
    assert metrics(at)["Weight shape"] == "128×64×1×1"
    norms = chart_spec(at, "L1 norm per output channel")
    assert len(norms["data"][0]["x"]) == 128


def test_channel_norms_come_sorted_or_in_channel_order(app: AppTest) -> None:
    at = open_inspect(app)
    assert "smallest first" in chart_spec(at, "L1 norm")["layout"]["xaxis"]["title"]["text"]
    at.toggle(key=keys.INSPECT_SORT_CHANNELS).set_value(False).run()
    norms = chart_spec(at, "L1 norm")
    assert "in channel order" in norms["layout"]["xaxis"]["title"]["text"]
    assert norms["data"][0]["x"][:3] == ["0", "1", "2"]


def test_the_layer_choice_follows_a_change_of_model(app: AppTest) -> None:
    at = open_inspect(app)
    at.selectbox(key=keys.INSPECT_LAYER_PICKER).select("fc2").run()
    at.switch_page(MODEL_PAGE).run()
    at.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    at.switch_page(INSPECT_PAGE).run()
    assert not at.exception
    assert at.selectbox(key=keys.INSPECT_LAYER_PICKER).value == "conv1"


def test_each_layers_share_of_time_is_measured_beside_its_share_of_parameters(app: AppTest) -> None:
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    at = app.switch_page(INSPECT_PAGE).run()
    at.toggle(key=keys.INSPECT_PROFILE).set_value(True).run()
    assert not at.exception
    chart = chart_spec(at, "Share of parameters, FLOPs and time per layer")
    assert [trace["name"] for trace in chart["data"]] == ["parameters", "FLOPs", "latency"]
    assert chart["data"][2]["y"][-1] == "(other)"
