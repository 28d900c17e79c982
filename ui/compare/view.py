"""The Compare page's parts: headline figures side by side, latency measured interleaved, the change
per layer, the confusion-matrix difference and the test examples whose prediction changed."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import prune_engine as pe
from prune_engine.metrics import device_memory
from ui.shared import caches, charts, explain, keys, runs, state
from ui.shared.widgets import Figure, figure_metric
from workbench import fmt
from workbench.plans import describe_result
from workbench.quality import PERPLEXITY
from workbench.session import LoadedModel, PrunedModel

BATCH_SIZES = (1, 8, 32, 64, 256)
DEFAULT_BATCH = 32
AUTO_MEASURE_MAX_PARAMS = 5_000_000
"""Pairs of models under this size are timed as soon as the page opens (about a second); larger ones on the button."""
KEEP_MEASUREMENTS = 8
CHANGED_SHOWN = 48
HEADLINE_COLUMNS = 2
"""Metrics per row on each side: wider ones keep long values ("12.04 ms", "Non-zero parameters") whole."""
IMAGE_PIXELS = 96
"""Small input images (8×8 digits) are shown enlarged to about this many pixels across."""
IMAGES_PER_ROW = 5


# --- headline --------------------------------------------------------------------------

AGREEMENT_HELP = "Share of test examples whose top-1 prediction is the same as the original's."


def quality(loaded: LoadedModel, pruned: PrunedModel) -> tuple[list[Figure], str]:
    """Accuracy, loss and agreement with labels, else agreement and cosine with the original; and which it is."""
    data = loaded.bundle.eval_data
    if data is None or loaded.data_fingerprint is None:
        return [], "This model has no evaluation data, so only size and speed can be compared."
    try:
        original, after = (torch.from_numpy(output) for output in _outputs(loaded, pruned))
        fidelity = pe.fidelity(after, original)
        before, now = caches.model_evaluation(loaded) or {}, caches.pruned_evaluation(loaded, pruned) or {}
    except pe.PruneScopeError as error:
        return [], f"The models could not be evaluated on the data: {error}"
    if pe.is_embedding_model(loaded.bundle.model):
        return embedding_quality(original, after, before, now, len(data))
    if PERPLEXITY.key in before:
        return language_quality(before, now, fidelity.get("agreement"), data)
    agreement = fidelity.get("agreement")
    same = Figure.share("Same prediction as original", 1.0, agreement, False, AGREEMENT_HELP)
    if "accuracy" in before:
        accuracy_help = "Share of test examples classified correctly."
        loss_help = "Cross-entropy on the test examples: lower is better."
        figures = [
            Figure.share("Accuracy", before["accuracy"], now.get("accuracy"), False, accuracy_help),
            Figure("Loss", before["loss"], now.get("loss"), _decimal, True, loss_help),
        ]
        return [*figures, same] if agreement is not None else figures, (
            f"Accuracy and loss on {len(data):,} labelled test examples."
        )
    cosine_help = "Mean cosine similarity of the output vectors with the original's: 1 means identical."
    figures = [Figure("Output cosine similarity", 1.0, fidelity["cosine"], _decimal, False, cosine_help)]
    return [same, *figures] if agreement is not None else figures, (
        "The data has no labels, so there is no accuracy: the pruned model is compared with the original's "
        f"outputs on {len(data):,} examples instead (top-1 agreement and output cosine similarity)."
    )


def embedding_quality(
    original: torch.Tensor, after: torch.Tensor, before: dict[str, float], now: dict[str, float], examples: int
) -> tuple[list[Figure], str]:
    """Paraphrase accuracy, same nearest neighbour and embedding cosine for a sentence-embedding model."""
    figures = [
        Figure.share(
            "Same nearest neighbour",
            1.0,
            pe.retrieval_agreement(after, original),
            False,
            "Share of sentences whose most similar other sentence is the same as with the original model.",
        ),
        Figure(
            "Embedding cosine similarity",
            1.0,
            pe.mean_cosine(after, original),
            _decimal,
            False,
            "Mean cosine similarity between each sentence's pruned and original embedding: 1 means identical.",
        ),
    ]
    if "paraphrase_accuracy" in before:
        figures.insert(
            0,
            Figure.share(
                "Paraphrase found first",
                before["paraphrase_accuracy"],
                now.get("paraphrase_accuracy"),
                False,
                "Share of sentences with a paraphrase in the set whose most similar sentence is one of its "
                "paraphrases, ranked above every unrelated sentence.",
            ),
        )
    return figures, (
        f"An embedding model has no labels to be right about: it is judged on {examples:,} sentences by whether "
        "paraphrases still come first, whether each sentence finds the same nearest neighbour as before, and how "
        "close its vectors stay to the original's."
    )


def language_quality(
    before: dict[str, float], now: dict[str, float], agreement: float | None, data: pe.EvalData
) -> tuple[list[Figure], str]:
    """Perplexity and how often the pruned model predicts the same next token, for a language model."""
    figures = [
        Figure(
            PERPLEXITY.label,
            before[PERPLEXITY.key],
            now.get(PERPLEXITY.key),
            PERPLEXITY.show,
            True,
            PERPLEXITY.help,
            step=0.01,
        ),
        Figure.share(
            "Same next token",
            1.0,
            agreement,
            False,
            "Share of positions where the pruned model's most likely next token is the original's.",
        ),
    ]
    sequences, tokens = data.inputs.shape[:2]
    return figures, (
        f"A language model is judged on {sequences:,} held-out sequences of {tokens} tokens: its perplexity (lower "
        "is better) and how often its most likely next token stays the original's."
    )


def continuations(loaded: LoadedModel, pruned: PrunedModel) -> None:
    """How the original and the pruned language model continue the sample's prompt (greedy, so repeatable)."""
    prompt = loaded.bundle.metadata.get("prompt")
    if not prompt:
        return
    before = caches.continuation(loaded)
    after = caches.continuation(loaded, pruned.model, pruned.fingerprint)
    st.markdown(f"**Prompt:** {fmt.literal(str(prompt))}")
    left, right = st.columns(2)
    left.markdown(f"*Original continues:* {fmt.literal(before)}")
    right.markdown(f"*Pruned continues:* {fmt.literal(after)}")
    st.caption(
        "Each model picks the most likely next byte every time, so the text is repeatable. A model this "
        "small, trained for minutes on Python's documentation, writes word salad even unpruned: look at how far "
        "the pruned model's text drifts from the original's, not at the prose."
    )


