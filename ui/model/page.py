"""Model: choose the model to work on and see what it is made of."""

from __future__ import annotations

import streamlit as st

import prune_engine as pe
from ui.model import upload
from ui.model.picker import sample_picker
from ui.shared import caches, keys
from ui.shared.widgets import layer_table, require_model
from workbench import capabilities, fmt, quality
from workbench.session import LoadedModel, ModelSource

GUIDE_HINT = (
    "**New here? A ten-minute tour** — the guide `docs/teaching.md` tells it step by step, with pictures.\n\n"
    "1. Open **Prune** and press the **50 %** preset: half the weights of digits_mlp become zero, and accuracy "
    "barely moves.\n"
    "2. Open **Compare**: the weight histogram now has a gap around zero.\n"
    "3. Back on **Prune**, press **90 %**: accuracy falls, while Compare shows the same FLOPs and latency — zeros "
    "only save storage.\n"
    "4. Pick **digits_cnn** on this page, then **Prune** → **Whole channels**, 50 %: the model really shrinks, "
    "and Compare times the speed-up against the prediction."
)
"""The Model page's first-visit hint: the guide's ten-minute demo in one breath."""


def guide_hint() -> None:
    """Point a first-time visitor to the guide's steps, until they dismiss it for this browser session."""
    if st.session_state.get(keys.MODEL_GUIDE_HINT_HIDDEN):
        return
    with st.container(border=True):
        st.markdown(GUIDE_HINT)
        st.button(
            "Hide this hint", key=keys.MODEL_GUIDE_HINT_DISMISS, on_click=_hide_guide_hint, icon=":material/close:"
        )


def _hide_guide_hint() -> None:
    st.session_state[keys.MODEL_GUIDE_HINT_HIDDEN] = True


def overview(loaded: LoadedModel) -> None:
    """Name, description and the headline numbers: accuracy, parameters, FLOPs, size."""
    bundle = loaded.bundle
    summary = caches.model_summary(loaded)
    try:
        evaluation = caches.model_evaluation(loaded) or {}
    except pe.PruneScopeError as error:
        st.warning(f"The model could not be evaluated on its data: {error}", icon=":material/warning:")
        evaluation = {}
    st.subheader(fmt.literal(bundle.name))
    if bundle.description:
        st.markdown(fmt.literal(bundle.description))
    columns = st.columns(5)
    metric = quality.headline_metric(evaluation) or quality.ACCURACY
    columns[0].metric(metric.label, metric.show(evaluation.get(metric.key)), help=metric.help)
    columns[1].metric("Parameters", fmt.count(summary["params"]), help=f"{summary['params']:,} weights and biases.")
    columns[2].metric(
        "FLOPs per example",
        fmt.count(summary["flops"]),
        help="Floating-point operations of one forward pass on one example; a multiply-add counts as two.",
    )
    columns[3].metric(
        "Dense size",
        fmt.size(summary["dense_bytes"]),
        help="The weights as ordinary tensors, as Compare counts them; the saved file is "
        f"{fmt.size(summary['size_bytes'])}.",
    )
    columns[4].metric("Sparsity", fmt.percent(summary["sparsity"]), help="Share of all parameters that are zero.")
    st.caption(accuracy_note(bundle, evaluation, loaded.source))
    prompt = bundle.metadata.get("prompt")
    if isinstance(prompt, str):
        st.markdown(f"**It continues** “{fmt.literal(prompt)}” **with:** {fmt.literal(caches.continuation(loaded))}")
    if bundle.metadata.get("random_data"):
        st.warning(upload.RANDOM_WARNING, icon=":material/warning:")
    if bundle.metadata.get("nonfinite_weights"):
        st.warning(
            fmt.literal(upload.nonfinite_warning(bundle.metadata["nonfinite_weights"])), icon=":material/warning:"
        )
    if loaded.source == "upload" and bundle.train_data is None:
        st.caption(capabilities.NO_TRAINING)


def accuracy_note(bundle: pe.ModelBundle, evaluation: dict[str, float], source: ModelSource = "sample") -> str:
    """Where the accuracy figure comes from, in one sentence."""
    if "perplexity" in evaluation:
        return (
            f"A language model has no accuracy: this is its perplexity per token on {int(evaluation['examples']):,} "
            "held-out sequences it never saw in training (a model guessing uniformly would score the vocabulary "
            "size). Compare adds how often the pruned model still predicts the same next token."
        )
    if "paraphrase_accuracy" in evaluation:
        return (
            f"An embedding model has no accuracy: on {int(evaluation['examples']):,} sentences, this is how often "
            "a sentence's nearest neighbour is one of its paraphrases. Compare adds how close the pruned "
            "model's embeddings stay to these (cosine, same nearest neighbour)."
        )
    if "accuracy" not in evaluation:
        return (
            "No accuracy: there is no labelled evaluation data the model could be scored on. "
            "Compare measures fidelity to the original instead (agreement, cosine similarity)."
        )
    examples = len(bundle.eval_data) if bundle.eval_data is not None else 0
    if source == "upload":
        return f"Accuracy measured here on the {examples:,} labelled examples of the uploaded data."
    note = f"Accuracy measured here on {examples:,} test examples the model never saw in training"
    recorded = bundle.metadata.get("accuracy")
    if isinstance(recorded, float):
        note += f"; {fmt.percent(recorded)} was recorded when it was trained"
    return note + "."


def layers(loaded: LoadedModel) -> None:
    """The table of prunable layers."""
    stats = caches.model_layers(loaded)
    st.subheader("Layers")
    st.caption(
        f"The {len(stats)} layers that pruning can work on (Linear and Conv), in the order the model defines them."
    )
    layer_table(stats, int(caches.model_summary(loaded)["params"]))


def render() -> None:
    """Draw the page."""
    st.title("Model")
    guide_hint()
    samples, uploads = st.tabs(["Sample models", "Upload your own model"])
    with samples:
        st.markdown(
            "Choose the model to inspect and prune. The sample models ship trained, "
            "together with the test data they are scored on."
        )
        sample_picker()
    with uploads:
        upload.section()
    loaded_model = require_model()
    overview(loaded_model)
    layers(loaded_model)
