"""The Compare page's parts: headline figures side by side, latency measured interleaved, the change
per layer, the confusion-matrix difference and the test examples whose prediction changed."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import prune_engine as pe
from ui.shared import caches, charts, explain, keys
from ui.shared.widgets import Figure, figure_metric
from workbench import fmt
from workbench.plans import describe_plan
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


def headline(loaded: LoadedModel, pruned: PrunedModel, latency: pe.LatencyResult | None) -> None:
    """The two models side by side: the original's figures on the left, the pruned model's with changes on the right."""
    figures, quality_note = quality(loaded, pruned)
    figures = [*figures, latency_figure(latency), *size_figures(loaded, pruned)]
    sides = st.columns(2, gap="large", border=True)
    titles = {"original": f"Original · {loaded.name}", "pruned": f"Pruned · {describe_plan(pruned.plan)}"}
    for side, box in zip(("original", "pruned"), sides, strict=True):
        with box:
            st.markdown(f"##### {fmt.literal(titles[side])}")
            for start in range(0, len(figures), HEADLINE_COLUMNS):
                row = figures[start : start + HEADLINE_COLUMNS]
                for column, figure in zip(st.columns(HEADLINE_COLUMNS), row, strict=False):
                    figure_metric(column, figure, side)
    st.caption(quality_note)
    if pruned.plan.granularity == "unstructured":
        st.info(explain.UNSTRUCTURED_NOTE, icon=":material/info:")
    elif pruned.plan.granularity == "n:m":
        st.info(explain.NM_NOTE, icon=":material/info:")


# --- latency ---------------------------------------------------------------------------


def latency_section(loaded: LoadedModel, pruned: PrunedModel) -> pe.LatencyResult | None:
    """Batch size, threads and device; the interleaved measurement (cached per setting) with its table and plot."""
    devices = pe.available_devices()
    batch_column, threads_column, device_column, button_column = st.columns([1, 1, 1, 1.2], vertical_alignment="bottom")
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
        "Device", devices, key=keys.COMPARE_DEVICE, help="CPU, or a CUDA GPU when one is present."
    )
    key = (loaded.fingerprint, pruned.fingerprint, batch, int(threads), device)
    results = caches.session_memo(keys.COMPARE_LATENCY_RESULTS)
    measured = results.get(key)
    small = int(caches.model_summary(loaded)["params"]) < AUTO_MEASURE_MAX_PARAMS
    again = button_column.button(
        "Measure again" if measured is not None or small else "Measure latency",
        key=keys.COMPARE_MEASURE,
        icon=":material/timer:",
    )
    if again or (measured is None and small):
        measured = _measure(loaded, pruned, batch, int(threads), device)
        if measured is not None:
            caches.put_latest(results, key, measured, KEEP_MEASUREMENTS)
    if measured is None:
        st.caption("Not measured yet: press Measure latency (it takes a few seconds on a large model).")
        return None
    st.caption(
        f"Both models timed in one run, taking turns, after a warm-up: {int(measured.table['rounds'].iloc[0])} "
        f"timed blocks each at batch {batch}, {threads} thread(s), on {device}, added until the speed-up's "
        "95 % interval (a bootstrap over the paired blocks) was within ±10 % or the time budget ran out. A change "
        f"smaller than {pe.MEASURABLE_CHANGE:.0%} either way counts as no measurable change."
    )
    table, plot = st.columns([1.3, 1])
    shown = measured.table.assign(verdict=[speedup_text(row) for _, row in measured.table.iterrows()])
    shown.loc[0, "verdict"] = "the reference"
    table.dataframe(
        shown[["model", "median_ms", "iqr_ms", "verdict", "batch_size", "threads", "device"]],
        hide_index=True,
        placeholder=fmt.MISSING,
        column_config={
            "median_ms": st.column_config.NumberColumn("median (ms)", format="%.3f"),
            "iqr_ms": st.column_config.NumberColumn("IQR (ms)", format="%.3f"),
            "verdict": st.column_config.TextColumn(
                "speed-up", help="Original's median ÷ this one's, with its 95 % interval.", width="medium"
            ),
            "batch_size": st.column_config.NumberColumn("batch"),
        },
    )
    plot.plotly_chart(charts.latency_samples(measured.samples))
    return measured


def _measure(
    loaded: LoadedModel, pruned: PrunedModel, batch: int, threads: int, device: str
) -> pe.LatencyResult | None:
    with st.spinner("Timing both models, taking turns…"):
        try:
            return pe.measure_latency(
                {"original": loaded.bundle.model, "pruned": pruned.model},
                loaded.bundle.example_input,
                batch_size=batch,
                threads=threads,
                device=device,
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


def layer_changes(pruned: PrunedModel) -> None:
    """Per-layer bars before and after and the engine's report."""
    report = pruned.result.report
    st.plotly_chart(layer_figure(pruned))
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


def prediction_changes(loaded: LoadedModel, pruned: PrunedModel) -> None:
    """The confusion-matrix difference and the test examples whose prediction changed (as images when they are)."""
    data = loaded.bundle.eval_data
    if data is not None and pe.is_embedding_model(loaded.bundle.model):
        neighbour_changes(loaded, pruned)
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
