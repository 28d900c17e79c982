"""The network as a graph, shared by the Inspect and Prune pages: one overlay at a time, the picked layer's
channel group outlined with its ratio and the engine's reason when it cannot be pruned, DOT and SVG downloads."""

from __future__ import annotations

import streamlit as st

import prune_engine as pe
from ui.shared import caches, importance, keys, state
from workbench import capabilities, fmt, plans
from workbench import graph as drawing
from workbench.session import LoadedModel

OVERLAYS = {
    "none": "None",
    "params": "Parameters",
    "flops": "FLOPs",
    "latency": "Latency share",
    "importance": "Importance",
    "sensitivity": "Sensitivity",
    "removed": "Removed by the plan",
}
COLLAPSE_ABOVE = 60
"""Graphs with more nodes than this start with their repeated blocks collapsed."""
NO_LAYER = "(none)"

RESIDUALS = """
**Boxes** are modules in the order data flows through them, top to bottom; bold boxes are the layers
pruning works on, grey ones (normalisation, embeddings) follow them. **Circles** join streams: **+** adds two
streams (a residual connection), *concat* stacks them side by side, *attention* combines queries, keys and values.
Double-bordered boxes are repeated blocks drawn as one; untick *Collapse repeated blocks* to open them.

**Why do residual connections force layers to lose the same channels?** A residual connection adds the
block's output to its input, channel by channel: channel 7 of one is added to channel 7 of the other. If one
layer dropped its channel 7 and the other kept it, there would be nothing to add it to. So every layer whose
output meets at such an addition (the stem before the first block, the last layer of every block on that
path, a downsample branch) must lose exactly the same channels. Pruning treats them as one **channel group**:
pick a layer to see its group outlined in blue. A group is scored and cut as one, so a ratio set on any of its
layers applies to all of them. Concatenations couple differently: each input keeps its own slice.
"""

GROUP_MAX_PCT = 99
"""The group slider's top, as a layer's: a layer never loses its last channel."""


def section(loaded: LoadedModel) -> None:
    """An expander with the graph; it is traced and drawn only while open."""
    expander = st.expander("Graph of the network", icon=":material/account_tree:", key=keys.GRAPH_OPEN,
                           on_change="rerun")  # fmt: skip
    if expander.open:
        with expander:
            _graph_view(loaded)


@st.fragment
def _graph_view(loaded: LoadedModel) -> None:
    """Controls, the graph, the picked group and the downloads; a change reruns only this part."""
    bundle = loaded.bundle
    try:
        graph = caches.model_graph(loaded.fingerprint, bundle.model, bundle.example_input)
    except pe.PruneScopeError as error:
        st.info(f"The graph cannot be drawn: {error}", icon=":material/info:")
        return
    columns = st.columns([3, 2, 2], vertical_alignment="bottom")
    overlay_name = columns[0].selectbox(
        "Colour by", list(OVERLAYS), format_func=OVERLAYS.get, key=keys.GRAPH_OVERLAY, persist_state="session"
    )
    layers = [node.module for node in graph.nodes if node.prunable and node.module is not None]
    if st.session_state.get(keys.GRAPH_LAYER) not in [NO_LAYER, *layers]:
        st.session_state[keys.GRAPH_LAYER] = NO_LAYER
    picked = columns[1].selectbox("Pick a layer", [NO_LAYER, *layers], key=keys.GRAPH_LAYER, persist_state="session")
    picked = None if picked == NO_LAYER else picked
    collapse = columns[2].toggle(
        "Collapse repeated blocks",
        value=len(graph.nodes) > COLLAPSE_ABOVE,
        key=keys.GRAPH_COLLAPSE,
        disabled=not graph.blocks,
        help="Draw each repeated block (a residual block, a transformer layer) as one box.",
    )
    with st.container():  # one slot for the overlay's own controls, so the chart below keeps its place
        overlay = _overlay(loaded, graph, overlay_name)
    shown = _shown(graph, collapse, picked)
    group = graph.group_of(picked) if picked is not None else None
    dot = drawing.to_dot(shown, overlay, picked, group)
    st.graphviz_chart(dot, width="stretch")
    if overlay is not None and overlay.note:
        st.caption(overlay.note)
    if picked is not None:
        _group(picked, group)
    _downloads(dot, loaded.name, overlay_name)
    with st.expander("What is this? The graph, and why residual connections couple channels", icon=":material/school:"):
        st.markdown(RESIDUALS)


