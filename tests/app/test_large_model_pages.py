"""The GPT-2-shaped scale sample (124 M parameters) through Model → Inspect → Prune → Compare
under AppTest: shown only behind the toggle, charts carry aggregated data only, the layer
sliders come a page of blocks at a time, and pruning waits for Apply with progress."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from sample_models import list_samples
from tests.app.helpers import INSPECT_PAGE, layer_key, metrics, start_app, table_layers
from ui.model import picker as model_picker
from ui.shared import keys
from ui.shared.navigation import COMPARE_PAGE, PRUNE_PAGE

LARGE = "gpt2_shaped"
RUN_TIMEOUT_S = 240
"""One script run may build the model, fingerprint it and run it once (seconds each on 2 busy cores)."""
MAX_POINTS = 2_000
"""No chart may carry more numbers than this: a per-weight chart of this model would carry millions."""


@pytest.fixture
def app() -> Iterator[AppTest]:
    """The app on the Model page; the large model leaves the shared caches when the test ends."""
    yield start_app()
    st.cache_resource.clear()
    st.cache_data.clear()


def run(target) -> AppTest:
    """Run the app after an interaction (`target` is the AppTest or the widget just changed)."""
    at = target.run(timeout=RUN_TIMEOUT_S)
    assert not at.exception, [exception.value for exception in at.exception]
    return at


def chart_points(at: AppTest) -> int:
    """The most numbers any plotly chart on the page carries (every x, y, z array counted)."""

    def count(value: object) -> int:
        if isinstance(value, list):
            return sum(count(item) for item in value) if value and isinstance(value[0], list) else len(value)
        return 0

    return max(
        (
            sum(count(trace.get(axis)) for trace in json.loads(chart.proto.spec)["data"] for axis in "xyz")
            for chart in at.get("plotly_chart")
        ),
        default=0,
    )


@pytest.mark.slow
def test_the_gpt2_shaped_sample_goes_through_every_page(app: AppTest) -> None:
    picker = app.selectbox(key=keys.MODEL_SAMPLE_PICKER)
    assert LARGE not in picker.options
    run(app.toggle(key=keys.MODEL_SHOW_LARGE).set_value(True))
    assert any("random weights" in warning.value for warning in app.warning)
    picker = app.selectbox(key=keys.MODEL_SAMPLE_PICKER)
    assert picker.options == [model_picker.sample_label(name) for name in list_samples(include_large=True)]
    run(picker.select(LARGE))
    assert metrics(app)["Parameters"] == "124 M"
    assert len(table_layers(app)) == 73

    run(app.switch_page(INSPECT_PAGE))
    assert 0 < chart_points(app) <= MAX_POINTS
    run(app.selectbox(key=keys.INSPECT_LAYER_PICKER).select("lm_head"))
    assert 0 < chart_points(app) <= MAX_POINTS, "the 50,257 channel norms of the LM head arrive averaged"

    app.switch_page(PRUNE_PAGE)
    app.session_state[keys.PRUNE_PREVIEW_OPEN] = True
    run(app)
    pages = app.radio(key=keys.PRUNE_LAYER_PAGE)
    assert pages.options == ["h\\.0 – h\\.5", "h\\.6 – h\\.11", "lm\\_head"]
    boxes = [expander.label for expander in app.expander if "layers" in expander.label]
    assert boxes == [f"h\\.{block} · 6 layers" for block in range(6)]
    run(pages.set_value(2))
    assert [slider.key for slider in app.slider][-1] == layer_key(app, keys.prune_layer_ratio, "lm_head")
    assert keys.PRUNED not in app.session_state, "nothing is pruned before Apply"
    assert any("ranked only when the plan is applied" in caption.value for caption in app.caption)
    run(app.radio(key=keys.PRUNE_SCOPE).set_value("global"))
    assert any("global ranking runs when you apply" in caption.value for caption in app.caption)
    run(app.radio(key=keys.PRUNE_SCOPE).set_value("layer"))

    run(app.button(key=keys.PRUNE_APPLY).click())
    assert [status.label for status in app.status] == ["Pruned"]
    report = app.session_state[keys.PRUNED].result.report.set_index("layer")
    assert report["achieved_ratio"].between(0.29, 0.31).all()
    assert 0 < chart_points(app) <= MAX_POINTS

    run(app.switch_page(COMPARE_PAGE))
    shown = metrics(app)
    assert shown["Non-zero parameters"] != shown.get("Parameters")
    assert "Same prediction as original" in shown
    assert 0 < chart_points(app) <= MAX_POINTS


def test_model_page_returns_to_small_samples_when_the_toggle_is_off(app: AppTest) -> None:
    run(app.toggle(key=keys.MODEL_SHOW_LARGE).set_value(True))
    run(app.toggle(key=keys.MODEL_SHOW_LARGE).set_value(False))
    assert app.selectbox(key=keys.MODEL_SAMPLE_PICKER).options == list_samples()
    assert not any("random weights" in warning.value for warning in app.warning)
