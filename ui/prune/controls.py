"""The Prune page's plan controls: widgets seeded from the session's plan, callbacks that write it back.

The plan in the session (`state.current_plan()`) is the one source of truth. Every run
writes the plan's values into the widgets' keys before the widgets are created, and
every widget's callback turns its new value into a new plan. So a plan that arrives
from elsewhere (an upload, another page) shows in the sliders on the next run, and a
slider hidden by the filter, or left behind on another page, loses nothing.

This module holds the plan-wide controls (granularity, criterion, scope, global slider,
bounds, N:M pattern, upload); `ui.layer_controls` holds the per-layer sliders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import prune_engine as pe
from ui.prune import result as prune_result
from ui.shared import caches, keys, state
from workbench import capabilities, fmt
from workbench import plans as edits
from workbench.session import LoadedModel

GLOBAL_MAX_PCT = 95
PRESETS = (50, 80, 90, 95)
"""Global ratios one click away (%); the one the plan is at shows selected."""
NO_ROUNDING = 1
ROUNDINGS = (NO_ROUNDING, 8, 16, 32)
"""Channel counts kept a multiple of this (1: any count)."""
LAYER_MAX_PCT = 99


def percent(ratio: float | None, top: int = LAYER_MAX_PCT) -> int:
    """A ratio as the whole percent a slider shows, kept within the slider."""
    return min(max(round((ratio or 0.0) * 100), 0), top)


def plan_layer_names(loaded: LoadedModel, plan: pe.PruningPlan) -> list[str]:
    """The names a plan's ratios may use: attention layers for head pruning, prunable layers otherwise."""
    if plan.granularity == "head":
        return [layer.name for layer in pe.attention_layers(loaded.bundle.model)]
    return caches.layer_names(loaded)


def read_plan_file(content: bytes, loaded: LoadedModel) -> pe.PruningPlan:
    """A plan read from a file and checked against the model; a PruneScopeError says what does not fit."""
    plan = pe.PruningPlan.from_json(content)
    plan.check_layers(plan_layer_names(loaded, plan))
    caches.preview(loaded, plan)
    return plan


def current_plan(loaded: LoadedModel) -> pe.PruningPlan:
    """The session's plan, after loading one sent to the sliders; the default plan at first."""
    incoming = state.take_incoming_plan()
    if incoming is not None:
        try:
            incoming.check_layers(plan_layer_names(loaded, incoming))
            state.set_plan(incoming)
            state.resync_layer_controls()
        except pe.PruneScopeError as error:
            st.session_state[keys.PRUNE_ERROR] = str(error)
    plan = state.current_plan()
    if plan is None:
        plan = edits.default_plan()
        state.set_plan(plan)
    return plan


# --- callbacks: widget value → new plan ------------------------------------------------


def update_plan(
    change: Callable[[pe.PruningPlan], pe.PruningPlan],
    *,
    widget: str | None = None,
    widget_generation: int | None = None,
    resync: bool = True,
) -> None:
    """(A widget callback) Replace the session's plan by `change(plan)`; an impossible plan leaves it and says why.

    `widget` is the key of the widget whose callback this is, and `widget_generation` the generation it was
    drawn in (`keys.prune_layer_ratio`). Streamlit runs a widget's callback whenever the value the browser
    sends differs from the one the server last set, and while a rerun is under way the browser still sends
    what it showed before: a change that `is_stale_echo` recognises as that, or that comes from a generation
    the page no longer shows, is ignored. With `resync`, the per-layer widgets start a new generation, to show
    a plan that changed in form (granularity, a loaded plan, Reset) afresh.
    """
    plan = state.current_plan()
    if plan is None or (widget_generation is not None and widget_generation != state.controls_generation()):
        return
    if widget is not None and is_stale_echo(widget):
        return
    try:
        state.set_plan(change(plan))
    except pe.PruneScopeError as error:
        st.session_state[keys.PRUNE_ERROR] = str(error)
        return
    if resync:
        state.resync_layer_controls()


def is_stale_echo(key: str) -> bool:
    """Whether the value the browser sent for the widget `key` is one the page showed in it before its last
    change, arriving with a change to another control: a browser that has not yet drawn the newest values
    sends older ones back along with the key press that started this rerun (after quick presses, from several
    steps back). A widget the user moved alone (even back to an earlier value) is never an echo. The global
    slider, the control pressed quickly, counts as an echo only at the value it showed just before."""
    shown = st.session_state.get(keys.PRUNE_SHOWN, {})
    if key not in shown:
        return False
    current, earlier = shown[key]
    sent = st.session_state.get(key)
    if sent is None or sent == current or sent not in (earlier[-1:] if key == keys.PRUNE_GLOBAL else earlier):
        return False
    return any(
        other != key and other in st.session_state and st.session_state[other] != value
        for other, (value, _) in shown.items()
    )


