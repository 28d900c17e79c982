"""The Compare page's export panel: take the pruned model, its plan and a report away.

Model files are written only when asked for ("Prepare …"), because a large model takes a
while to serialise and its bytes stay in memory while the download button exists. What
was prepared is kept per session for the pruned model it was made from; a format the
model cannot be written in shows the engine's reason in its own box, and the rest of
the page carries on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.offline
import streamlit as st

import prune_engine as pe
from prune_engine.export import csv_text
from ui.compare import view as compare
from ui.shared import charts, keys
from ui.shared.widgets import change_text
from workbench import fmt
from workbench.plans import describe_result
from workbench.reports import readable_report
from workbench.session import LoadedModel, PrunedModel

SUMMARY = "summary"
"""The kind under which the HTML summary is prepared, beside the model formats."""
MODEL_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".pt2", ".pkl", ".zip")
"""Extensions dropped from an uploaded model's file name before it names the exported files."""
SIDECAR_FORMATS = ("state_dict", "safetensors")
"""Formats that hold only weights: a channel-pruned model needs architecture.json to be rebuilt."""
SUMMARY_PLOT_HEIGHT = 460
FORMATS_PER_ROW = 2
"""Model formats side by side: two leave each box room for its explanation and its file names."""


@dataclass(frozen=True)
class FormatInfo:
    """How a model format is named in the panel and what it is for, in plain words."""

    title: str
    use: str


FORMATS: dict[str, FormatInfo] = {
    "state_dict": FormatInfo(
        "PyTorch state_dict",
        "The weights, for `model.load_state_dict(torch.load(path))` in your own code. A channel-pruned model has "
        "smaller layers than its class builds: the architecture.json downloaded beside it records their shapes, "
        "and `prune_engine.load_model(path, architecture=..., sidecar=json.load(open(that_file)))` rebuilds it "
        "(or upload both on the Model page).",
    ),
    "safetensors": FormatInfo(
        "safetensors",
        "The same weights in a format that holds only numbers, never code: safe to share and fast to load. "
        "Smaller layer shapes in architecture.json, as for the state_dict.",
    ),
    "torchscript": FormatInfo(
        "TorchScript",
        "The model with its forward pass compiled in: `torch.jit.load(path)` runs it without your Python class, "
        "also from C++ (LibTorch).",
    ),
    "onnx": FormatInfo(
        "ONNX",
        f"For ONNX Runtime, TensorRT, OpenVINO and other runtimes (opset {pe.export.ONNX_OPSET}, any batch size). "
        "Channel pruning makes this file smaller and faster; zeros from unstructured pruning do not.",
    ),
    "transformers": FormatInfo(
        "Hugging Face folder",
        "A zip of a transformers model folder (config.json with the pruned sizes, model.safetensors, the "
        "tokenizer): unzip it and load it with `AutoModel.from_pretrained(folder)` or the model's task class.",
    ),
}


@dataclass(frozen=True)
class Prepared:
    """The files made for one kind of download (file name → bytes), or the sentence saying why it failed."""

    fingerprint: str
    files: dict[str, bytes]
    error: str | None = None


def file_stem(name: str) -> str:
    """A model name made safe for a file name, without a model file's extension: "my model.pt" → "my_model"."""
    path = Path(name)
    if path.suffix.lower() in MODEL_SUFFIXES:
        name = path.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"


def model_files(loaded: LoadedModel, pruned: PrunedModel, fmt_name: str) -> dict[str, bytes]:
    """The pruned model in `fmt_name`, with architecture.json for the weights-only formats."""
    bundle = pe.export_bundle(pruned.model, fmt_name, loaded.bundle.example_input)
    stem = f"{file_stem(loaded.name)}-pruned"
    files = {f"{stem}{pe.EXPORT_FORMATS[fmt_name]}": bundle[f"model{pe.EXPORT_FORMATS[fmt_name]}"]}
    if fmt_name in SIDECAR_FORMATS:
        files[f"{stem}-architecture.json"] = bundle["architecture.json"]
    return files


def report_csv(pruned: PrunedModel) -> str:
    """The engine's per-layer report of the pruning result, as CSV."""
    return csv_text(pruned.result.report)


def headline_table(loaded: LoadedModel, pruned: PrunedModel, latency: pe.LatencyResult | None) -> pd.DataFrame:
    """The Compare page's headline figures as rows: figure, original, pruned, change."""
    figures, _ = compare.quality(loaded, pruned)
    figures = [*figures, compare.latency_figure(latency), *compare.size_figures(loaded, pruned)]
    rows = [
        (figure.label, figure.show(figure.original), figure.show(figure.pruned), change_text(figure) or fmt.MISSING)
        for figure in figures
    ]
    return pd.DataFrame(rows, columns=["Figure", "Original", "Pruned", "Change"])


def summary_html(loaded: LoadedModel, pruned: PrunedModel, latency: pe.LatencyResult | None) -> str:
    """A self-contained HTML page: headline figures, plots and the per-layer report, plotly.js embedded (offline)."""
    _, quality_note = compare.quality(loaded, pruned)
    figures = [compare.layer_figure(pruned)]
    if latency is not None:
        figures.append(charts.latency_samples(latency.samples))
    for figure in figures:
        figure.update_layout(margin={"l": 80, "b": 80}, height=SUMMARY_PLOT_HEIGHT)  # room for the axis titles
    plots = "\n".join(figure.to_html(full_html=False, include_plotlyjs=False) for figure in figures)
    name = html.escape(loaded.name)
    headline = headline_table(loaded, pruned, latency).to_html(index=False, border=0, classes="figures")
    report = readable_report(pruned.result.report).to_html(index=False, border=0, classes="report")
    measured = "" if latency is None else f"<p>{html.escape(compare.latency_setting(latency))}</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>PruneScope summary: {name}</title>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
