"""Two people on one server at once: two browser contexts (two Streamlit sessions), each with its own sample
and plan; each Compare page shows its own figures, and the Experiments page lists each one's runs."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.helpers import open_app, open_page, save_screenshot, select_option, wait_for_app
from tests.browser.test_prune_compare_browser import metric_value, press_on_slider, slider
from tests.conftest import EXPECT_TIMEOUT_MS, VIEWPORT

pytestmark = pytest.mark.browser

LATENCY_FRONT = re.compile(r"Accuracy vs latency per batch \(ms\): (one run so far|\d+ of \d+ runs on the front)")


@pytest.fixture
def two_pages(browser: Browser, app_server: str) -> Iterator[tuple[Page, Page]]:
    """Two browser contexts open on the app at the same time: two separate sessions."""
    contexts = [browser.new_context(base_url=app_server, viewport=VIEWPORT) for _ in range(2)]
    pages = []
    for context in contexts:
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        pages.append(context.new_page())
    yield pages[0], pages[1]
    for context in contexts:
        context.close()


def sides(page: Page) -> tuple[Locator, Locator]:
    columns = page.get_by_test_id("stColumn")
    return columns.filter(has_text="Original · "), columns.filter(has_text="Pruned · ")


def test_two_sessions_at_once_each_compare_their_own_model_and_plan(two_pages: tuple[Page, Page]) -> None:
    mlp, cnn = two_pages
    open_app(mlp)
    open_app(cnn)
    select_option(cnn, "Sample model", "digits_cnn")

    open_page(mlp, "Prune")
    open_page(cnn, "Prune")
    press_on_slider(mlp, "Global ratio", "ArrowRight")
    cnn.get_by_test_id("stRadio").filter(has_text="Granularity").get_by_text("Whole channels").click()
    expect(slider(mlp, "Global ratio").get_by_test_id("stSliderThumbValue")).to_have_text("31%")
    expect(cnn.get_by_text("of the channels of each unlocked layer")).to_be_visible()
    wait_for_app(mlp)
    wait_for_app(cnn)

    open_page(mlp, "Compare")
    open_page(cnn, "Compare")
    mlp_original, mlp_pruned = sides(mlp)
    cnn_original, cnn_pruned = sides(cnn)
    expect(mlp_original).to_contain_text("Original · digits_mlp")
    expect(mlp_pruned).to_contain_text("single weights · Magnitude (L1) · 31 % in every layer")
    expect(cnn_original).to_contain_text("Original · digits_cnn")
    expect(cnn_pruned).to_contain_text("whole channels · Magnitude (L1) · 30 % in every layer")
    for page in (mlp, cnn):
        expect(page.get_by_test_id("stPlotlyChart").filter(has_text="Latency of every timed block")).to_be_visible()
        wait_for_app(page)
    assert metric_value(mlp_pruned, "Parameters") == metric_value(mlp_original, "Parameters")
    assert metric_value(mlp_pruned, "Non-zero parameters") < metric_value(mlp_original, "Non-zero parameters")
    assert metric_value(cnn_pruned, "Parameters") < metric_value(cnn_original, "Parameters")
    assert metric_value(cnn_original, "Parameters") != metric_value(mlp_original, "Parameters")
    save_screenshot(mlp, "two_sessions_compare_mlp")
    save_screenshot(cnn, "two_sessions_compare_cnn")

    open_page(mlp, "Experiments")
    open_page(cnn, "Experiments")
    expect(mlp.get_by_test_id("stDataFrame").first).to_be_visible()
    for page in (mlp, cnn):  # other tests on this server may have saved runs of the same samples
        expect(page.get_by_text(LATENCY_FRONT)).to_be_visible()
    wait_for_app(mlp)
    save_screenshot(mlp, "experiments_page")
