"""The Prune page under head pruning: one slider per attention layer, in heads, and a preview of the cut.

Like `ui.layer_controls`, the session's plan is the one source of truth: a layer follows the
global slider until its own slider moves, which locks it (its ratio is `heads removed / heads`);
untick Lock to let it follow again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

import prune_engine as pe
from ui.prune import preview as plan_preview
from ui.prune.controls import seed, update_plan
from ui.shared import charts, keys, state
from workbench import fmt
from workbench import plans as edits
from workbench.plans import criterion_label
from workbench.session import LoadedModel

COLUMNS = 3

EXPLANATION = (
    "**What is an attention head?** In each transformer layer, attention lets every word look at the "
    "other words of the sentence to decide what it means here. A layer does this several times side by "
    "side, each time with its own small projections (query, key and value): each of these parallel "
    "“ways of looking” is a *head*. MiniLM has 12 heads in each of its 6 layers.\n\n"
    "**What head pruning removes:** a whole head: its rows of the query, key and value matrices and its "
    "columns of the output matrix. The layer then computes fewer projections and one attention map fewer "
    "per head removed, so the model really becomes smaller and faster, unlike zeroing single weights. "
    "Many heads turn out to be redundant, so a few can go with little change.\n\n"
    "**What to expect:** the feed-forward part of each layer (about two thirds of its work) is untouched, "
    "so removing a quarter of the heads saves well under a quarter of the time. The *Head ablation* "
    "criterion switches each head off on the evaluation sentences and removes those whose absence changes "
    "the embeddings least; with *Global ranking* a layer with many unneeded heads loses more than one "
    "whose heads all matter."
)


def attention(loaded: LoadedModel) -> list[pe.AttentionLayer]:
    """The attention layers of the loaded model whose heads can be removed (none for most models)."""
    return pe.attention_layers(loaded.bundle.model)


def _on_slider(layer: pe.AttentionLayer, generation: int) -> None:
    key = keys.prune_head_ratio(layer.name, generation)
    removed = st.session_state[key]
    update_plan(
        lambda plan: edits.with_layers(plan, [layer.name], removed / layer.heads),
        widget=key,
        widget_generation=generation,
        resync=False,
    )


def _on_lock(layer: pe.AttentionLayer, generation: int) -> None:
    key = keys.prune_head_lock(layer.name, generation)
    if st.session_state[key]:
        _on_slider(layer, generation)
    else:
        update_plan(_unlocked(layer.name), widget=key, widget_generation=generation, resync=False)


def _unlocked(name: str) -> Callable[[pe.PruningPlan], pe.PruningPlan]:
    """The plan change that lets attention layer `name` follow the global slider again."""
    return lambda plan: edits.without_layers(plan, [name])


def removed_heads(plan: pe.PruningPlan, layer: pe.AttentionLayer, preview: pe.PlanPreview | None) -> int:
    """Heads the plan removes from `layer`: as the preview assigns them, else from the plan's ratio."""
    if preview is not None:
        rows = preview.table.set_index("layer")
        if layer.query in rows.index:
            return round(float(rows.loc[layer.query, "assigned_ratio"]) * layer.heads)
    removed = round(plan.target_ratio(layer.name) * layer.groups) * layer.group_size
    return min(removed, layer.heads - layer.group_size)


def section(loaded: LoadedModel, plan: pe.PruningPlan, preview: pe.PlanPreview | None) -> None:
    """The per-attention-layer sliders, then the preview of which heads go."""
    layers = attention(loaded)
    st.subheader("Per attention layer")
    with st.expander("What does removing attention heads do?", icon=":material/help:"):
        st.markdown(EXPLANATION)
    if not layers:
        st.warning(
            "This model has no attention layers whose heads PruneScope can remove; choose another granularity.",
            icon=":material/warning:",
        )
        return
    st.caption(
        "Each slider counts heads removed from one attention layer. A layer follows the global slider until you "
        "move its own slider, which locks it; untick Lock to let it follow again."
    )
    for start in range(0, len(layers), COLUMNS):
        for column, layer in zip(st.columns(COLUMNS), layers[start : start + COLUMNS], strict=False):
            with column:
                _layer_slider(plan, layer, preview)
    _preview(plan, layers, preview)


