"""Session-state keys and accessors, in one place.

Everything a user has chosen lives in `st.session_state`, which is per browser
session; nothing model-related is ever stored in a module global. A model that came
from `ui.cache` is shared between sessions, so it is read-only here as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import streamlit as st
from torch import nn

import prune_engine as pe

CURRENT_MODEL = "current_model"
"""The `LoadedModel` every page works on."""

PLAN = "plan"
"""The `PruningPlan` the Prune page's controls describe (None until the page has run)."""

INCOMING_PLAN = "incoming_plan"
"""A plan sent to the Prune page from elsewhere (an upload, a suggestion, a past run),
waiting to be loaded into its sliders the next time that page runs."""

PRUNED = "pruned"
"""The `PrunedModel` made from the current model by the last applied plan."""

SAVED_RUNS = "saved_runs"
"""{(original fingerprint, pruned fingerprint, plan JSON): run id, or None once deleted}: the results this
session has saved to the experiment history, so that reruns and going back to an earlier plan save nothing twice."""

SAVED_RUNS_KEPT = 1000
"""Entries of `SAVED_RUNS` and `MEASURED` a session keeps (the latest): its memory stays bounded however long
it prunes; a result older than that, applied again, is saved again."""

MEASURED = "measured_runs"
"""{run id: the metrics last written to it from the Compare page}, so that a rerun writes nothing unchanged."""

MODEL_SCOPED_KEYS: tuple[str, ...] = (PLAN, INCOMING_PLAN, PRUNED)
"""Keys holding work done on the current model (plan, pruned result): a new model clears them."""

ModelSource = Literal["sample", "upload"]


@dataclass(frozen=True)
class LoadedModel:
    """A bundle with the content fingerprints that key every cache computed from it.

    Fingerprints are computed once, when the model is loaded, not on every rerun.
    `data_fingerprint` is None when the bundle carries no evaluation data.
    """

    bundle: pe.ModelBundle
    fingerprint: str
    data_fingerprint: str | None
    source: ModelSource = "sample"

    @classmethod
    def from_bundle(cls, bundle: pe.ModelBundle, source: ModelSource = "sample") -> LoadedModel:
        data = bundle.eval_data
        return cls(
            bundle=bundle,
            fingerprint=pe.model_fingerprint(bundle.model),
            data_fingerprint=None if data is None else data.fingerprint(),
            source=source,
        )

    @property
    def name(self) -> str:
        return self.bundle.name


def current_model() -> LoadedModel | None:
    """The model this session works on, or None before one is chosen."""
    return st.session_state.get(CURRENT_MODEL)


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
    st.session_state[CURRENT_MODEL] = loaded


def set_current_bundle(bundle: pe.ModelBundle, source: ModelSource = "sample") -> LoadedModel:
    """Fingerprint `bundle` and make it the current model."""
    loaded = LoadedModel.from_bundle(bundle, source)
    set_current_model(loaded)
    return loaded


@dataclass(frozen=True)
class PrunedModel:
    """A pruning result kept in the session, with the fingerprints that key its caches.

    `base_fingerprint` names the original it was pruned from, so a page can tell a
    result that belongs to the current model from a stale one.
    """

    result: pe.PruneResult
    fingerprint: str
    base_fingerprint: str

    @property
    def model(self) -> nn.Module:
        return self.result.model

    @property
    def plan(self) -> pe.PruningPlan:
        return self.result.plan

    @classmethod
    def from_result(cls, result: pe.PruneResult, base: LoadedModel) -> PrunedModel:
        return cls(result=result, fingerprint=pe.model_fingerprint(result.model), base_fingerprint=base.fingerprint)


def current_plan() -> pe.PruningPlan | None:
    """The plan the Prune page's controls describe, or None before it has run."""
    return st.session_state.get(PLAN)


def set_plan(plan: pe.PruningPlan) -> None:
    """Record the plan the controls describe (the Prune page calls this on every change)."""
    st.session_state[PLAN] = plan


def send_plan_to_sliders(plan: pe.PruningPlan) -> None:
    """Ask the Prune page to load `plan` into its controls the next time it runs."""
    st.session_state[INCOMING_PLAN] = plan


def take_incoming_plan() -> pe.PruningPlan | None:
    """The plan waiting to be loaded into the Prune page's controls, removed from the queue."""
    return st.session_state.pop(INCOMING_PLAN, None)


def current_pruned() -> PrunedModel | None:
    """The last pruning result for the current model, or None (also when it is stale)."""
    pruned = st.session_state.get(PRUNED)
    loaded = current_model()
    if pruned is None or loaded is None or pruned.base_fingerprint != loaded.fingerprint:
        return None
    return pruned


def set_pruned(pruned: PrunedModel) -> None:
    """Keep `pruned` as this session's result; the previous one is released."""
    st.session_state[PRUNED] = pruned


RunKey = tuple[str, str, str]


def run_key(pruned: PrunedModel) -> RunKey:
    """What makes a result one run of the history: the original, the pruned weights and the plan."""
    return pruned.base_fingerprint, pruned.fingerprint, pruned.plan.to_json()


def was_saved(pruned: PrunedModel) -> bool:
    """Whether this session has saved `pruned` to the history already (even if the run was deleted since)."""
    return run_key(pruned) in st.session_state.get(SAVED_RUNS, {})


def saved_run(pruned: PrunedModel) -> int | None:
    """The id of the run this session saved for `pruned`; None when it saved none or the run was deleted."""
    return st.session_state.get(SAVED_RUNS, {}).get(run_key(pruned))


def remember_run(pruned: PrunedModel, run_id: int | None) -> None:
    """Record that `pruned` is saved as run `run_id` (None: it could not be saved; do not try again)."""
    _put_latest(st.session_state.setdefault(SAVED_RUNS, {}), run_key(pruned), run_id)


def forget_run(run_id: int) -> None:
    """Mark run `run_id` deleted: its result is not saved again in this session, nor measured into it."""
    saved: dict[RunKey, int | None] = st.session_state.get(SAVED_RUNS, {})
    for key, saved_id in saved.items():
        if saved_id == run_id:
            saved[key] = None
    st.session_state.get(MEASURED, {}).pop(run_id, None)


def measured(run_id: int) -> dict[str, float | int]:
    """The metrics this session last wrote to run `run_id` from the Compare page (empty when none)."""
    return st.session_state.get(MEASURED, {}).get(run_id, {})


def set_measured(run_id: int, metrics: dict[str, float | int]) -> None:
    """Remember the metrics just written to run `run_id`."""
    _put_latest(st.session_state.setdefault(MEASURED, {}), run_id, metrics)


def _put_latest(entries: dict, key: object, value: object) -> None:
    """Set `entries[key]` as the newest entry, dropping the oldest beyond `SAVED_RUNS_KEPT`."""
    entries.pop(key, None)
    entries[key] = value
    while len(entries) > SAVED_RUNS_KEPT:
        entries.pop(next(iter(entries)))
