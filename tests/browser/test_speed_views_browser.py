"""The three speed views in a real browser: where the time goes (Inspect), the speed-up predicted as the
sliders move (Prune, with channel rounding), and predicted beside measured, sparse kernels included (Compare)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.helpers import choose_whole_channels, open_app, open_page, select_option, wait_for_app

pytestmark = pytest.mark.browser

SPEEDUP = re.compile(r"(\d+\.\d\d)×")


def chart(page: Page, text: str) -> Locator:
    return page.get_by_test_id("stPlotlyChart").filter(has_text=text).first


def metric_value(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label).first.get_by_test_id("stMetricValue")


def predicted_speedup(page: Page) -> float:
    """The Prune page's predicted speed-up, once it shows a number."""
    value = metric_value(page, "Predicted speed-up")
    expect(value).to_have_text(SPEEDUP)
    return float(SPEEDUP.search(value.inner_text()).group(1))


def press(page: Page, label: str) -> None:
    """Press the segmented-control button `label` (a preset, or a rounding choice)."""
    page.get_by_test_id("stButtonGroup").filter(has_text=label).get_by_text(label, exact=True).first.click()


def test_inspect_shows_each_layers_share_of_the_time_beside_parameters_and_flops(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_cnn")
    open_page(page, "Inspect")
    page.get_by_text("Where the time goes, layer by layer").click()
    page.get_by_test_id("stCheckbox").filter(has_text="Measure each layer's time").locator("label").click()
    shares = chart(page, "Share of parameters, FLOPs and time per layer")
    expect(shares).to_be_visible()
    for layer in ("conv1", "conv2", "(other)"):
        expect(shares).to_contain_text(layer)
    other = page.get_by_text(re.compile(r"“\(other\)” is everything outside the prunable layers.*\d+ %"))
    expect(other).to_be_visible()


def test_prune_predicts_the_speed_up_of_channels_and_compare_measures_it_beside(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_cnn")
    open_page(page, "Prune")
    choose_whole_channels(page)
    press(page, "50 %")
    expect(page.get_by_text("50 % of the channels of each unlocked layer")).to_be_visible()
    wait_for_app(page)
    unrounded = predicted_speedup(page)
    assert unrounded > 1.0, "half of every layer's channels gone predicts a faster model"
    press(page, "32")
    expect(metric_value(page, "Predicted speed-up")).not_to_have_text(f"{unrounded:.2f}×")
    wait_for_app(page)
    rounded = predicted_speedup(page)
    assert rounded < unrounded, "keeping channel counts a multiple of 32 keeps more of the small layers"
    open_page(page, "Compare")
    prediction = page.get_by_test_id("stMarkdown").filter(has_text="Predicted before pruning:").first
    expect(prediction).to_be_visible()
    expect(prediction).to_contain_text(f"{rounded:.2f}×")
    expect(prediction).to_contain_text("measured:")
    expect(chart(page, "Latency of every timed block")).to_be_visible()


def test_compare_times_single_weights_on_sparse_kernels_in_the_same_run(page: Page) -> None:
    open_app(page)
    open_page(page, "Prune")
    press(page, "95 %")
    expect(page.get_by_text("95 % of the weights of each unlocked layer")).to_be_visible()
    wait_for_app(page)
    expect(metric_value(page, "Predicted speed-up")).to_have_text("none")
    open_page(page, "Compare")
    expect(page.get_by_text("Zeros do not make dense kernels faster")).to_be_visible()
    page.get_by_test_id("stCheckbox").filter(has_text="Sparse kernels too").locator("label").click()
    wait_for_app(page)
    boxes = chart(page, "Latency of every timed block")
    expect(boxes).to_contain_text("pruned, sparse kernels")
    expect(boxes).to_contain_text("original")
