"""Session-state keys and accessors, in one place.

Everything a user has chosen lives in `st.session_state`, which is per browser
session; nothing model-related is ever stored in a module global. A model that came
from `ui.cache` is shared between sessions, so it is read-only here as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import streamlit as st

import prune_engine as pe

CURRENT_MODEL = "current_model"
"""The `LoadedModel` every page works on."""

MODEL_SCOPED_KEYS: tuple[str, ...] = ()
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
