"""minilm in a real chromium: load the pretrained transformer, remove attention heads, compare embeddings."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import open_app, open_page, save_screenshot, select_option, wait_for_app
from tests.browser.test_prune_compare_browser import metric_value, press_on_slider, slider

pytestmark = pytest.mark.browser

FIRST_ATTENTION = "bert.encoder.layer.0.attention"


def test_minilm_loses_attention_heads_and_compare_shows_embedding_fidelity(page: Page, tmp_path) -> None:
    open_app(page)
    select_option(page, "Sample model", "minilm")
    expect(page.get_by_test_id("stMetric").filter(has_text="Paraphrase found first")).to_contain_text("100.0 %")
    wait_for_app(page)

    open_page(page, "Prune")
    page.get_by_test_id("stRadio").filter(has_text="Granularity").get_by_text("Attention heads").click()
    expect(page.get_by_text("30 % of the heads of each unlocked attention layer")).to_be_visible()
    expect(page.get_by_text("keeps 8 / 12 heads").first).to_be_visible()
    wait_for_app(page)
    press_on_slider(page, FIRST_ATTENTION, "ArrowLeft")
    expect(slider(page, FIRST_ATTENTION).get_by_test_id("stSliderThumbValue")).to_have_text("3")
    expect(page.get_by_text("keeps 9 / 12 heads")).to_be_visible()
    wait_for_app(page)
    page.get_by_role("button", name="Apply the plan").click()
    expect(page.get_by_text("Pruned", exact=True)).to_be_visible(timeout=120_000)
    wait_for_app(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the plan (JSON)").click()
    plan_file = tmp_path / "heads.json"
    download.value.save_as(plan_file)
    assert f'"{FIRST_ATTENTION}": 0.25' in plan_file.read_text()
    page.get_by_text("Load a plan from a file").click()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(plan_file)
    expect(page.get_by_text("Loaded the plan from heads.json.")).to_be_visible()
    wait_for_app(page)
    page.get_by_text("What does removing attention heads do?").click()
    expect(page.get_by_text("What is an attention head?")).to_be_visible()
    save_screenshot(page, "minilm_prune_heads")

    open_page(page, "Compare")
    columns = page.get_by_test_id("stColumn")
    original, pruned = columns.filter(has_text="Original · "), columns.filter(has_text="Pruned · ")
    expect(pruned).to_contain_text("attention heads · Magnitude (L1) · 30 % in every other layer", timeout=120_000)
    expect(pruned.get_by_test_id("stMetric").filter(has_text="Same nearest neighbour")).to_be_visible()
    expect(pruned.get_by_test_id("stMetric").filter(has_text="Embedding cosine similarity")).to_be_visible()
    expect(page.get_by_text("sentences find another nearest neighbour after pruning")).to_be_visible()
    assert metric_value(pruned, "Parameters") < metric_value(original, "Parameters")
    assert metric_value(pruned, "FLOPs per example") < metric_value(original, "FLOPs per example")
    wait_for_app(page)
    save_screenshot(page, "minilm_compare")