def size_figures(loaded: LoadedModel, pruned: PrunedModel) -> list[Figure]:
    """Parameters, non-zeros, sparsity, FLOPs, dense and sparse bytes of both models."""
    before, after = caches.model_summary(loaded), caches.pruned_summary(loaded, pruned)

    def figure(label: str, key: str, show: fmt.Formatter, help: str) -> Figure:
        return Figure(label, before[key], after[key], show, True, help)

    return [
        figure("Parameters", "params", fmt.count, "Weights and biases; only removed channels lower it."),
        figure("Non-zero parameters", "nonzero_params", fmt.count, "Parameters that are not exactly zero."),
        Figure.share("Sparsity", before["sparsity"], after["sparsity"], None, "Share of all parameters that are zero."),
        figure(
            "FLOPs per example",
            "flops",
            fmt.count,
            "Dense work of one forward pass (a multiply-add counts as 2): zeros are multiplied too.",
        ),
        figure("Dense size", "dense_bytes", fmt.size, "The weights as ordinary (dense) tensors, no file overhead."),
        figure(
            "Sparse size",
            "sparse_bytes",
            fmt.size,
            "The same tensors with each weight matrix kept in sparse (CSR) form where that is smaller: equal to "
            "the dense size until enough weights are zero.",
        ),
    ]


