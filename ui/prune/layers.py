"""The Prune page's per-layer controls: one slider and lock per prunable layer (a toggle under N:M),
grouped by block for deep models and, for very deep ones, a page of blocks at a time.

An unlocked layer follows the global slider (under global scope it shows the ratio the
global ranking gives it); moving its slider locks it; a locked layer is a `plan.ratios`
entry and keeps its value when the global slider moves. Layers that channel pruning
couples (residual partners) are set and locked together. Like every Prune control, the
widgets are seeded from the session's plan and their callbacks write it back.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import prune_engine as pe
from ui.prune import result as prune_result
from ui.prune.controls import LAYER_MAX_PCT, percent, seed, update_plan
from ui.shared import caches, keys, state
from workbench import fmt
from workbench import plans as edits
from workbench.session import LoadedModel

COLUMNS = 3
"""Layer controls per row."""
GROUP_ABOVE = 8
"""Models with more prunable layers than this show them grouped by block, in expanders."""
GROUP_SIZE = 12
"""Blocks are cut at the shallowest module-path depth that keeps each within this many layers."""
GROUPS_PER_PAGE = 6
"""Models with more blocks than this show them a page at a time (a GPT-2-sized model has 13)."""


def on_layer(layer: str, partners: tuple[str, ...], generation: int) -> None:
    key = keys.prune_layer_ratio(layer, generation)
    ratio = st.session_state[key] / 100
    update_plan(
        lambda plan: edits.with_layers(plan, partners, ratio), widget=key, widget_generation=generation, resync=False
    )


def on_lock(layer: str, partners: tuple[str, ...], generation: int) -> None:
    key = keys.prune_layer_lock(layer, generation)
    if st.session_state[key]:
        on_layer(layer, partners, generation)
    else:
        update_plan(
            lambda plan: edits.without_layers(plan, partners), widget=key, widget_generation=generation, resync=False
        )


def on_nm_layer(loaded: LoadedModel, layer: str, generation: int) -> None:
    layers = caches.layer_names(loaded)
    keep = st.session_state[keys.prune_layer_nm(layer, generation)]

    def change(plan: pe.PruningPlan) -> pe.PruningPlan:
        selected = {name for name in layers if plan.target_ratio(name) > 0}
        return edits.nm_selection(plan, layers, selected | {layer} if keep else selected - {layer})

    update_plan(change, widget_generation=generation, resync=False)


def sliders(loaded: LoadedModel, plan: pe.PruningPlan, preview: pe.PlanPreview | None) -> None:
    """One slider and lock per prunable layer (one toggle under N:M), grouped by block for deep models."""
    stats = caches.model_layers(loaded).set_index("name")
    rows = preview.table.set_index("layer") if preview is not None else None
    applied = prune_result.applied_report(plan)
    if plan.granularity == "n:m":
        st.caption("Switch a layer off to leave it dense.")
    else:
        st.caption(
            "Each layer follows the global slider until you move its own slider, which locks it; "
            "untick Lock to let it follow again."
        )
    if (
        plan.scope == "global"
        and preview is not None
        and not preview.scores
        and prune_result.ranks_on_apply(loaded, plan)
    ):
        st.caption(
            ":material/info: On a model this large the global ranking runs when you apply the plan: until then "
            "each unlocked layer shows the global ratio, afterwards the share the ranking gave it."
        )
    query = st.text_input(
        "Filter layers", key=keys.PRUNE_FILTER, placeholder="part of a layer name, e.g. layer2", width=420
    ).strip()
    grouped = len(stats) > GROUP_ABOVE
    groups = edits.layer_groups(list(stats.index), GROUP_SIZE) if grouped else [("", list(stats.index))]
    if len(groups) > GROUPS_PER_PAGE and not query:
        groups = _page_of(groups)
    shown = 0
    for label, layers in groups:
        members = [name for name in layers if query.lower() in name.lower()]
        if not members:
            continue
        shown += len(members)
        if grouped and len(layers) > 1:
            box = _group_box(label, members, opened=bool(query))
            if not box.open:
                continue
        else:
            box = st.container()
        with box:
            for start in range(0, len(members), COLUMNS):
                for column, name in zip(st.columns(COLUMNS), members[start : start + COLUMNS], strict=False):
                    with column:
                        _layer_control(loaded, plan, name, stats.loc[name], rows, applied)
    if not shown:
        st.caption(f"No layer name contains “{fmt.literal(query)}”.")


def _page_of(groups: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The blocks of the page chosen in a row of page buttons named by their first and last block.

    Only that page's blocks are drawn, so the page stays quick however deep the model is; the
    filter searches every block.
    """
    pages = [groups[start : start + GROUPS_PER_PAGE] for start in range(0, len(groups), GROUPS_PER_PAGE)]
    if st.session_state.get(keys.PRUNE_LAYER_PAGE, 0) >= len(pages):
        st.session_state[keys.PRUNE_LAYER_PAGE] = 0
    chosen = st.radio(
        "Blocks",
        range(len(pages)),
        key=keys.PRUNE_LAYER_PAGE,
        horizontal=True,
        format_func=lambda index: _page_label(pages[index]),
        help=f"{len(groups)} blocks, {GROUPS_PER_PAGE} to a page; the filter above searches all of them.",
    )
    return pages[chosen]