def _layer_slider(plan: pe.PruningPlan, layer: pe.AttentionLayer, preview: pe.PlanPreview | None) -> None:
    locked = layer.name in plan.ratios
    removed = removed_heads(plan, layer, preview)
    generation = state.controls_generation()
    seed(keys.prune_head_ratio(layer.name, generation), removed)
    seed(keys.prune_head_lock(layer.name, generation), locked)
    slider, lock = st.columns([3, 1], vertical_alignment="bottom")
    grouped = layer.group_size > 1
    slider.slider(
        fmt.literal(layer.name),
        0,
        layer.heads - layer.group_size,
        step=layer.group_size,
        key=keys.prune_head_ratio(layer.name, generation),
        on_change=_on_slider,
        args=(layer, generation),
        help=f"Heads removed from this layer, out of {layer.heads}; one always stays."
        + (
            f" Its query heads share key/value heads in groups of {layer.group_size} (grouped-query attention), "
            "so they leave a whole group at a time."
            if grouped
            else ""
        ),
    )
    lock.checkbox(
        "Lock", key=keys.prune_head_lock(layer.name, generation), on_change=_on_lock, args=(layer, generation)
    )
    st.caption(
        f"keeps {layer.heads - removed} / {layer.heads} heads · {fmt.count(removed * layer.head_params)} "
        "parameters removed"
    )


HEADS_PREVIEW_TITLE = "Preview: the share of heads each attention layer loses, and where the cut falls"


def _preview(plan: pe.PruningPlan, layers: list[pe.AttentionLayer], preview: pe.PlanPreview | None) -> None:
    """Drawn only while its expander is open, like the other granularities' preview."""
    box = plan_preview.opened_box(HEADS_PREVIEW_TITLE)
    if box is not None:
        with box:
            _head_charts(plan, layers, preview)


def _head_charts(plan: pe.PruningPlan, layers: list[pe.AttentionLayer], preview: pe.PlanPreview | None) -> None:
    if preview is None:
        st.caption("No preview: the plan cannot be applied as it stands (see the message above).")
        return
    counts = pd.DataFrame(
        {
            "layer": [layer.name for layer in layers],
            "ratio": [removed_heads(plan, layer, preview) / layer.heads for layer in layers],
            "status": [_status(plan, layer) for layer in layers],
            "note": [f"{layer.heads} heads of {layer.head_dim} dimensions" for layer in layers],
        }
    )
    left, right = st.columns(2)
    left.plotly_chart(charts.plan_ratios(counts, "heads"), config=plan_preview.CHART_CONFIG)
    scored = [layer for layer in layers if layer.name in preview.scores]
    with right:
        if not scored:
            st.caption("No layer loses heads under this plan, so there are no head scores to show.")
            return
        names = [layer.name for layer in scored]
        if st.session_state.get(keys.PRUNE_HEAD_LAYER_PICKER) not in names:
            st.session_state[keys.PRUNE_HEAD_LAYER_PICKER] = names[0]
        chosen = st.selectbox("Attention layer to look into", names, key=keys.PRUNE_HEAD_LAYER_PICKER, width=420)
        layer = scored[names.index(chosen)]
        ordered = np.sort(preview.scores[layer.name].detach().float().cpu().numpy())
        criterion = criterion_label(plan.criterion)
        figure = charts.channel_cut(ordered, removed_heads(plan, layer, preview), layer.name, criterion)
        figure["layout"]["xaxis"]["title"]["text"] = "heads, least important first"
        figure["layout"]["title"]["text"] = f"Head importance of {charts.plain(layer.name)}"
        st.plotly_chart(figure, config=plan_preview.CHART_CONFIG)
    st.caption(
        "Left: the share of heads each attention layer will lose. Right: the chosen layer's head scores, "
        "least important first; heads left of the dashed line go."
    )


def _status(plan: pe.PruningPlan, layer: pe.AttentionLayer) -> str:
    if layer.name in plan.ratios:
        return "locked"
    return "set by the global ranking" if plan.is_global_ranked(layer.name) else "follows the global slider"