def latency_figure(result: pe.LatencyResult | None) -> Figure:
    """Median latency of both models from one interleaved measurement (or nothing yet), and whether the
    difference is larger than the measurement's noise."""
    if result is None:
        return Figure("Latency (median)", None, None, fmt.duration, True, "Not measured yet: see Latency below.")
    table = result.table.set_index("model")
    setting, pruned = table.iloc[0], table.loc["pruned"]
    return Figure(
        "Latency (median)",
        float(table.loc["original", "median_ms"]),
        float(pruned["median_ms"]),
        fmt.duration,
        True,
        f"Median time of one forward pass at batch {setting['batch_size']}, {setting['threads']} thread(s), "
        f"{setting['device']}. Speed-up {speedup_text(pruned)}.",
        measurable=bool(pruned["significant"]),
    )


def speedup_text(row: pd.Series) -> str:
    """A speed-up with its 95 % interval, or "no measurable change" when the interval is within the noise."""
    interval = f"{row['speedup_low']:.2f}–{row['speedup_high']:.2f}×"
    if not row["significant"]:
        return f"within the noise (95 % interval {interval})"
    return f"{row['speedup']:.2f}× (95 % interval {interval})"


def _duration(milliseconds: float) -> str:
    return fmt.duration(None if pd.isna(milliseconds) else float(milliseconds))


def headline(loaded: LoadedModel, pruned: PrunedModel, latency: pe.LatencyResult | None) -> None:
    """The two models side by side: the original's figures on the left, the pruned model's with changes on the right."""
    figures, quality_note = quality(loaded, pruned)
    figures = [*figures, latency_figure(latency), *size_figures(loaded, pruned)]
    sides = st.columns(2, gap="large", border=True)
    titles = {"original": f"Original · {loaded.name}", "pruned": f"Pruned · {describe_result(pruned.result)}"}
    for side, box in zip(("original", "pruned"), sides, strict=True):
        with box:
            st.markdown(f"##### {fmt.literal(titles[side])}")
            for start in range(0, len(figures), HEADLINE_COLUMNS):
                row = figures[start : start + HEADLINE_COLUMNS]
                for column, figure in zip(st.columns(HEADLINE_COLUMNS), row, strict=False):
                    figure_metric(column, figure, side)
    st.caption(quality_note)
    made_by = runs.made_by(pruned)
    if made_by is not None:
        st.caption(
            f"How it was made: {fmt.literal(made_by)}. Its plan alone does not reproduce it: export the model itself."
        )
    continuations(loaded, pruned)
    if pruned.plan.granularity == "unstructured":
        st.info(explain.UNSTRUCTURED_NOTE, icon=":material/info:")
    elif pruned.plan.granularity == "n:m":
        st.info(explain.NM_NOTE, icon=":material/info:")


# --- latency ---------------------------------------------------------------------------


PRECISIONS = {"float32": "float32", "float16": "float16 (half)", "bfloat16": "bfloat16"}
"""Precisions offered for timing on a GPU; the CPU times the models as they are."""
SPARSE_MIN = 0.9
"""Linear layers at least this sparse run on sparse kernels when "sparse kernels" is ticked: below that,
CSR matrix products were slower than dense ones on this CPU (0.5–0.6× at 50 %, about 1× at 70 %)."""
SPARSE_NAME = "pruned, sparse kernels"


@dataclass(frozen=True)
class LatencySetting:
    """How the two models are timed: the latency table is cached per setting and per pair of models."""

    batch: int
    threads: int
    device: str
    precision: str | None
    sparse: bool


