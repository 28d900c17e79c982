"""Bring your own model, prune it, take it away, in a real chromium against `streamlit run`: a state_dict of a
registered architecture and a CSV of evaluation data are uploaded on the Model page, channel-pruned on the
Prune page, and the ONNX file downloaded from Compare runs in onnxruntime like the pruned model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from playwright.sync_api import Locator, Page, expect

import prune_engine as pe
from sample_models import digits_data, load_sample
from tests.browser.helpers import (
    choose_whole_channels,
    download_plan,
    open_app,
    open_page,
    save_screenshot,
    select_option,
    wait_for_app,
)

pytestmark = pytest.mark.browser


def uploader(page: Page, label: str) -> Locator:
    """The file input of the uploader labelled `label`."""
    return page.get_by_test_id("stFileUploader").filter(has_text=label).locator('input[type="file"]')


def write_digits_csv(path: Path) -> pd.DataFrame:
    """The digits test split as CSV: 64 pixel columns and the label last."""
    test = digits_data()[1]
    frame = pd.DataFrame(test.inputs.reshape(len(test), -1).numpy(), columns=[f"p{i}" for i in range(64)])
    frame["label"] = test.labels.numpy()
    frame.to_csv(path, index=False)
    return frame


def test_an_uploaded_state_dict_and_csv_are_pruned_and_downloaded_as_onnx(page: Page, tmp_path: Path) -> None:
    mlp = load_sample("digits_mlp").model
    model_file = tmp_path / "my_mlp.pt"
    torch.save(mlp.state_dict(), model_file)
    frame = write_digits_csv(tmp_path / "digits_test.csv")
    inputs = torch.tensor(frame.drop(columns="label").to_numpy(dtype=np.float32))
    accuracy = pe.evaluate(mlp, pe.EvalData(inputs, torch.tensor(frame["label"].to_numpy())))["accuracy"]

    open_app(page)
    page.get_by_role("tab", name="Upload your own model").click()
    uploader(page, "Model file").set_input_files(model_file)
    wait_for_app(page)
    select_option(page, "Architecture", "digits_mlp")
    uploader(page, "Data file").set_input_files(tmp_path / "digits_test.csv")
    expect(page.get_by_role("combobox", name="Label column")).to_have_value("label")
    wait_for_app(page)
    page.get_by_role("button", name="Load this model").click()
    expect(page.get_by_text("Loaded my_mlp.pt: Uploaded as a PyTorch checkpoint")).to_be_visible()
    expect(page.get_by_test_id("stSidebar")).to_contain_text("my_mlp.pt")
    accuracy_metric = page.get_by_test_id("stMetric").filter(has_text="Accuracy").get_by_test_id("stMetricValue")
    expect(accuracy_metric).to_have_text(f"{accuracy * 100:.1f} %")
    wait_for_app(page)
    save_screenshot(page, "model_upload")

    open_page(page, "Prune")
    choose_whole_channels(page)

    plan = download_plan(page)
    assert plan.granularity == "channel"

    page.get_by_role("button", name="Prepare ONNX").click()
    onnx_button = page.get_by_role("button", name=re.compile(r"my_mlp-pruned\.onnx \("))
    expect(onnx_button).to_be_visible()
    with page.expect_download() as onnx_download:
        onnx_button.click()
    assert onnx_download.value.suggested_filename == "my_mlp-pruned.onnx"
    onnx_file = tmp_path / "pruned.onnx"
    onnx_download.value.save_as(onnx_file)
    wait_for_app(page)
    save_screenshot(page, "compare_export")

    pruned = pe.apply_plan(mlp, plan, inputs[:1]).model
    assert pruned.fc1.out_features < mlp.fc1.out_features
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (outputs,) = session.run(None, {"input": inputs.numpy()})
    with torch.inference_mode():
        expected = pruned(inputs).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)