def _shown(graph: pe.ModelGraph, collapse: bool, picked: str | None) -> pe.ModelGraph:
    """The graph as drawn: collapsed or not; the block holding the picked layer stays open."""
    if not collapse:
        return graph
    return graph.collapsed([block.name for block in graph.blocks if picked not in block.members])


def _overlay(loaded: LoadedModel, graph: pe.ModelGraph, name: str) -> drawing.Overlay | None:
    """The chosen overlay's values, or None (with a sentence why, or a button, when they are still missing)."""
    if name == "params":
        return drawing.params_overlay(graph)
    if name == "flops":
        return drawing.flops_overlay(graph)
    if name == "latency":
        return _latency(loaded)
    if name == "importance":
        return _importance(loaded)
    if name == "sensitivity":
        return _sensitivity()
    if name == "removed":
        return _removed(loaded)
    return None


def _asked(loaded: LoadedModel, what: str, button_key: str, label: str) -> bool:
    """Whether this session has asked for `what` on this model; a button asks."""
    asked = caches.session_memo(keys.GRAPH_MEASURED)
    if (loaded.fingerprint, what) not in asked:
        st.button(label, key=button_key, on_click=lambda: asked.update({(loaded.fingerprint, what): True}))
    return (loaded.fingerprint, what) in asked


def _latency(loaded: LoadedModel) -> drawing.Overlay | None:
    label = "Measure the time of each layer (one thread, about 5 s)"
    if not _asked(loaded, "latency", keys.GRAPH_MEASURE, label):
        st.caption("Latency is measured on request: each layer is timed inside the running model.")
        return None
    try:
        profile = caches.latency_profile(loaded.fingerprint, caches.PROFILE_BATCH, loaded)
    except pe.PruneScopeError as error:
        st.info(str(error), icon=":material/info:")
        return None
    return drawing.latency_overlay(profile)


def _importance(loaded: LoadedModel) -> drawing.Overlay | None:
    offered = capabilities.criteria(loaded, "channel")
    plan = state.current_plan()
    chosen = st.session_state.get(keys.INSPECT_CRITERION) if plan is None else plan.criterion
    if st.session_state.get(keys.GRAPH_CRITERION) not in offered:
        st.session_state[keys.GRAPH_CRITERION] = chosen if chosen in offered else offered[0]
    criterion = st.selectbox("Criterion", offered, key=keys.GRAPH_CRITERION, format_func=_criterion_label, width=320)
    if pe.CRITERIA[criterion].needs_data and not _asked(
        loaded, criterion, keys.GRAPH_SCORE, f"Score channels with {_criterion_label(criterion)} (runs the model)"
    ):
        return None
    try:
        scores = importance.criterion_scores(loaded, criterion, importance.DEFAULT_EXAMPLES)
    except pe.PruneScopeError as error:
        st.info(str(error), icon=":material/info:")
        return None
    return drawing.importance_overlay(dict(scores.scores), _criterion_label(criterion))