def _on_granularity(loaded: LoadedModel) -> None:
    granularity = st.session_state[keys.PRUNE_GRANULARITY]
    recalibrate = granularity == "channel" and capabilities.can_recalibrate(loaded)
    offered = capabilities.criteria(loaded, granularity)

    def change(plan: pe.PruningPlan) -> pe.PruningPlan:
        switched = edits.with_granularity(plan, granularity, recalibrate)
        return switched if switched.criterion in offered else dataclasses.replace(switched, criterion=offered[0])

    update_plan(change)


def _on_setting(key: str, field: str) -> None:
    update_plan(lambda plan: dataclasses.replace(plan, **{field: st.session_state[key]}))


def _on_global(key: str = keys.PRUNE_GLOBAL, generation: int | None = None) -> None:
    """The global slider, its number field or a preset (those two drawn in `generation`) moved: every
    unlocked layer follows. The per-layer widgets stay (drawing new ones at every step is what made a key
    press slow); `seed` shows them their new values."""
    value = st.session_state[key]
    if value is None:  # a preset button released
        return
    update_plan(
        lambda plan: dataclasses.replace(plan, global_ratio=value / 100),
        widget=key,
        widget_generation=generation,
        resync=False,
    )


def _on_rounding() -> None:
    choice = st.session_state[keys.PRUNE_ROUND_TO]
    update_plan(lambda plan: dataclasses.replace(plan, round_to=None if choice == NO_ROUNDING else choice))


def _on_bounds() -> None:
    low, high = st.session_state[keys.PRUNE_BOUNDS]
    update_plan(lambda plan: edits.with_bounds(plan, low / 100, high / 100, LAYER_MAX_PCT / 100))


def _on_pattern(loaded: LoadedModel) -> None:
    n, m = st.session_state[keys.PRUNE_N], st.session_state[keys.PRUNE_M]
    update_plan(lambda plan: edits.with_pattern(plan, n, m, caches.layer_names(loaded)))


def _on_reset() -> None:
    update_plan(edits.reset)


def _on_upload(loaded: LoadedModel) -> None:
    uploaded = st.session_state.get(keys.PRUNE_UPLOAD)
    if uploaded is None:
        return
    try:
        state.send_plan_to_sliders(read_plan_file(uploaded.getvalue(), loaded))
    except pe.PruneScopeError as error:
        st.session_state[keys.PRUNE_UPLOAD_MESSAGE] = ("error", f"{uploaded.name}: {error}")
    else:
        st.session_state[keys.PRUNE_UPLOAD_MESSAGE] = ("success", f"Loaded the plan from {uploaded.name}.")


# --- widgets ---------------------------------------------------------------------------


SHOWN_KEPT = 64
"""Earlier values remembered per control for `is_stale_echo`: more than a browser falls behind by."""


def seed(key: str, value: object) -> None:
    """Show `value` in the widget with `key` (call before the widget is created), remembering the values it
    showed before (for `is_stale_echo`)."""
    shown = st.session_state.setdefault(keys.PRUNE_SHOWN, {})
    current, earlier = shown.get(key, (value, ()))
    if value != current:
        earlier = (*[shown_before for shown_before in earlier if shown_before != current], current)[-SHOWN_KEPT:]
    shown[key] = (value, earlier)
    if st.session_state.get(key) != value:
        st.session_state[key] = value


def show_errors() -> None:
    """The sentence of the last change that could not be made, once."""
    message = st.session_state.pop(keys.PRUNE_ERROR, None)
    if message:
        st.error(fmt.literal(message), icon=":material/error:")


def plan_upload(loaded: LoadedModel) -> None:
    """Load a plan file saved earlier (or written by hand) into the sliders."""
    st.file_uploader(
        "Load a plan (JSON)",
        type=["json"],
        key=keys.PRUNE_UPLOAD,
        on_change=_on_upload,
        args=(loaded,),
        help="A plan saved with “Download the plan”, or written by hand; it replaces the sliders' settings.",
    )
    message = st.session_state.pop(keys.PRUNE_UPLOAD_MESSAGE, None)
    if message is not None:
        kind, text = message
        (st.error if kind == "error" else st.success)(fmt.literal(text))


