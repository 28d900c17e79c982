"""The Sensitivity page in a real chromium against `streamlit run`: a small scan draws its heatmap, its
suggestion lands in the Prune page's sliders, and Cancel stops a scan that is running."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

import prune_engine as pe
from prune_engine.sensitivity import SerialExecutor
from sample_models import load_sample
from tests.browser.helpers import open_app, open_page, save_screenshot, select_option, wait_for_app

pytestmark = pytest.mark.browser

HEATMAP = "Drop in accuracy when one layer is pruned alone"
TARGET = 0.5
"""The allocation's default target."""


def start_scan(page: Page) -> None:
    open_page(page, "Sensitivity")
    select_option(page, "Run on", "This server process")
    page.get_by_role("button", name="Run the scan").click()


def test_a_small_scan_draws_its_heatmap_and_its_suggestion_reaches_the_prune_sliders(page: Page) -> None:
    open_app(page)
    start_scan(page)
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.filter(has_text=HEATMAP)).to_be_visible()
    expect(charts.filter(has_text="Accuracy with one layer pruned")).to_be_visible()
    expect(page.get_by_text("The scan finished in")).to_be_visible()
    wait_for_app(page)
    save_screenshot(page, "sensitivity_page")

    page.get_by_role("tab", name="Suggested ratios").click()
    expect(page.get_by_test_id("stMetric").filter(has_text="Predicted drop")).to_be_visible()
    bundle = load_sample("digits_mlp")
    scan = pe.sensitivity_scan(bundle.model, bundle.eval_data, executor=SerialExecutor())
    expected = pe.suggest_ratios(scan, TARGET, model=bundle.model, example_input=bundle.example_input)
    page.get_by_role("button", name="Send to the Prune sliders").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Prune")
    wait_for_app(page)
    sliders = page.get_by_test_id("stSlider")
    for layer in ("fc1", "fc2", "fc3"):
        shown = f"{round(expected.ratios.get(layer, 0.0) * 100)}%"
        expect(sliders.filter(has_text=layer).first.get_by_test_id("stSliderThumbValue")).to_have_text(shown)
    save_screenshot(page, "prune_from_suggestion")


def test_cancel_stops_a_running_scan(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_resnet")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("digits_resnet")
    start_scan(page)
    expect(page.get_by_test_id("stProgress")).to_contain_text("accuracy")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("The scan was cancelled; nothing from it was kept.")).to_be_visible()
    wait_for_app(page)
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text=HEATMAP)).to_have_count(0)
    expect(page.get_by_role("button", name="Run the scan")).to_be_enabled()
