"""Bring your own Hugging Face model, in a real chromium against `streamlit run`: a zipped GPT-2 folder
(random weights, its own tokenizer) and a .txt of your own text are uploaded on the Model page, scored by
perplexity, head-pruned on the Prune page, and the Hugging Face folder downloaded from Compare loads in
transformers and computes what the pruned model computes."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import torch
from playwright.sync_api import Locator, Page, expect

import prune_engine as pe
from tests.browser.helpers import download_plan, open_app, open_page, save_screenshot, wait_for_app
from tests.engine.hf_folders import save_folder, zipped

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.browser

TEXT = "the cat sat on the mat\nthe dog ran under the big tree\na small red house\n" * 40


def uploader(page: Page, label: str) -> Locator:
    """The file input of the uploader labelled `label`."""
    return page.get_by_test_id("stFileUploader").filter(has_text=label).locator('input[type="file"]')


def test_a_zipped_transformers_folder_and_text_are_pruned_and_downloaded_as_a_folder(
    page: Page, tmp_path: Path
) -> None:
    folder = save_folder("gpt2", tmp_path / "tiny-gpt2")
    model_zip = tmp_path / "tiny-gpt2.zip"
    model_zip.write_bytes(zipped(folder, top="tiny-gpt2/"))
    text_file = tmp_path / "story.txt"
    text_file.write_text(TEXT)
    model = pe.load_model(folder)
    data = pe.load_text_data(text_file, model)
    perplexity = pe.evaluate(model, data)["perplexity"]

    open_app(page)
    page.get_by_role("tab", name="Upload your own model").click()
    uploader(page, "Model file").set_input_files(model_zip)
    wait_for_app(page)
    uploader(page, "Data file").set_input_files(text_file)
    expect(page.get_by_text("story.txt: 120 lines of text, one example each.")).to_be_visible()
    wait_for_app(page)
    page.get_by_role("button", name="Load this model").click()
    expect(
        page.get_by_text("Loaded tiny-gpt2.zip: Uploaded as a transformers model folder (GPT2LMHeadModel)")
    ).to_be_visible()
    expect(page.get_by_test_id("stSidebar")).to_contain_text("tiny-gpt2.zip")
    metric = page.get_by_test_id("stMetric").filter(has_text="Perplexity").get_by_test_id("stMetricValue")
    expect(metric).to_have_text(f"{perplexity:.2f}")
    wait_for_app(page)
    save_screenshot(page, "hf_model_upload")

    open_page(page, "Prune")
    page.get_by_test_id("stRadio").filter(has_text="Granularity").get_by_text("Attention heads").click()
    wait_for_app(page)

    plan = download_plan(page)
    assert plan.granularity == "head"

    page.get_by_role("button", name="Prepare Hugging Face folder").click()
    zip_button = page.get_by_role("button", name=re.compile(r"tiny-gpt2-pruned\.zip \("))
    expect(zip_button).to_be_visible()
    with page.expect_download() as zip_download:
        zip_button.click()
    exported = tmp_path / "exported"
    zipfile.ZipFile(zip_download.value.path()).extractall(exported)
    wait_for_app(page)
    save_screenshot(page, "hf_compare_export")

    pruned = pe.apply_plan(model, plan, data.inputs[:1], data).model
    heads = [layer.heads for layer in pe.attention_layers(pruned)]
    assert sum(heads) < 4 * len(heads)
    loaded = transformers.GPT2LMHeadModel.from_pretrained(str(exported)).eval()
    assert (exported / "tokenizer.json").is_file()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(data.inputs[:4]).logits, pruned(data.inputs[:4]), atol=1e-5, rtol=1e-5)