def plan_settings(loaded: LoadedModel, plan: pe.PruningPlan) -> None:
    """Granularity, criterion, and scope (or n and m for N:M), plus BatchNorm re-estimation when it applies."""
    options = capabilities.criteria(loaded, plan.granularity)
    if plan.criterion not in options:
        options.append(plan.criterion)
    seed(keys.PRUNE_GRANULARITY, plan.granularity)
    seed(keys.PRUNE_CRITERION, plan.criterion)
    left, middle, right = st.columns([1.4, 1, 1.1])
    left.radio(
        "Granularity",
        capabilities.granularities(loaded, plan),
        key=keys.PRUNE_GRANULARITY,
        format_func=lambda name: edits.GRANULARITY_LABELS.get(name, name),
        horizontal=True,
        on_change=_on_granularity,
        args=(loaded,),
        help="What is removed: single weights, whole channels, n of every m weights, whole attention heads "
        "(transformers only) or whole blocks (residual blocks, transformer layers). See “What is this?” above.",
    )
    middle.selectbox(
        "Criterion",
        options,
        key=keys.PRUNE_CRITERION,
        format_func=edits.criterion_label,
        on_change=_on_setting,
        args=(keys.PRUNE_CRITERION, "criterion"),
        help="How importance is scored: the least important go first. "
        + ("" if loaded.bundle.eval_data is not None else "Criteria that need data are hidden: this model has none."),
    )
    with right:
        if plan.granularity == "n:m":
            _nm_inputs(loaded, plan)
        else:
            seed(keys.PRUNE_SCOPE, plan.scope)
            st.radio(
                "Scope",
                list(pe.SCOPES),
                key=keys.PRUNE_SCOPE,
                format_func=lambda name: edits.SCOPE_LABELS.get(name, name),
                horizontal=True,
                on_change=_on_setting,
                args=(keys.PRUNE_SCOPE, "scope"),
                help="Per layer: each unlocked layer loses the global share. Global ranking: the unlocked "
                "layers are ranked together, so layers with more unimportant weights lose more.",
            )
    if capabilities.can_recalibrate(loaded):
        seed(keys.PRUNE_RECALIBRATE, plan.recalibrate_bn)
        st.toggle(
            "Re-estimate BatchNorm statistics after pruning",
            key=keys.PRUNE_RECALIBRATE,
            on_change=_on_setting,
            args=(keys.PRUNE_RECALIBRATE, "recalibrate_bn"),
            help=f"Runs {caches.CALIBRATION_EXAMPLES} training examples through the pruned model to refresh the "
            "BatchNorm averages, which removed channels make wrong. No weight changes; channel pruning needs it.",
        )
    elif plan.granularity == "channel" and (reason := capabilities.missing_training_data(loaded)):
        st.caption(f":material/info: {reason}")
    if plan.granularity in ("channel", "head"):
        seed(keys.PRUNE_ROUND_TO, plan.round_to or NO_ROUNDING)
        st.segmented_control(
            "Keep counts a multiple of",
            ROUNDINGS,
            key=keys.PRUNE_ROUND_TO,
            format_func=lambda value: "any" if value == NO_ROUNDING else str(value),
            on_change=_on_rounding,
            help="Fast kernels work in tiles: on a GPU a layer with 30 % of its channels gone but 45 of 64 "
            "left can run slower than the dense one (0.61× measured on an H200), while keeping 32 or 48 runs "
            "1.4× faster. Rounding the kept channels to a multiple of 8, 16 or 32 lets the kernels use full tiles; "
            "on a CPU it matters less. The predicted speed-up below shows what a choice buys here.",
        )


def _nm_inputs(loaded: LoadedModel, plan: pe.PruningPlan) -> None:
    seed(keys.PRUNE_N, plan.n)
    seed(keys.PRUNE_M, plan.m)
    n_column, m_column = st.columns(2)
    n_column.number_input(
        "n (kept)",
        min_value=1,
        max_value=max(plan.m - 1, 1),
        step=1,
        key=keys.PRUNE_N,
        on_change=_on_pattern,
        args=(loaded,),
    )
    m_column.number_input(
        "m (group)", min_value=2, max_value=32, step=1, key=keys.PRUNE_M, on_change=_on_pattern, args=(loaded,),
        help="Common patterns: 2:4 (what GPU sparse tensor cores run), 1:4, 4:8.",
    )  # fmt: skip


def _percent_slider(
    column: DeltaGenerator, label: str, top: int, key: str, on_change: Callable[[], None], help_text: str
) -> None:
    """A slider from 0 to `top` %, whose value lives in the session under `key`."""
    column.slider(label, 0, top, key=key, format="%d%%", on_change=on_change, help=help_text)


