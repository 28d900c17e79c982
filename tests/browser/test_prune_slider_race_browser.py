"""The Prune page's per-layer controls under quick key presses: only a layer's own slider locks it,
and an open block stays open.

A layer locks only when its own slider is moved. Before, three ArrowRight presses without pauses
left conv1–conv3 of digits_cnn locked at 31 % while the global slider showed 33 %: the browser
echoed the layer sliders' previous values while a rerun was still running, which the server took
for moves of those sliders.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import choose_whole_channels, open_app, open_page, select_option, wait_for_app

pytestmark = pytest.mark.browser

LAYERS = ("conv1", "conv2", "conv3")
PRESSES = 20
PRESS_GAP_MS = 30


def test_quick_presses_on_the_global_slider_lock_no_layer(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_cnn")
    open_page(page, "Prune")
    choose_whole_channels(page)
    handle = page.get_by_test_id("stSlider").filter(has_text="Global ratio").locator('input[type="range"]')
    handle.wait_for(state="attached")
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    global_value = page.get_by_test_id("stSlider").filter(has_text="Global ratio").get_by_test_id("stSliderThumbValue")
    expect(global_value).to_have_text("33%")
    expect(page.get_by_text("33 % of the channels of each unlocked layer", exact=False)).to_be_visible()
    wait_for_app(page)
    for layer in LAYERS:
        control = page.get_by_test_id("stSlider").filter(has_text=layer).first
        expect(control.get_by_test_id("stSliderThumbValue")).to_have_text("33%")
    locks = page.get_by_test_id("stCheckbox").filter(has_text="Lock").locator('input[type="checkbox"]')
    assert locks.count() >= len(LAYERS)
    for index in range(locks.count()):
        expect(locks.nth(index)).not_to_be_checked()


@pytest.mark.parametrize("granularity", ["channel", "unstructured"])
def test_a_run_of_quick_presses_right_after_opening_the_page_locks_no_layer(page: Page, granularity: str) -> None:
    """Presses 30 ms apart, right after the page (and its widgets) were drawn anew: the browser sends values
    from several steps back while the server is still answering earlier presses. Before, 12 presses 50 ms apart
    left conv1–conv3 locked at 33 % with the global slider at 42 %, or the number field at 49 beside it."""
    open_app(page)
    select_option(page, "Sample model", "digits_cnn")
    open_page(page, "Prune")
    if granularity == "channel":
        choose_whole_channels(page)
    slider = page.get_by_test_id("stSlider").filter(has_text="Global ratio")
    handle = slider.locator('input[type="range"]')
    handle.wait_for(state="attached")
    handle.focus()
    for _ in range(PRESSES):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(PRESS_GAP_MS)
    wait_for_app(page)
    page.wait_for_timeout(500)
    wait_for_app(page)
    final = slider.get_by_test_id("stSliderThumbValue").inner_text()
    number = page.get_by_role("spinbutton", name="Global ratio (%)")
    expect(number).to_have_value(final.rstrip("%"))
    unit = "channels" if granularity == "channel" else "weights"
    expect(page.get_by_text(f"{final.rstrip('%')} % of the {unit} of each unlocked layer", exact=False)).to_be_visible()
    for layer in LAYERS:
        control = page.get_by_test_id("stSlider").filter(has_text=layer).first
        expect(control.get_by_test_id("stSliderThumbValue")).to_have_text(final)
    locks = page.get_by_test_id("stCheckbox").filter(has_text="Lock").locator('input[type="checkbox"]')
    for index in range(locks.count()):
        expect(locks.nth(index)).not_to_be_checked()


def test_an_open_block_stays_open_when_a_layer_in_it_locks(page: Page) -> None:
    open_app(page)
    select_option(page, "Sample model", "digits_resnet")
    open_page(page, "Prune")
    page.get_by_text("layer2 · 5 layers").click()
    layer = page.get_by_test_id("stSlider").filter(has_text="layer2.0.downsample.0")
    handle = layer.locator('input[type="range"]')
    handle.wait_for(state="attached")
    handle.focus()
    handle.press("ArrowRight")
    expect(layer.get_by_test_id("stSliderThumbValue")).to_have_text("31%")
    wait_for_app(page)
    expect(layer).to_be_visible()
    handle.press("ArrowRight")
    expect(layer.get_by_test_id("stSliderThumbValue")).to_have_text("32%")
    wait_for_app(page)
    expect(layer).to_be_visible()
