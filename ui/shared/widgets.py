"""Pieces of UI shared by several pages: the sidebar model card, the no-model hint, the layer table,
and before/after figures drawn as metrics (Prune's summary and Compare's headline)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import prune_engine as pe
from prune_engine.metrics import device_memory
from prune_engine.placement import placement
from ui.shared import caches, keys, navigation
from ui.shared.state import working_model
from workbench import fmt, quality
from workbench.session import LoadedModel

TABLE_ROWS_SHOWN = 40
"""Layer tables up to this many rows show in full; longer ones scroll inside a fixed height."""
TABLE_SCROLL_HEIGHT = 700

_LAYER_COLUMNS = {
    "name": st.column_config.TextColumn(
        "Layer", width="medium", pinned=True, help="The module path of the layer in the model."
    ),
    "kind": st.column_config.TextColumn("Kind"),
    "shape": st.column_config.TextColumn("Weight shape", help="Output channels × inputs (× kernel size)."),
    "params": st.column_config.NumberColumn("Parameters", format="localized", help="Weights and bias."),
    "share": st.column_config.ProgressColumn(
        "Share of model",
        format="percent",
        min_value=0.0,
        max_value=1.0,
        help="This layer's share of all the model's parameters.",
    ),
    "sparsity": st.column_config.NumberColumn("Sparsity", format="percent", help="Share of weights that are zero."),
    "out_channels": st.column_config.NumberColumn("Out channels", format="localized"),
    "in_channels": st.column_config.NumberColumn("In channels", format="localized"),
    "std": st.column_config.NumberColumn("Std", format="%.4f", help="Standard deviation of the weights."),
    "abs_mean": st.column_config.NumberColumn("Mean |w|", format="%.4f", help="Mean absolute weight."),
}


def require_model() -> LoadedModel:
    """The current model, placed on the device chosen in the sidebar (the working copy every engine step
    runs on); without a model, a hint to pick one on the Model page, and the page stops."""
    loaded = working_model()
    if loaded is None:
        st.info("No model is loaded yet. Pick one on the Model page first.", icon=":material/info:")
        st.page_link(navigation.MODEL_PAGE, label="Choose a model", icon=":material/arrow_forward:")
        st.stop()
    return loaded


def choice(
    container: DeltaGenerator, label: str, options: Iterable[str], labels: Mapping[str, str], key: str, **kwargs: Any
) -> str:
    """A horizontal radio of `options` shown by their `labels` (an option without one shows as itself)."""
    return container.radio(
        label, list(options), key=key, format_func=lambda option: labels.get(option, option), horizontal=True, **kwargs
    )


def page_start(title: str, introduction: str = "") -> LoadedModel:
    """The page's title and the current model (the page stops without one), then `introduction`,
    in which `{model}` stands for the model's name."""
    st.title(title)
    loaded = require_model()
    if introduction:
        st.markdown(introduction.format(model=f"**{fmt.literal(loaded.name)}**"))
    return loaded


def sidebar_model_card(loaded: LoadedModel | None) -> None:
    """The current model's name, size and headline quality (accuracy, perplexity…), or a hint to pick one
    (call inside `st.sidebar`)."""
    st.markdown("**Current model**")
    if loaded is None:
        st.caption("None yet: pick a sample on the Model page.")
        return
    st.markdown(fmt.literal(loaded.name))
    parts = [f"{fmt.count(caches.model_summary(loaded)['params'])} parameters"]
    try:
        evaluation = caches.model_evaluation(loaded) or {}
    except pe.PruneScopeError:
        evaluation = {}
    metric = quality.headline_metric(evaluation)
    if metric is not None:
        parts.append(f"{metric.label.lower()} {metric.show(evaluation[metric.key])}")
    st.caption(" · ".join(parts))