<style>
body {{ font-family: sans-serif; color: #0f172a; max-width: 1100px; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
table.report {{ font-size: 0.85em; }}
table.report td {{ white-space: nowrap; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #e2e8f0; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
table.report td:last-child {{ text-align: left; white-space: normal; min-width: 16em; }}
.plotly-graph-div {{ margin-bottom: 2em; }}
pre {{ background: #f1f5f9; padding: 1em; overflow-x: auto; }}
</style>
</head>
<body>
<h1>{name}: before and after pruning</h1>
<p>Plan: {html.escape(describe_result(pruned.result))}</p>
<h2>Headline figures</h2>
{headline}
<p>{html.escape(quality_note)}</p>
{measured}
<h2>Plots</h2>
{plots}
<h2>Layer by layer</h2>
<div class="scroll">{report}</div>
<h2>The plan</h2>
<pre>{html.escape(pruned.plan.to_json())}</pre>
<p>Made with PruneScope.</p>
</body>
</html>
"""


def section(loaded: LoadedModel, pruned: PrunedModel, latency: pe.LatencyResult | None) -> None:
    """Download boxes for each model format, then the plan, the CSV report and the HTML summary."""
    st.caption(
        "Take the pruned model to where it will run. Each file is written when you ask for it; the original "
        "model is never changed."
    )
    prepared = _prepared(pruned)
    formats = pe.export_formats(pruned.model)
    for start in range(0, len(formats), FORMATS_PER_ROW):
        row = formats[start : start + FORMATS_PER_ROW]
        for column, fmt_name in zip(st.columns(FORMATS_PER_ROW, border=True), row, strict=False):
            with column:
                _format_box(loaded, pruned, fmt_name, prepared)
    stem = file_stem(loaded.name)
    plan_column, report_column, summary_column = st.columns(3, border=True)
    with plan_column:
        st.markdown("**The plan (JSON)**")
        st.caption("Load it again on the Prune page, or apply it in a pipeline with `prunescope apply`.")
        _download("Download the plan", pruned.plan.to_json(), f"{stem}-plan.json", "application/json", "plan")
    with report_column:
        st.markdown("**Per-layer report (CSV)**")
        st.caption("One row per layer: ratio asked, assigned and achieved; weights and parameters before and after.")
        _download("Download the report", report_csv(pruned), f"{stem}-pruning-report.csv", "text/csv", "report")
    with summary_column:
        st.markdown("**Summary (HTML)**")
        st.caption(
            "Headline figures (latency once measured above), plots and the layer table, in one page that opens "
            "offline in any browser."
        )
        label = "Prepare it again (latest figures)" if SUMMARY in prepared else "Prepare the summary"
        if st.button(label, key=keys.export_prepare("summary"), icon=":material/description:"):
            _prepare(prepared, SUMMARY, pruned, lambda: summary_files(loaded, pruned, latency))
        _offer(SUMMARY, prepared.get(SUMMARY), "text/html")


def summary_files(loaded: LoadedModel, pruned: PrunedModel, latency: pe.LatencyResult | None) -> dict[str, bytes]:
    """The HTML summary under its file name."""
    return {f"{file_stem(loaded.name)}-summary.html": summary_html(loaded, pruned, latency).encode()}


def _prepared(pruned: PrunedModel) -> dict[str, Prepared]:
    """This session's prepared files, without those made for an earlier pruned model."""
    prepared: dict[str, Prepared] = st.session_state.setdefault(keys.EXPORT_PREPARED, {})
    for kind in [kind for kind, entry in prepared.items() if entry.fingerprint != pruned.fingerprint]:
        del prepared[kind]
    return prepared


def _format_box(loaded: LoadedModel, pruned: PrunedModel, fmt_name: str, prepared: dict[str, Prepared]) -> None:
    info = FORMATS.get(fmt_name, FormatInfo(fmt_name, ""))
    st.markdown(f"**{info.title}** ({pe.EXPORT_FORMATS[fmt_name]})")
    if info.use:
        st.caption(info.use)
    if fmt_name not in prepared:
        slot = st.empty()
        if slot.button(f"Prepare {info.title}", key=keys.export_prepare(fmt_name), icon=":material/build:"):
            slot.empty()
            _prepare(prepared, fmt_name, pruned, lambda: model_files(loaded, pruned, fmt_name))
    _offer(fmt_name, prepared.get(fmt_name), "application/octet-stream")


def _prepare(
    prepared: dict[str, Prepared], kind: str, pruned: PrunedModel, make: Callable[[], dict[str, bytes]]
) -> None:
    with st.spinner("Writing the file…"):
        try:
            prepared[kind] = Prepared(pruned.fingerprint, make())
        except pe.PruneScopeError as error:
            prepared[kind] = Prepared(pruned.fingerprint, {}, str(error))


def _offer(kind: str, entry: Prepared | None, mime: str) -> None:
    if entry is None:
        return
    if entry.error is not None:
        st.error(fmt.literal(entry.error), icon=":material/error:")
        return
    for name, content in entry.files.items():
        file_mime = "application/json" if name.endswith(".json") else mime
        _download(f"{name} ({fmt.size(len(content))})", content, name, file_mime, f"{kind}_{name}")


def _download(label: str, data: str | bytes, file_name: str, mime: str, key: str) -> None:
    st.download_button(
        label,
        data=data,
        file_name=file_name,
        mime=mime,
        key=keys.export_download(key),
        on_click="ignore",
        icon=":material/download:",
    )