def _sensitivity() -> drawing.Overlay | None:
    scan = state.last_scan()
    if scan is None:
        st.caption("No sensitivity scan of this model yet: run one on the Sensitivity page to colour by it.")
        return None
    ratios = sorted(float(ratio) for ratio in scan.table["ratio"].unique())
    if st.session_state.get(keys.GRAPH_RATIO) not in ratios:
        st.session_state[keys.GRAPH_RATIO] = ratios[len(ratios) // 2]
    ratio = st.select_slider("Ratio", ratios, key=keys.GRAPH_RATIO, format_func=lambda r: fmt.percent(r, 0))
    return drawing.sensitivity_overlay(scan.table, ratio)


def _removed(loaded: LoadedModel) -> drawing.Overlay | None:
    pruned = state.current_pruned(finished=False)
    if pruned is not None:
        return drawing.removed_overlay(pruned.result.report)
    plan = state.current_plan()
    if plan is None:
        st.caption("No plan yet: set one on the Prune page to colour by what it removes.")
        return None
    try:
        return drawing.removed_overlay(caches.preview(loaded, plan).table)
    except pe.PruneScopeError as error:
        st.info(str(error), icon=":material/info:")
        return None


def _group(picked: str, group: pe.CoupledGroup | None) -> None:
    """The picked layer's channel group: its members, its current ratio, and why it cannot be pruned."""
    if group is None:
        st.info(f"No channel group reaches `{picked}`: channel pruning cannot remove its channels.")
        return
    others = [layer for layer in group.layers if layer != picked]
    coupled = f"loses the same channels as {', '.join(f'`{layer}`' for layer in others)}" if others else "stands alone"
    st.markdown(f"**Channel group of `{picked}`** (outlined in blue): it {coupled}.")
    row = _preview_row(picked)
    blocked_by, reason = (group.blocked.by, group.blocked.reason) if group.blocked is not None else (None, None)
    if row is not None and isinstance(row["blocked_by"], str):
        blocked_by, reason = row["blocked_by"], row["note"]
    if blocked_by is not None:
        st.warning(f"Channel pruning cannot remove these channels ({blocked_by}): {reason}", icon=":material/block:")
        return
    if row is not None:
        st.slider(
            "Channels this group loses",
            0,
            GROUP_MAX_PCT,
            value=round(float(row["assigned_ratio"]) * 100),
            key=keys.GRAPH_GROUP_RATIO,
            format="%d%%",
            on_change=_set_group_ratio,
            args=(group.layers,),
            help="Sets (and locks) the ratio of every layer of the group on the Prune page's plan.",
        )
    if st.session_state.pop(keys.GRAPH_GROUP_CHANGED, False):
        st.rerun()


def _set_group_ratio(layers: tuple[str, ...]) -> None:
    """(The group slider's callback) Lock every layer of the group at the slider's ratio in the session's plan."""
    plan = state.current_plan()
    if plan is None:
        return
    state.set_plan(plans.with_layers(plan, layers, st.session_state[keys.GRAPH_GROUP_RATIO] / 100))
    state.resync_layer_controls()
    st.session_state[keys.GRAPH_GROUP_CHANGED] = True


def _preview_row(layer: str) -> dict | None:
    """The picked layer's row of the current channel plan's preview, when the Prune page has one."""
    plan, loaded = state.current_plan(), state.current_model()
    if plan is None or loaded is None or plan.granularity != "channel":
        return None
    try:
        table = caches.preview(loaded, plan).table
    except pe.PruneScopeError:
        return None
    rows = table[table["layer"] == layer]
    return None if rows.empty else rows.iloc[0].to_dict()


def _downloads(dot: str, model_name: str, overlay_name: str) -> None:
    stem = f"{model_name}-graph-{overlay_name}"
    left, right = st.columns(2)
    left.download_button("Download DOT", dot, f"{stem}.dot", "text/vnd.graphviz", key=keys.GRAPH_DOT,
                         on_click="ignore", icon=":material/download:")  # fmt: skip
    available = drawing.svg_available()
    right.download_button(
        "Download SVG",
        lambda: caches.graph_svg(dot),
        f"{stem}.svg",
        "image/svg+xml",
        key=keys.GRAPH_SVG,
        on_click="ignore",
        icon=":material/download:",
        disabled=not available,
        help=None if available else "SVG needs Graphviz's dot program on the server (Debian package graphviz).",
    )


def _criterion_label(name: str) -> str:
    return pe.CRITERIA[name].label
