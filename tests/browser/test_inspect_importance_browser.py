"""The Inspect page's Importance tab in a real chromium: a Captum criterion, its heatmap and the agreement scatter,
still there after a visit to another page."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import open_app, open_page, save_screenshot, select_option, wait_for_app

pytestmark = pytest.mark.browser

CAPTUM = "Gradient × activation (Captum)"


def test_a_captum_criterion_shows_its_heatmap_and_its_agreement_with_magnitude(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_cnn")
    open_page(page, "Inspect")
    page.get_by_role("tab", name="Importance").click()
    wait_for_app(page)

    examples = page.get_by_test_id("stSlider").filter(has_text="Examples for data criteria")
    handle = examples.get_by_role("slider")
    handle.focus()
    for _ in range(3):
        handle.press("ArrowLeft")
    expect(examples.get_by_test_id("stSliderThumbValue")).to_have_text("32")
    wait_for_app(page)

    select_option(page, "Criterion", f"{CAPTUM} · attribution")
    expect(page.get_by_text(f"{CAPTUM} runs the model on 32 examples")).to_be_visible()
    page.get_by_role("button", name=f"Score with {CAPTUM}").click()
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.filter(has_text=f"Every layer's channels, sorted, under {CAPTUM}")).to_be_visible()
    expect(charts.filter(has_text=f"Where each layer's channels rank under {CAPTUM}")).to_be_visible()
    scatter = charts.filter(has_text="Channels of conv1, ranked by two criteria")
    expect(scatter).to_contain_text("rank under Magnitude (L1)")
    expect(scatter).to_contain_text(f"rank under {CAPTUM}")
    expect(page.get_by_test_id("stMetric").filter(has_text="Spearman rank correlation")).to_contain_text(".")
    expect(page.get_by_text("Scores from 32 evaluation examples")).to_be_visible()
    save_screenshot(page, "inspect_importance")

    page.get_by_text("About the criteria").click()
    expect(page.get_by_text("What Captum's conductance measures.")).to_be_visible()

    open_page(page, "Model")
    open_page(page, "Inspect")
    expect(page.get_by_role("tab", name="Importance")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("combobox", name="Criterion")).to_have_value(f"{CAPTUM} · attribution")
    expect(charts.filter(has_text=f"Every layer's channels, sorted, under {CAPTUM}")).to_be_visible()