def latency_section(loaded: LoadedModel, pruned: PrunedModel) -> pe.LatencyResult | None:
    """Batch size, threads, device, precision and sparse kernels; the interleaved measurement (cached per
    setting) with the speed-up predicted before pruning, its table and plot."""
    setting = _latency_setting(pruned)
    key = (loaded.fingerprint, pruned.fingerprint, setting)
    results = caches.session_memo(keys.COMPARE_LATENCY_RESULTS)
    measured = results.get(key)
    small = int(caches.model_summary(loaded)["params"]) < AUTO_MEASURE_MAX_PARAMS
    again = st.button(
        "Measure again" if measured is not None or small else "Measure latency",
        key=keys.COMPARE_MEASURE,
        icon=":material/timer:",
    )
    if again or (measured is None and small):
        measured = _measure(loaded, pruned, setting)
        if measured is not None:
            caches.put_latest(results, key, measured, KEEP_MEASUREMENTS)
    if measured is None:
        st.caption("Not measured yet: press Measure latency (it takes a few seconds on a large model).")
        return None
    st.caption(
        f"Both models timed in one run, taking turns, after a warm-up: {int(measured.table['rounds'].iloc[0])} "
        f"timed blocks each at batch {setting.batch}, {setting.threads} thread(s), on {setting.device}, added until "
        "the speed-up's 95 % interval (a bootstrap over the paired blocks) was within ±10 % or the time budget ran "
        f"out. A change smaller than {pe.MEASURABLE_CHANGE:.0%} either way counts as no measurable change."
    )
    _predicted_beside_measured(loaded, pruned, setting, measured)
    table, plot = st.columns([1.3, 1])
    shown = measured.table.assign(
        verdict=[speedup_text(row) for _, row in measured.table.iterrows()],
        median=measured.table["median_ms"].map(_duration),  # in the unit the headline shows ("55.8 µs")
        iqr=measured.table["iqr_ms"].map(_duration),
    )
    shown.loc[0, "verdict"] = "the reference"
    table.dataframe(
        shown[["model", "median", "iqr", "verdict", "batch_size", "threads", "device", "dtype"]],
        hide_index=True,
        placeholder=fmt.MISSING,
        column_config={
            "median": st.column_config.TextColumn("median", help="Per call of the whole batch."),
            "iqr": st.column_config.TextColumn("IQR", help="Spread of the timed blocks: upper minus lower quartile."),
            "verdict": st.column_config.TextColumn(
                "speed-up", help="Original's median ÷ this one's, with its 95 % interval.", width="large"
            ),
            "batch_size": st.column_config.NumberColumn("batch"),
            "dtype": st.column_config.TextColumn("precision", help="What each model ran in."),
        },
    )
    plot.plotly_chart(charts.latency_samples(measured.samples))
    memory = device_memory(setting.device)
    if memory is not None:
        st.caption(
            f"{setting.device} memory: {fmt.size(memory['allocated'])} allocated by this server, "
            f"{fmt.size(memory['free'])} free of {fmt.size(memory['total'])}."
        )
    return measured


def _latency_setting(pruned: PrunedModel) -> LatencySetting:
    """The latency widgets; the device defaults to the one chosen in the sidebar."""
    devices = pe.available_devices()
    if st.session_state.get(keys.COMPARE_DEVICE) not in devices:
        st.session_state[keys.COMPARE_DEVICE] = state.current_device()
    batch_column, threads_column, device_column, precision_column = st.columns(4, vertical_alignment="bottom")
    batch = batch_column.selectbox(
        "Batch size", BATCH_SIZES, index=BATCH_SIZES.index(DEFAULT_BATCH), key=keys.COMPARE_BATCH
    )
    threads = threads_column.number_input(
        "Threads",
        min_value=1,
        max_value=os.cpu_count() or 1,
        value=1,
        key=keys.COMPARE_THREADS,
        help="One thread by default: with as many threads as cores, anything else running on the machine takes "
        "a core away and the time can double (on a 2-core machine, 2 threads ran 2× slower while another job "
        "ran). One thread gives stable numbers that compare fairly.",
    )
    device = device_column.selectbox(
        "Device", devices, key=keys.COMPARE_DEVICE, help="The sidebar's device by default; CUDA when present."
    )
    precision = None
    if device != "cpu":
        precision = precision_column.selectbox(
            "Precision",
            list(PRECISIONS),
            key=keys.COMPARE_PRECISION,
            format_func=PRECISIONS.get,
            help="Half precision is how models are usually served on a GPU; a layer with no kernel for it runs "
            "in float32, and the table says so.",
        )
    sparse = False
    if pruned.plan.granularity in ("unstructured", "n:m") and device == "cpu":
        sparse = precision_column.toggle(
            "Sparse kernels too",
            key=keys.COMPARE_SPARSE,
            help=f"Also time the pruned model with its Linear layers at least {SPARSE_MIN:.0%} sparse on sparse "
            "(CSR) matrix kernels, in the same interleaved run. Each such layer is timed first at batch 1 and 32 "
            "and stays dense where the sparse kernel was not faster (small layers, few rows).",
        )
    return LatencySetting(batch, int(threads), device, None if precision == "float32" else precision, sparse)


