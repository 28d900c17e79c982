"""Session-state accessors: the one place that reads and writes what a session works on.

Everything a user has chosen lives in `st.session_state`, which is per browser
session; nothing model-related is ever stored in a module global. A model that came
from `ui.shared.caches` is shared between sessions, so it is read-only here as well.
"""

from __future__ import annotations

import streamlit as st

import prune_engine as pe
from ui.shared import caches, keys
from workbench.session import LoadedModel, ModelSource, PrunedModel, RunKey, run_key
from workbench.tasks import ScanOutcome

SAVED_RUNS_KEPT = 1000
"""Entries of `SAVED_RUNS` and `MEASURED` a session keeps (the latest): its memory stays bounded however long
it prunes; a result older than that, applied again, is saved again."""


MODEL_SCOPED_KEYS: tuple[str, ...] = (keys.PLAN, keys.INCOMING_PLAN, keys.PRUNED)
"""Keys holding work done on the current model (plan, pruned result): a new model clears them."""


def current_model() -> LoadedModel | None:
    """The model this session works on, or None before one is chosen."""
    return st.session_state.get(keys.CURRENT_MODEL)


def current_bundle() -> pe.ModelBundle | None:
    """The bundle of the current model, or None before one is chosen."""
    loaded = current_model()
    return None if loaded is None else loaded.bundle


def set_current_model(loaded: LoadedModel) -> None:
    """Make `loaded` the model every page works on, dropping work done on the previous one."""
    previous = current_model()
    if previous is not None and previous.fingerprint != loaded.fingerprint:
        for key in MODEL_SCOPED_KEYS:
            st.session_state.pop(key, None)
    st.session_state[keys.CURRENT_MODEL] = loaded


def set_current_bundle(bundle: pe.ModelBundle, source: ModelSource = "sample") -> LoadedModel:
    """Fingerprint `bundle` and make it the current model."""
    loaded = LoadedModel.from_bundle(bundle, source)
    set_current_model(loaded)
    return loaded


def current_device() -> str:
    """The device chosen in the sidebar for the working copies; "cpu" until one is chosen or
    when the chosen one is no longer available."""
    device = st.session_state.get(keys.DEVICE, "cpu")
    return device if device in pe.available_devices() else "cpu"


def working_model(dtype: str | None = None) -> LoadedModel | None:
    """The current model placed on the chosen device (in `dtype`, e.g. "float16" for latency on a
    GPU, when given): the one engine steps run on. None before a model is chosen. Its
    fingerprint names the device, so results cached from it are kept per device."""
    loaded = current_model()
    return None if loaded is None else caches.working_copy(loaded, current_device(), dtype)


def current_plan() -> pe.PruningPlan | None:
    """The plan the Prune page's controls describe, or None before it has run."""
    return st.session_state.get(keys.PLAN)


def set_plan(plan: pe.PruningPlan) -> None:
    """Record the plan the controls describe (the Prune page calls this on every change)."""
    st.session_state[keys.PLAN] = plan


def controls_generation() -> int:
    """The generation of the Prune page's per-layer widgets (see `keys.prune_layer_ratio`)."""
    return st.session_state.get(keys.PRUNE_GENERATION, 0)


def resync_layer_controls() -> None:
    """Start a new generation of per-layer widgets: they show the plan afresh, and what the browser still
    sends for the old ones is ignored."""
    st.session_state[keys.PRUNE_GENERATION] = controls_generation() + 1
    st.session_state.pop(keys.PRUNE_SHOWN, None)


def send_plan_to_sliders(plan: pe.PruningPlan) -> None:
    """Ask the Prune page to load `plan` into its controls the next time it runs."""
    st.session_state[keys.INCOMING_PLAN] = plan


def take_incoming_plan() -> pe.PruningPlan | None:
    """The plan waiting to be loaded into the Prune page's controls, removed from the queue."""
    return st.session_state.pop(keys.INCOMING_PLAN, None)


def current_pruned(*, finished: bool = True) -> PrunedModel | None:
    """The last pruning result for the current model, or None (also when it is stale).

    A draft (the Prune page's live result, whose BatchNorm re-estimation waits) is finished first and kept
    finished, unless `finished` is False: for the Prune page, which shows only its structure.
    """
    pruned = st.session_state.get(keys.PRUNED)
    if pruned is None or _base_of(pruned) is None:
        return None
    return finish(pruned) if finished else pruned


def finish(pruned: PrunedModel) -> PrunedModel:
    """`pruned` ready to be run, saved or exported: a draft of the current model finished (`caches.finished`);
    when it is the session's result, the finished one becomes the result."""
    base = _base_of(pruned)
    if not pruned.result.batchnorm_pending or base is None:
        return pruned
    finished = caches.finished(base, pruned)
    if st.session_state.get(keys.PRUNED) is pruned:
        st.session_state[keys.PRUNED] = finished
    return finished


def _base_of(pruned: PrunedModel) -> LoadedModel | None:
    """The current model (as loaded, or placed on the chosen device) that `pruned` was pruned from, or None."""
    loaded, working = current_model(), working_model()
    return next((model for model in (working, loaded) if model and model.fingerprint == pruned.base_fingerprint), None)


def set_pruned(pruned: PrunedModel) -> None:
    """Keep `pruned` as this session's result; the previous one is released. A draft whose finished form is
    already the result leaves it in place."""
    kept = st.session_state.get(keys.PRUNED)
    if kept is not None and kept.draft_fingerprint == pruned.fingerprint:
        return
    st.session_state[keys.PRUNED] = pruned


def was_saved(pruned: PrunedModel) -> bool:
    """Whether this session has saved `pruned` to the history already (even if the run was deleted since)."""
    return run_key(pruned) in st.session_state.get(keys.SAVED_RUNS, {})


def saved_run(pruned: PrunedModel) -> int | None:
    """The id of the run this session saved for `pruned`; None when it saved none or the run was deleted."""
    return st.session_state.get(keys.SAVED_RUNS, {}).get(run_key(pruned))


def remember_run(pruned: PrunedModel, run_id: int | None) -> None:
    """Record that `pruned` is saved as run `run_id` (None: it could not be saved; do not try again)."""
    caches.put_latest(caches.session_memo(keys.SAVED_RUNS), run_key(pruned), run_id, SAVED_RUNS_KEPT)


def forget_run(run_id: int) -> None:
    """Mark run `run_id` deleted: its result is not saved again in this session, nor measured into it."""
    saved: dict[RunKey, int | None] = st.session_state.get(keys.SAVED_RUNS, {})
    for key, saved_id in saved.items():
        if saved_id == run_id:
            saved[key] = None
    st.session_state.get(keys.MEASURED, {}).pop(run_id, None)


def measured(run_id: int) -> dict[str, float | int]:
    """The metrics this session last wrote to run `run_id` from the Compare page (empty when none)."""
    return st.session_state.get(keys.MEASURED, {}).get(run_id, {})


def set_measured(run_id: int, metrics: dict[str, float | int]) -> None:
    """Remember the metrics just written to run `run_id`."""
    caches.put_latest(caches.session_memo(keys.MEASURED), run_id, metrics, SAVED_RUNS_KEPT)


def last_scan() -> ScanOutcome | None:
    """The Sensitivity page's last finished scan, if it was made on the current model and its data."""
    outcome: ScanOutcome | None = st.session_state.get(keys.SENS_SCAN)
    loaded = current_model()
    if outcome is None or loaded is None:
        return None
    return (
        outcome
        if (outcome.fingerprint, outcome.data_fingerprint) == (loaded.fingerprint, loaded.data_fingerprint)
        else None
    )
