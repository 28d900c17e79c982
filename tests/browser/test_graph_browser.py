"""The graph view in a real chromium: digits_resnet drawn with every prunable layer and its downsample
branch, a picked layer's channel group outlined, and each overlay coloured (screenshots for people to read)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.helpers import open_app, open_page, save_screenshot, select_option, wait_for_app

pytestmark = pytest.mark.browser

PRUNABLE = (
    "conv1",
    "layer1.0.conv1",
    "layer1.0.conv2",
    "layer1.1.conv1",
    "layer1.1.conv2",
    "layer2.0.conv1",
    "layer2.0.conv2",
    "layer2.0.downsample.0",
    "layer2.1.conv1",
    "layer2.1.conv2",
    "fc",
)
GROUP = {"conv1", "layer1.0.conv2", "layer1.1.conv2"}
GROUP_COLOUR = "#1f6feb"


def open_graph(page: Page) -> Locator:
    """The graph's chart, once drawn (the expander is opened unless it still is from an earlier visit)."""
    chart = page.get_by_test_id("stGraphVizChart")
    if chart.count() == 0:
        page.get_by_text("Graph of the network").click()
        wait_for_app(page)
    expect(chart.locator("g.node").first).to_be_attached()
    return chart


def node_titles(chart: Locator) -> set[str]:
    return set(chart.locator("g.node > title").all_text_contents())


def outlined(chart: Locator) -> Locator:
    """The nodes drawn with the group's blue border."""
    return chart.locator(f'g.node:has(path[stroke="{GROUP_COLOUR}"]), g.node:has(polygon[stroke="{GROUP_COLOUR}"])')


def expect_group_outlined(chart: Locator) -> None:
    expect(outlined(chart)).to_have_count(len(GROUP))
    assert set(outlined(chart).locator("title").all_text_contents()) == GROUP


def colour_by(page: Page, chart: Locator, overlay: str, legend: str) -> None:
    select_option(page, "Colour by", overlay)
    expect(chart).to_contain_text(legend)


def test_digits_resnet_graph_shows_layers_downsample_and_the_coupled_group(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_resnet")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("digits_resnet")
    open_page(page, "Inspect")
    chart = open_graph(page)
    expect(chart).to_contain_text("layer2.0.downsample.0")
    titles = node_titles(chart)
    assert set(PRUNABLE) <= titles
    assert "add 3" in titles  # the downsample branch and the block meet at an addition

    select_option(page, "Pick a layer", "layer1.0.conv2")
    expect(page.get_by_text("loses the same channels as")).to_be_visible()
    expect_group_outlined(chart)

    colour_by(page, chart, "Parameters", "Parameters (log scale)")
    save_screenshot(page, "graph_params")
    colour_by(page, chart, "FLOPs", "FLOPs per forward pass")
    save_screenshot(page, "graph_flops")
    select_option(page, "Colour by", "Importance")
    expect(chart).to_contain_text("Relative importance")
    save_screenshot(page, "graph_importance")
    select_option(page, "Colour by", "Latency share")
    page.get_by_role("button", name="Measure the time of each layer").click()
    expect(chart).to_contain_text("Share of measured time", timeout=60_000)
    save_screenshot(page, "graph_latency")

    open_page(page, "Prune")
    chart = open_graph(page)
    colour_by(page, chart, "Removed by the plan", "Removed by the plan")
    expect_group_outlined(chart)
    save_screenshot(page, "graph_removed")


def test_sensitivity_overlay_reads_the_last_scan(page: Page) -> None:
    open_app(page)
    open_page(page, "Sensitivity")
    select_option(page, "Run on", "This server process")
    page.get_by_role("button", name="Run the scan").click()
    expect(page.get_by_text("The scan finished in")).to_be_visible()
    open_page(page, "Inspect")
    chart = open_graph(page)
    colour_by(page, chart, "Sensitivity", "Drop at 50 %")
    expect(page.get_by_text("from the last sensitivity scan")).to_be_visible()
    save_screenshot(page, "graph_sensitivity")