DEVICE_LABELS = {"cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}


def device_picker() -> str:
    """The sidebar's device picker (CPU, CUDA when available, MPS when present): places the
    working copy of the current model there at once and says where it runs and, on a GPU,
    how much memory is in use; returns the chosen device (call inside `st.sidebar`)."""
    devices = pe.available_devices()
    if st.session_state.get(keys.DEVICE) not in devices:
        st.session_state[keys.DEVICE] = "cpu"
    device = st.selectbox(
        "Device",
        devices,
        key=keys.DEVICE,
        format_func=lambda option: DEVICE_LABELS.get(option, option),
        disabled=len(devices) == 1,
        help="Where the working copy of the model runs: pruning, evaluation, scans and fine-tuning. "
        "The loaded model itself stays where it was loaded.",
    )
    working = working_model()
    if working is not None:
        place = placement(working.bundle.model)
        st.caption(f"Working copy on {place.device} in {str(place.dtype).removeprefix('torch.')}")
    memory = device_memory(device)
    if memory is not None:
        st.caption(f"{fmt.size(memory['allocated'])} in use of {fmt.size(memory['total'])} on the {device} device")
    return device


def layer_table(stats: pd.DataFrame, total_params: int) -> None:
    """Per-layer statistics from `prune_engine.layer_stats`, with readable column names and units."""
    view = stats.assign(share=stats["params"] / max(total_params, 1))
    height = "content" if len(view) <= TABLE_ROWS_SHOWN else TABLE_SCROLL_HEIGHT
    st.dataframe(view[list(_LAYER_COLUMNS)], column_config=_LAYER_COLUMNS, hide_index=True, height=height)


NO_CHANGE = "no change"
NO_MEASURABLE_CHANGE = "no measurable change"
SHARE_STEP = 0.001
"""Shares are shown to a tenth of a percent: changes are computed from values rounded to that."""


@dataclass(frozen=True)
class Figure:
    """One headline figure of both models, and which direction is better."""

    label: str
    original: float | None
    pruned: float | None
    show: fmt.Formatter
    lower_is_better: bool | None = True
    """None: neither direction is better (the change is shown in grey)."""
    help: str = ""
    change: fmt.Formatter | None = None
    """How the change is written when not as the value's own unit plus a relative change (shares: in points)."""
    step: float | None = None
    """The resolution the values are shown at; the change is computed from values rounded to it, so that
    98.3 % → 97.8 % reads −0.5 pts, as the eye subtracts, and not −0.6."""
    measurable: bool | None = None
    """False when a measured change is within the noise of the measurement: no colour, no arrow."""

    @classmethod
    def share(
        cls, label: str, original: float | None, pruned: float | None, lower_is_better: bool | None, help: str = ""
    ) -> Figure:
        """A share (accuracy, agreement, sparsity) shown in percent, its change in points."""
        return cls(label, original, pruned, fmt.percent, lower_is_better, help, fmt.points, SHARE_STEP)


def figure_metric(column: st.delta_generator.DeltaGenerator, figure: Figure, side: str) -> None:
    """`figure` as a metric: the original's value, or the pruned value with its change (green when better).

    A change within the noise (`measurable` False) reads "no measurable change", grey and without an arrow.
    """
    if side == "original":
        column.metric(figure.label, figure.show(figure.original), help=figure.help or None)
        return
    delta = change_text(figure)
    quiet = delta in (NO_CHANGE, NO_MEASURABLE_CHANGE)
    column.metric(
        figure.label,
        figure.show(figure.pruned),
        delta=delta,
        delta_color="off" if quiet or figure.lower_is_better is None else _better_color(figure),
        delta_arrow="off" if quiet else "auto",
        help=figure.help or None,
    )


def change_text(figure: Figure) -> str | None:
    """How the pruned value differs from the original's, in words and numbers; None when either is unknown."""
    if figure.original is None or figure.pruned is None:
        return None
    if figure.measurable is False:
        return NO_MEASURABLE_CHANGE
    show = figure.change or figure.show
    change = fmt.signed_change(figure.original, figure.pruned, show, relative=figure.change is None, step=figure.step)
    return NO_CHANGE if change is None else change


def _better_color(figure: Figure) -> str:
    return "inverse" if figure.lower_is_better else "normal"