def _predicted_beside_measured(
    loaded: LoadedModel, pruned: PrunedModel, setting: LatencySetting, measured: pe.LatencyResult
) -> None:
    """The speed-up the engine predicted from the plan, before pruning, beside the one measured."""
    if setting.precision is not None or setting.device != "cpu":
        return
    if pruned.result.preview is None:
        st.caption("No prediction: this model was trained after pruning, so its plan alone does not describe it.")
        return
    row = measured.table.set_index("model").loc["pruned"]
    if pruned.plan.granularity in ("unstructured", "n:m"):
        st.markdown(
            f"**Predicted before pruning:** no change (no layer changes shape) · **measured:** {speedup_text(row)}."
        )
        st.caption(SPARSE_NOTE)
        return
    try:
        predicted = caches.predicted_speedup(
            loaded.fingerprint, pruned.fingerprint, setting.batch, loaded, pruned.model
        )
    except pe.PruneScopeError as error:
        st.caption(f"No prediction for this plan: {fmt.literal(str(error))}")
        return
    st.markdown(
        f"**Predicted before pruning:** {predicted:.2f}× (the Prune page's prediction: each layer that changes "
        "shape timed alone near its new width) · "
        f"**measured:** {speedup_text(row)}."
    )


SPARSE_NOTE = (
    "Zeros do not make dense kernels faster, so the prediction for single weights and N:M is no change. Sparse "
    "(CSR) kernels skip the zeros but pay for the bookkeeping: on this CPU they lost to dense kernels below about "
    "70 % zeros, broke even near 70 %, and won 2–3.6× at 90 % and 7–14× at 95 % (a 3072×768 layer, 128 tokens). "
    "On a small layer the fixed cost of each call decides, so each sparse layer is timed before it is converted."
)


def _measure(loaded: LoadedModel, pruned: PrunedModel, setting: LatencySetting) -> pe.LatencyResult | None:
    models = {"original": loaded.bundle.model, "pruned": pruned.model}
    if setting.sparse:
        models[SPARSE_NAME] = caches.sparse_copy(pruned.fingerprint, SPARSE_MIN, setting.threads, pruned.model)
    with st.spinner("Timing the models, taking turns…"):
        try:
            return pe.measure_latency(
                models,
                loaded.bundle.example_input,
                batch_size=setting.batch,
                threads=setting.threads,
                device=setting.device,
                dtype=None if setting.precision is None else getattr(torch, setting.precision),
            )
        except pe.PruneScopeError as error:
            st.error(fmt.literal(str(error)), icon=":material/error:")
            return None


# --- layers and predictions ------------------------------------------------------------


def layer_figure(pruned: PrunedModel) -> go.Figure:
    """Per-layer bars before and after: parameters when layers shrink (channels, heads), non-zero weights otherwise."""
    report = pruned.result.report
    if pruned.plan.granularity in ("channel", "head"):
        return charts.layer_before_after(report["layer"], report["params_before"], report["params_after"], "parameters")
    return charts.layer_before_after(
        report["layer"], report["nonzero_before"], report["nonzero_after"], "non-zero weights"
    )


def latency_setting(result: pe.LatencyResult) -> str:
    """How a latency measurement was made and what it found, in one sentence (for reports)."""
    table = result.table.set_index("model")
    setting, pruned = table.iloc[0], table.loc["pruned"]
    return (
        f"Latency measured at batch {setting['batch_size']}, {setting['threads']} thread(s), on {setting['device']}, "
        f"{int(setting['rounds'])} interleaved rounds: {fmt.duration(float(setting['median_ms']))} (original), "
        f"{fmt.duration(float(pruned['median_ms']))} (pruned); speed-up {speedup_text(pruned)}."
    )


