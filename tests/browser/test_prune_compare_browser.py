"""Model → Prune → Compare in a real chromium against `streamlit run`: a slider moved with the keyboard
prunes the model, Compare shows it smaller, and a downloaded plan uploads back into the sliders."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.helpers import (
    choose_whole_channels,
    open_app,
    open_page,
    save_screenshot,
    select_option,
    wait_for_app,
)

pytestmark = pytest.mark.browser

SCALES = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def slider(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stSlider").filter(has_text=label)


def press_on_slider(page: Page, label: str, key: str) -> None:
    """Focus the slider's hidden range input and press `key` on it."""
    handle = slider(page, label).locator('input[type="range"]')
    handle.wait_for(state="attached")
    handle.focus()
    handle.press(key)


def metric_value(box: Locator, label: str) -> float:
    """The number a metric labelled `label` inside `box` shows ("335 k" → 335000)."""
    text = box.get_by_test_id("stMetric").filter(has_text=label).first.get_by_test_id("stMetricValue").inner_text()
    number, prefix = re.fullmatch(r"([\d.,]+)\s*([kMG]?)", text.strip()).groups()
    return float(number.replace(",", "")) * SCALES[prefix]


def test_a_slider_moved_with_the_keyboard_prunes_the_model_that_compare_shows(page: Page, tmp_path) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_resnet")
    open_page(page, "Prune")
    choose_whole_channels(page)
    expect(page.get_by_text("Cannot lose channels: 'fc' produces the model's output.")).to_be_visible()

    press_on_slider(page, "Global ratio", "ArrowRight")
    expect(slider(page, "Global ratio").get_by_test_id("stSliderThumbValue")).to_have_text("31%")
    expect(page.get_by_text("31 % of the channels of each unlocked layer", exact=False)).to_be_visible()
    expect(slider(page, "conv1").first.get_by_test_id("stSliderThumbValue")).to_have_text("31%")
    wait_for_app(page)
    page.get_by_text("layer2 · 5 layers").click()
    expect(slider(page, "layer2.0.downsample.0").get_by_test_id("stSliderThumbValue")).to_have_text("31%")
    wait_for_app(page)
    save_screenshot(page, "prune_page")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the plan (JSON)").click()
    plan_file = tmp_path / "plan.json"
    download.value.save_as(plan_file)
    assert '"global_ratio": 0.31' in plan_file.read_text()

    page.get_by_test_id("stButton").get_by_role("button", name="Reset").click()
    expect(slider(page, "Global ratio").get_by_test_id("stSliderThumbValue")).to_have_text("30%")
    page.get_by_text("Load a plan from a file").click()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(plan_file)
    expect(page.get_by_text("Loaded the plan from plan.json.")).to_be_visible()
    expect(slider(page, "Global ratio").get_by_test_id("stSliderThumbValue")).to_have_text("31%")
    wait_for_app(page)

    open_page(page, "Compare")
    columns = page.get_by_test_id("stColumn")
    original, pruned = columns.filter(has_text="Original · "), columns.filter(has_text="Pruned · ")
    expect(pruned).to_contain_text("whole channels · Magnitude (L1) · 31 % in every layer")
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    assert metric_value(pruned, "Parameters") < metric_value(original, "Parameters")
    assert metric_value(pruned, "FLOPs per example") < metric_value(original, "FLOPs per example")
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text="Latency of every timed block")).to_be_visible()
    expect(page.get_by_text("test examples get another prediction")).to_be_visible()
    wait_for_app(page)
    save_screenshot(page, "compare_page")