def global_controls(plan: pe.PruningPlan) -> None:
    """The global slider, the per-layer bounds under global scope, and Reset (its caption: `global_caption`)."""
    if plan.granularity == "n:m":
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        left.markdown(
            f"Every chosen layer keeps **{plan.n} of every {plan.m}** consecutive input weights: "
            f"**{fmt.percent(1 - plan.n / plan.m, 0)}** of its weights are removed. Choose the layers below."
        )
        right.button("Reset", key=keys.PRUNE_RESET, on_click=_on_reset, icon=":material/restart_alt:")
        return
    global_scope = plan.scope == "global"
    shown_percent = percent(plan.global_ratio, GLOBAL_MAX_PCT)
    seed(keys.PRUNE_GLOBAL, shown_percent)
    generation = state.controls_generation()
    number_key, preset_key = keys.prune_global_number("", generation), keys.prune_preset("", generation)
    seed(number_key, shown_percent)
    seed(preset_key, shown_percent if shown_percent in PRESETS else None)
    columns = st.columns([3, 2, 1] if global_scope else [5, 1], vertical_alignment="bottom")
    unit = {"channel": "channels", "head": "attention heads"}.get(plan.granularity, "weights")
    _percent_slider(
        columns[0],
        "Global ratio",
        GLOBAL_MAX_PCT,
        keys.PRUNE_GLOBAL,
        _on_global,
        f"The share of {unit} removed from every unlocked layer"
        + (", ranked across all of them." if global_scope else ".")
        + " A locked layer keeps its own value.",
    )
    if global_scope:
        seed(
            keys.PRUNE_BOUNDS, (percent(plan.min_ratio), percent(plan.max_ratio if plan.max_ratio is not None else 1.0))
        )
        _percent_slider(
            columns[1],
            "Bounds per layer",
            LAYER_MAX_PCT,
            keys.PRUNE_BOUNDS,
            _on_bounds,
            "The global ranking gives no unlocked layer less than the lower or more than the upper bound.",
        )
    number, presets = st.columns([1, 3], vertical_alignment="bottom")
    number.number_input(
        "Global ratio (%)",
        min_value=0,
        max_value=GLOBAL_MAX_PCT,
        step=1,
        key=number_key,
        on_change=_on_global,
        args=(number_key, generation),
        help="Type a value instead of stepping the slider.",
    )
    presets.segmented_control(
        "Presets",
        PRESETS,
        key=preset_key,
        format_func=lambda value: f"{value} %",
        on_change=_on_global,
        args=(preset_key, generation),
        help="Jump to a common ratio: half, then the high sparsities where magnitude pruning starts to hurt.",
    )
    columns[-1].button(
        "Reset",
        key=keys.PRUNE_RESET,
        on_click=_on_reset,
        icon=":material/restart_alt:",
        help="Unlock every layer, drop the bounds and set the global ratio back to "
        f"{fmt.percent(edits.DEFAULT_RATIO, 0)}.",
    )


def global_caption(plan: pe.PruningPlan) -> None:
    """What the global slider removes, counted on the applied result when there is one (draw it after
    applying the plan)."""
    if plan.granularity != "n:m":
        st.caption(global_meaning(plan, prune_result.applied_report(plan)))


def global_meaning(plan: pe.PruningPlan, applied: pd.DataFrame | None = None) -> str:
    """What the global slider's value means, in its own unit; with the applied result's report, the weights
    it really removes."""
    ratio = plan.global_ratio or 0.0
    where = "all unlocked layers (ranked together)" if plan.scope == "global" else "each unlocked layer"
    if plan.granularity == "head":
        return (
            f"{fmt.percent(ratio, 0)} of the heads of {where.replace('layer', 'attention layer')} are removed "
            "(rounded to whole heads; every attention layer keeps at least one)."
        )
    unit = "channels" if plan.granularity == "channel" else "weights"
    if applied is not None and not edits.follows_global(plan, applied.reset_index()):
        text = (
            f"Every layer that can lose {unit} is locked at its own ratio, so the global slider moves none of them "
            "(untick a layer's Lock to let it follow)"
        )
    elif plan.granularity == "channel":
        text = (
            f"{fmt.percent(ratio, 0)} of the channels of {where} are removed. A removed channel also takes the "
            "next layer's matching inputs, so layers lose more weights than channels"
        )
    else:
        return f"{fmt.percent(ratio, 0)} of the weights of {where} are set to zero, the least important first."
    if plan.granularity != "channel":
        return text + "."
    if applied is None:
        return text + ": the result counts them."
    before, after = int(applied["weights_before"].sum()), int(applied["weights_after"].sum())
    share = fmt.percent((before - after) / max(before, 1), 0)
    return text + f": {before - after:,} of the {before:,} weights of the prunable layers go ({share})."