def layer_changes(loaded: LoadedModel, pruned: PrunedModel) -> None:
    """Per-layer bars before and after, one layer's weight histogram before and after, and the engine's report."""
    report = pruned.result.report
    st.plotly_chart(layer_figure(pruned))
    weight_gap(loaded, pruned)
    if bool(report["kept_changed"].any()):
        changed = ", ".join(report.loc[report["kept_changed"], "layer"].head(6))
        st.info(
            f"SparseGPT also changed the weights it kept (in {fmt.literal(changed)}…), to make up for the ones it "
            "removed: these layers' histograms move as a whole, not only at zero.",
            icon=":material/info:",
        )
    with st.expander("The engine's report, layer by layer", icon=":material/table:"):
        st.dataframe(
            report,
            hide_index=True,
            column_config={
                "target_ratio": st.column_config.NumberColumn("asked", format="percent"),
                "assigned_ratio": st.column_config.NumberColumn("assigned", format="percent"),
                "achieved_ratio": st.column_config.NumberColumn("achieved", format="percent"),
            },
        )


HISTOGRAM_BINS = 80


def weight_gap(loaded: LoadedModel, pruned: PrunedModel) -> None:
    """One pruned layer's weight values before and after on the same bins: the gap that pruning cuts around zero."""
    report = pruned.result.report
    lost = report[report["status"] == pe.LayerStatus.PRUNED]
    if lost.empty or not lost["weights_after"].gt(0).any():
        return
    layers = lost.loc[lost["weights_after"] > 0, "layer"].tolist()
    if st.session_state.get(keys.COMPARE_HISTOGRAM_LAYER) not in layers:
        largest = lost.loc[lost["weights_after"] > 0].sort_values("weights_before", ascending=False)
        st.session_state[keys.COMPARE_HISTOGRAM_LAYER] = largest["layer"].iloc[0]
    layer = st.selectbox("Weights of layer", layers, key=keys.COMPARE_HISTOGRAM_LAYER, width=420)
    before = caches.histogram(loaded.fingerprint, layer, loaded.bundle.model, HISTOGRAM_BINS)
    edges = before[1]
    after = caches.histogram(
        pruned.fingerprint, layer, pruned.model, HISTOGRAM_BINS, (float(edges[0]), float(edges[-1]))
    )
    st.plotly_chart(charts.histograms_before_after(before, after, f"weight values of {layer}", "weights", "pruning"))
    row = lost.set_index("layer").loc[layer]
    zeros = int(row["weights_after"] - row["nonzero_after"])
    st.caption(
        f"{fmt.literal(layer)} keeps {int(row['weights_after']):,} of its {int(row['weights_before']):,} weights; "
        f"{zeros:,} of them are now exactly zero. Magnitude pruning takes the values nearest zero, so the "
        "histogram loses its middle and gains a spike at zero; removed channels lower every bar instead."
    )


def prediction_changes(loaded: LoadedModel, pruned: PrunedModel) -> None:
    """The confusion-matrix difference and the test examples whose prediction changed (as images when they are)."""
    data = loaded.bundle.eval_data
    if data is not None and pe.is_embedding_model(loaded.bundle.model):
        neighbour_changes(loaded, pruned)
        return
    if data is not None and PERPLEXITY.key in (caches.model_evaluation(loaded) or {}):
        st.caption("A language model predicts the next token: how often it stays the same is in the figures above.")
        return
    if data is None or data.labels is None or data.labels.dtype.is_floating_point:
        st.caption("Needs labelled classification data, which this model does not have.")
        return
    try:
        original, after = (output.argmax(axis=1) for output in _outputs(loaded, pruned))
    except (pe.PruneScopeError, ValueError) as error:
        st.caption(f"The predictions could not be compared: {fmt.literal(str(error))}")
        return
    labels = data.labels.long().reshape(-1).numpy()
    classes = int(max(labels.max(), original.max(), after.max())) + 1
    difference = _confusion(labels, after, classes) - _confusion(labels, original, classes)
    changed = np.flatnonzero(original != after)
    fixed, broken = (
        int(((after == labels) & (original != labels)).sum()),
        int(((original == labels) & (after != labels)).sum()),
    )
    left, right = st.columns([1, 1])
    left.plotly_chart(charts.confusion_difference(difference, [str(c) for c in range(classes)]))
    with right:
        st.markdown(
            f"**{len(changed)} of {len(labels):,}** test examples get another prediction after pruning: "
            f"right → wrong **{broken}**, wrong → right **{fixed}**, "
            f"wrong → another wrong answer **{len(changed) - broken - fixed}**."
        )
        if len(changed):
            _changed_examples(data.inputs, changed[:CHANGED_SHOWN], original, after, labels)
        if len(changed) > CHANGED_SHOWN:
            st.caption(f"The first {CHANGED_SHOWN} are shown.")
    st.caption(
        "In the matrix, rows are the true digit and columns the prediction; each cell is how many more (+) or "
        "fewer (−) test examples land there after pruning. Red marks a change for the worse (fewer right "
        "answers on the diagonal, more mistakes off it), blue a change for the better."
    )