def _page_label(page: list[tuple[str, list[str]]]) -> str:
    first, last = page[0][0], page[-1][0]
    return fmt.literal(first if first == last else f"{first} – {last}")


def _group_box(label: str, members: list[str], opened: bool) -> DeltaGenerator:
    """An expander for one block of layers whose sliders are only built while it is open.

    A deep model's sliders all change when the global slider moves, and drawing them all at
    every step is what makes the page slow; a closed block costs nothing.
    Its title stays the same while sliders move and locks change: Streamlit tells expanders apart
    by their label too, and a new label would close an open block.
    """
    if opened:
        st.session_state[keys.prune_group(label)] = True
    title = f"{fmt.literal(label)} · {len(members)} layers"
    return st.expander(title, key=keys.prune_group(label), on_change="rerun", icon=":material/layers:")


def _layer_control(
    loaded: LoadedModel,
    plan: pe.PruningPlan,
    name: str,
    stats: pd.Series,
    rows: pd.DataFrame | None,
    applied: pd.DataFrame | None,
) -> None:
    row = rows.loc[name] if rows is not None and name in rows.index else None
    note = str(row["note"]) if row is not None else ""
    generation = state.controls_generation()
    if plan.granularity == "n:m":
        seed(keys.prune_layer_nm(name, generation), plan.target_ratio(name) > 0)
        st.toggle(
            fmt.literal(name),
            key=keys.prune_layer_nm(name, generation),
            on_change=on_nm_layer,
            args=(loaded, name, generation),
        )
        st.caption(fmt.literal(note) if note else f"{stats['kind']} · {int(stats['weights']):,} weights")
        return
    blocked = edits.is_blocked(row)
    partners = edits.coupled_layers(name, rows) if plan.granularity == "channel" else (name,)
    locked = name in plan.ratios
    assigned = float(row["assigned_ratio"]) if row is not None else plan.target_ratio(name)
    shown = plan.ratios[name] if locked else assigned if plan.is_global_ranked(name) else plan.target_ratio(name)
    seed(keys.prune_layer_ratio(name, generation), 0 if blocked else percent(shown))
    seed(keys.prune_layer_lock(name, generation), locked)
    slider, lock = st.columns([3, 1], vertical_alignment="bottom")
    slider.slider(
        fmt.literal(name),
        0,
        LAYER_MAX_PCT,
        key=keys.prune_layer_ratio(name, generation),
        format="%d%%",
        disabled=blocked,
        on_change=on_layer,
        args=(name, partners, generation),
        help="Moving this slider locks the layer at its value; untick Lock to let it follow the global slider.",
    )
    lock.checkbox(
        "Lock",
        key=keys.prune_layer_lock(name, generation),
        disabled=blocked,
        on_change=on_lock,
        args=(name, partners, generation),
    )
    removed = applied.loc[name] if applied is not None and name in applied.index else None
    st.caption(layer_meaning(plan, name, stats, assigned, blocked, note, locked, removed))


def layer_meaning(
    plan: pe.PruningPlan,
    name: str,
    stats: pd.Series,
    assigned: float,
    blocked: bool,
    note: str,
    locked: bool,
    applied: pd.Series | None = None,
) -> str:
    """What a layer loses in its own unit, how that is set (locked, global slider, ranking) and its coupling
    (Markdown). Weights removed are the engine's count from the applied result (`applied`, its report row), never
    an estimate: a layer whose inputs come from pruned channels loses more weights than channels."""
    if blocked:
        return f":material/block: {fmt.literal(note[:1].upper() + note[1:])}."
    if plan.granularity == "channel":
        channels = int(stats["out_channels"])
        text = f"removes {round(assigned * channels):,} of its {channels:,} channels"
        if applied is not None:
            text += f" and {removed_weights(applied)}"
    else:
        text = f"sets {fmt.percent(assigned, 0)} of its {int(stats['weights']):,} weights to zero"
    how = "locked" if locked else "by the global ranking" if plan.is_global_ranked(name) else "follows global"
    caption = fmt.literal(f"{text} · {how}")
    return caption + (f"  \n:material/link: {fmt.literal(note)}" if note else "")


def removed_weights(row: pd.Series) -> str:
    """ "removes 144 of its 288 weights (50 %)", from a report row's counts."""
    before, after = int(row["weights_before"]), int(row["weights_after"])
    share = fmt.percent((before - after) / before, 0) if before else fmt.MISSING
    return f"{before - after:,} of its {before:,} weights ({share})"
