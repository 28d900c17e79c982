"""The Model page and the frame around every page, under AppTest."""

import pytest
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from sample_models import list_samples, load_sample
from tests.app.helpers import PAGES, metrics, sidebar_text, start_app, table_layers
from ui.shared import caches, keys


def test_the_app_starts_on_the_first_sample(app: AppTest) -> None:
    assert not app.exception
    first = list_samples()[0]
    assert app.selectbox(key=keys.MODEL_SAMPLE_PICKER).value == first
    assert first.replace("_", "\\_") in sidebar_text(app)
    assert table_layers(app) == [layer.name for layer in pe.prunable_layers(load_sample(first).model)]
    assert metrics(app)["Accuracy"].endswith("%")


def test_picking_another_sample_changes_the_layer_table_and_the_sidebar(app: AppTest) -> None:
    before = metrics(app)
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_resnet").run()
    assert not app.exception
    layers = table_layers(app)
    assert len(layers) == 11
    assert "layer2.0.downsample.0" in layers
    assert metrics(app)["Parameters"] != before["Parameters"]
    assert "digits\\_resnet" in sidebar_text(app)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_keeps_the_frame_on_reruns(app: AppTest, page: str) -> None:
    app.switch_page(page).run()
    app.run()
    assert not app.exception
    assert "Current model" in sidebar_text(app)


@pytest.mark.parametrize("page", PAGES)
def test_without_a_model_every_page_points_to_the_model_page(monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    def fail_to_load(name: str) -> None:
        raise pe.ModelLoadError(f"The weights of sample {name!r} are missing.")

    monkeypatch.setattr(caches, "load_sample_model", fail_to_load)
    at = start_app()
    at.switch_page(page).run()
    assert not at.exception
    assert any("No model is loaded yet" in info.value for info in at.info)
    assert "could not be loaded" in sidebar_text(at)