def neighbour_changes(loaded: LoadedModel, pruned: PrunedModel) -> None:
    """For an embedding model: the sentences whose nearest neighbour changed, with both neighbours."""
    original, after = (torch.from_numpy(output) for output in _outputs(loaded, pruned))
    before, now = pe.nearest_neighbours(original).numpy(), pe.nearest_neighbours(after).numpy()
    changed = np.flatnonzero(before != now)
    texts = loaded.bundle.metadata.get("texts")
    st.markdown(
        f"An embedding model makes no predictions; what can change is which sentence each one finds most similar. "
        f"**{len(changed)} of {len(before):,}** sentences find another nearest neighbour after pruning."
    )
    if not len(changed):
        return
    shown = changed[:CHANGED_SHOWN]
    if isinstance(texts, list) and len(texts) == len(before):
        table = {
            "sentence": [texts[i] for i in shown],
            "original's nearest": [texts[before[i]] for i in shown],
            "pruned model's nearest": [texts[now[i]] for i in shown],
        }
    else:
        table = {"example": shown, "original's nearest": before[shown], "pruned model's nearest": now[shown]}
    st.dataframe(pd.DataFrame(table), hide_index=True)
    if len(changed) > CHANGED_SHOWN:
        st.caption(f"The first {CHANGED_SHOWN} are shown.")


def _changed_examples(
    inputs: torch.Tensor, indices: np.ndarray, original: np.ndarray, after: np.ndarray, labels: np.ndarray
) -> None:
    captions = [f"{original[i]} → {after[i]} (true {labels[i]})" for i in indices]
    images = [_as_image(inputs[int(i)]) for i in indices]
    if any(image is None for image in images):
        table = {"example": indices, "original": original[indices], "pruned": after[indices], "true": labels[indices]}
        st.dataframe(pd.DataFrame(table), hide_index=True)
        return
    for start in range(0, len(images), IMAGES_PER_ROW):
        row = zip(images[start : start + IMAGES_PER_ROW], captions[start : start + IMAGES_PER_ROW], strict=True)
        for column, (image, caption) in zip(st.columns(IMAGES_PER_ROW), row, strict=False):
            column.image(image, caption=caption, clamp=True, width="stretch")
    st.caption("Under each image: the original's prediction → the pruned model's (the true label).")


def _as_image(example: torch.Tensor) -> np.ndarray | None:
    """A small single-channel image scaled to 0…1 and enlarged (nearest neighbour); None if it is not one."""
    array = example.detach().float().cpu().numpy()
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or max(array.shape) > IMAGE_PIXELS:
        return None
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    factor = max(IMAGE_PIXELS // max(array.shape), 1)
    return np.kron(scaled, np.ones((factor, factor)))


def _confusion(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def _outputs(loaded: LoadedModel, pruned: PrunedModel) -> tuple[np.ndarray, np.ndarray]:
    data = loaded.bundle.eval_data
    assert data is not None and loaded.data_fingerprint is not None
    return (
        caches.outputs(loaded.fingerprint, loaded.data_fingerprint, loaded.bundle.model, data),
        caches.outputs(pruned.fingerprint, loaded.data_fingerprint, pruned.model, data),
    )


def _decimal(value: float | None) -> str:
    return fmt.MISSING if value is None else f"{value:.3f}"
