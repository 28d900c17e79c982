"""The export panel on Compare, under AppTest: every format is written on request and reads back into a model
that gives the pruned model's outputs; the report and summary hold the figures; a failing format says why."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import warnings

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from sample_models import digits_data, load_sample
from ui.compare import export
from ui.shared import keys
from ui.shared.navigation import COMPARE_PAGE, PRUNE_PAGE
from workbench import fmt
from workbench.session import PrunedModel

EXAMPLES = 64
ONNX_FAILURE = "The model could not be exported to ONNX: operator aten::mystery is not supported."


def channel_pruned_cnn_on_compare(app: AppTest) -> AppTest:
    """digits_cnn channel-pruned on the Prune page (it applies live), then the Compare page."""
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    app.switch_page(PRUNE_PAGE).run()
    app.radio(key=keys.PRUNE_GRANULARITY).set_value("channel").run()
    return app.switch_page(COMPARE_PAGE).run()


def prepare(at: AppTest, kind: str) -> dict[str, bytes]:
    """Press "Prepare …" for `kind` and return the files the download buttons now offer."""
    at.button(key=keys.export_prepare(kind)).click().run()
    assert not at.exception
    entry = at.session_state[keys.EXPORT_PREPARED][kind]
    assert entry.error is None, entry.error
    labels = [button.label for button in at.get("download_button")]
    for name, content in entry.files.items():
        assert f"{name} ({fmt.size(len(content))})" in labels, f"no download button for {name}: {labels}"
    return entry.files


def test_every_model_format_reads_back_into_the_pruned_model(app: AppTest) -> None:
    at = channel_pruned_cnn_on_compare(app)
    pruned = at.session_state[keys.PRUNED].model
    inputs = digits_data()[1].inputs[:EXAMPLES]
    with torch.inference_mode():
        expected = pruned(inputs).numpy()
    assert pruned.conv2.out_channels < 64

    files = prepare(at, "state_dict")
    assert set(files) == {"digits_cnn-pruned.pt", "digits_cnn-pruned-architecture.json"}
    sidecar = json.loads(files["digits_cnn-pruned-architecture.json"])
    from_state_dict = pe.load_model(files["digits_cnn-pruned.pt"], architecture="digits_cnn", sidecar=sidecar)

    files = prepare(at, "safetensors")
    sidecar = json.loads(files["digits_cnn-pruned-architecture.json"])
    from_safetensors = pe.load_model(files["digits_cnn-pruned.safetensors"], architecture="digits_cnn", sidecar=sidecar)

    files = prepare(at, "torchscript")
    assert set(files) == {"digits_cnn-pruned.torchscript.pt"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(io.BytesIO(files["digits_cnn-pruned.torchscript.pt"]))

    with torch.inference_mode():
        for model in (from_state_dict, from_safetensors, scripted):
            np.testing.assert_allclose(model(inputs).numpy(), expected, rtol=1e-5, atol=1e-5)

    files = prepare(at, "onnx")
    session = onnxruntime.InferenceSession(files["digits_cnn-pruned.onnx"], providers=["CPUExecutionProvider"])
    (onnx_outputs,) = session.run(None, {"input": inputs.numpy()})
    np.testing.assert_allclose(onnx_outputs, expected, rtol=1e-4, atol=1e-4)


def test_the_summary_is_one_offline_page_with_the_figures_and_the_report_matches_the_result(app: AppTest) -> None:
    at = channel_pruned_cnn_on_compare(app)
    pruned = at.session_state[keys.PRUNED]
    (name, content), *_ = prepare(at, export.SUMMARY).items()
    assert name == "digits_cnn-summary.html"
    page = content.decode()
    assert "Plotly.newPlot" in page
    assert not re.search(r"<script[^>]+src=", page), "the summary must not fetch scripts: it has to open offline"
    assert len(page) > 3_000_000, "plotly.js should be embedded"
    headline = export.headline_table(at.session_state[keys.CURRENT_MODEL], pruned, None)
    assert headline["Figure"].tolist()[:3] == ["Accuracy", "Loss", "Same prediction as original"]
    changes = headline.set_index("Figure")["Change"]
    assert changes["Latency (median)"] == fmt.MISSING and changes["Sparsity"] == "no change"
    assert changes["Parameters"].startswith("-")
    for _, row in headline.iterrows():
        assert f"<td>{row['Figure']}</td>" in page
    assert "<th>Achieved</th>" in page and "achieved_ratio" not in page, "headers in words, not column names"
    achieved = pruned.result.report.set_index("layer").loc["conv1", "achieved_ratio"]
    assert f"<td>{fmt.percent(achieved)}</td>" in page, "shares as percentages, not raw fractions"
    assert '<div class="scroll">' in page, "the wide layer table scrolls inside the page instead of widening it"
    assert "Parameters per layer, before and after" in page
    assert "Latency of every timed block" in page

    report = pd.read_csv(io.StringIO(export.report_csv(pruned)))
    assert report["layer"].tolist() == pruned.result.report["layer"].tolist()
    np.testing.assert_array_equal(report["params_after"], pruned.result.report["params_after"])
    labels = [button.label for button in at.get("download_button")]
    assert {"Download the plan", "Download the report"} <= set(labels)


def test_a_format_that_cannot_be_written_says_why_and_the_page_carries_on(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = pe.export_model

    def no_onnx(model: torch.nn.Module, fmt: str = "state_dict", example_input: object = None) -> bytes:
        if fmt == "onnx":
            raise pe.ExportError(ONNX_FAILURE)
        return written(model, fmt, example_input)

    monkeypatch.setattr(pe.export, "export_model", no_onnx)
    at = channel_pruned_cnn_on_compare(app)
    at.button(key=keys.export_prepare("onnx")).click().run()
    assert not at.exception
    assert [error.value for error in at.error] == [fmt.literal(ONNX_FAILURE)]
    assert "Predictions that changed" in [header.value for header in at.subheader]

    assert set(prepare(at, "safetensors")) == {"digits_cnn-pruned.safetensors", "digits_cnn-pruned-architecture.json"}
    assert [error.value for error in at.error] == [fmt.literal(ONNX_FAILURE)], "the reason stays beside the ONNX box"


def test_the_summary_says_how_latency_was_measured_and_whether_the_change_is_real(app: AppTest) -> None:
    at = channel_pruned_cnn_on_compare(app)
    loaded, pruned = at.session_state[keys.CURRENT_MODEL], at.session_state[keys.PRUNED]
    latency = pe.measure_latency(
        {"original": loaded.bundle.model, "pruned": pruned.model}, loaded.bundle.example_input, batch_size=8, rounds=5
    )
    page = export.summary_html(loaded, pruned, latency)
    assert "Latency measured at batch 8, 1 thread(s), on cpu" in page
    assert "95 % interval" in page


def test_the_report_csv_neutralises_formula_like_layer_names() -> None:
    bundle = load_sample("digits_mlp")
    result = pe.apply_plan(bundle.model, pe.PruningPlan(global_ratio=0.3), bundle.example_input)
    report = result.report.assign(layer=["=1+2", "@SUM(A1)", "ok\r=1+1"])
    pruned = PrunedModel(dataclasses.replace(result, report=report), "pruned", "original")
    rows = list(csv.reader(io.StringIO(export.report_csv(pruned))))
    assert [row[0] for row in rows[1:]] == ["'=1+2", "'@SUM(A1)", "ok\r=1+1"], "one cell each, none a formula"
