"""Inspect: where a model's parameters sit, what one layer's weights look like, and which channels matter."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import prune_engine as pe
from ui.inspect.importance import importance_section
from ui.shared import caches, charts, graph_view, keys
from ui.shared.widgets import page_start
from workbench import fmt
from workbench.session import LoadedModel

ONE_LAYER, IMPORTANCE = "One layer", "Importance"


HISTOGRAM_BINS = 100


ABOUT = """
**The overview** shows every layer that pruning can work on. The blue bars are how many
parameters each layer holds: big layers are where pruning saves the most. The orange line
is each layer's **sparsity**, the share of its weights that are exactly zero. A freshly
trained model has almost none; after pruning, this line rises.

**The weight histogram** counts how many weights of the chosen layer take each value. Trained
networks usually pile most of their weights up in a narrow peak around zero, with a few large
weights in the tails. A weight close to zero adds almost nothing to the layer's output, so
setting it to exactly zero barely changes what the model computes. A tall, narrow peak at zero
is a hint that a good part of the layer can be pruned. Removing individual weights like this
is called *unstructured* pruning.

**The channel norms** treat the layer as a set of output channels (filters in a convolution,
neurons in a linear layer). A channel's *L1 norm* is the sum of the absolute values of all its
weights: a rough measure of how strongly that channel can respond. Channels with a small norm
contribute little, so they are the first candidates for *structured* pruning, which removes
whole channels. Unlike zeroed weights, removed channels make the layer genuinely smaller and faster.
"""


def layer_picker(names: list[str]) -> str:
    """The layer to look at, kept across page switches and reset when the model changes."""
    if st.session_state.get(keys.INSPECT_LAYER_PICKER) not in names:
        st.session_state[keys.INSPECT_LAYER_PICKER] = names[0]
    return st.selectbox("Layer", names, key=keys.INSPECT_LAYER_PICKER, persist_state="session", width=420)


def layer_metrics(row: pd.Series) -> None:
    """Kind, shape, size, sparsity and spread of one layer's weights."""
    columns = st.columns([1, 1.6, 1, 1, 1])
    columns[0].metric("Kind", row["kind"])
    columns[1].metric("Weight shape", row["shape"], help="Output channels × inputs (× kernel height × width).")
    columns[2].metric("Parameters", fmt.count(row["params"]), help=f"{row['params']:,} weights and biases.")
    columns[3].metric("Sparsity", fmt.percent(row["sparsity"]), help="Share of this layer's weights that are zero.")
    columns[4].metric("Weight std", f"{row['std']:.4f}", help="Standard deviation of this layer's weights.")


def layer_charts(loaded: LoadedModel, layer: str, sort_channels: bool) -> None:
    """Weight histogram and per-channel L1 norms of one layer, side by side."""
    model = loaded.bundle.model
    counts, edges = caches.histogram(loaded.fingerprint, layer, model, HISTOGRAM_BINS)
    norms = caches.channel_l1_norms(loaded.fingerprint, layer, model)
    left, right = st.columns(2)
    left.plotly_chart(charts.weight_histogram(counts, edges, layer))
    right.plotly_chart(charts.channel_norm_bars(norms, layer, sort=sort_channels))


def where_time_goes(loaded: LoadedModel) -> None:
    """Each layer's share of the parameters, the FLOPs and the measured time: few parameters can cost much time."""
    with st.expander("Where the time goes, layer by layer", icon=":material/timer:"):
        st.caption(
            "Parameters are not time. A CNN's first convolution holds few weights but runs on the largest images, "
            "so it can take much of the time; a wide fully connected layer the reverse. Pruning saves time where "
            f"the time is. Each layer is timed inside the running model, at batch {caches.PROFILE_BATCH} on one thread."
        )
        if not st.toggle("Measure each layer's time", key=keys.INSPECT_PROFILE):
            return
        try:
            profile = caches.latency_profile(loaded.fingerprint, caches.PROFILE_BATCH, loaded)
        except pe.PruneScopeError as error:
            st.warning(fmt.literal(str(error)), icon=":material/warning:")
            return
        st.plotly_chart(charts.cost_shares(profile))
        other = float(profile.loc[profile["kind"] == "other", "share"].sum())
        st.caption(
            f"“(other)” is everything outside the prunable layers (activations, pooling, normalisation, additions): "
            f"{fmt.percent(other, 0)} of the time here."
        )


def render() -> None:
    """Draw the page."""
    loaded_model = page_start(
        "Inspect", "Where the parameters of {model} sit, what its weights look like, and which channels matter."
    )
    with st.expander("About these charts", icon=":material/school:"):
        st.markdown(ABOUT)
    stats = caches.model_layers(loaded_model)
    if stats.empty:
        st.info("This model has no Linear or Conv layers, so there is nothing to inspect or prune.")
        st.stop()
    st.subheader("All layers")
    st.plotly_chart(charts.layer_overview(stats))
    where_time_goes(loaded_model)
    graph_view.section(loaded_model)
    one_layer, importance = st.tabs(
        [ONE_LAYER, IMPORTANCE],
        key=keys.INSPECT_VIEW,
        default=st.session_state.get(keys.INSPECT_OPEN_VIEW, ONE_LAYER),
        on_change=lambda: st.session_state.update({keys.INSPECT_OPEN_VIEW: st.session_state[keys.INSPECT_VIEW]}),
    )
    if one_layer.open:
        with one_layer:
            picker, toggle = st.columns([3, 2], vertical_alignment="bottom")
            with picker:
                chosen = layer_picker(stats["name"].tolist())
            with toggle:
                sort_channels = st.toggle(
                    "Sort channels by norm, smallest first",
                    value=True,
                    key=keys.INSPECT_SORT_CHANNELS,
                    persist_state="session",
                )
            layer_metrics(stats.set_index("name").loc[chosen])
            layer_charts(loaded_model, chosen, sort_channels)
    if importance.open:
        with importance:
            importance_section(loaded_model, stats["name"].tolist())
