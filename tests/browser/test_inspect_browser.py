"""The Model → Inspect path in a real chromium against `streamlit run`."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import open_app, open_page, save_screenshot, select_option

pytestmark = pytest.mark.browser

LAYER = "layer2.0.downsample.0"


def test_inspect_shows_the_layer_picked_on_the_sample_picked(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_resnet")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("digits_resnet")
    expect(page.get_by_test_id("stDataFrame")).to_contain_text(LAYER)
    save_screenshot(page, "model_page")

    open_page(page, "Inspect")
    select_option(page, "Layer", LAYER)
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.filter(has_text=f"Weight values of {LAYER}")).to_be_visible()
    expect(charts.filter(has_text=f"L1 norm per output channel of {LAYER}")).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Weight shape")).to_contain_text("128×64×1×1")
    save_screenshot(page, "inspect_page")
    page.get_by_text("About these charts").click()
    expect(page.get_by_text("The weight histogram")).to_be_visible()


def test_a_page_opened_by_its_address_starts_on_the_first_sample(page: Page) -> None:
    open_app(page, "/inspect")
    expect(page.get_by_role("heading", level=1)).to_have_text("Inspect")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("digits_mlp")
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text="Weight values of fc1")).to_be_visible()
