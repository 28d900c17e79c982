"""Channel scores of a criterion, computed once per model, criterion and data and kept for every session.

Inspect's views and the graph's importance overlay both read them from here, so a criterion is
never scored twice. Criteria that run the model show their progress while they work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import MappingProxyType

import streamlit as st

import prune_engine as pe
from ui.shared import caches
from workbench import fmt, importance_data
from workbench.importance_data import CriterionScores
from workbench.session import LoadedModel

DEFAULT_EXAMPLES = 256
"""Evaluation examples a data criterion looks at unless asked for fewer (the engine's own largest default)."""


def needs_missing_data(loaded: LoadedModel, criterion: str) -> bool:
    """True when `criterion` runs the model on data and `loaded` came without any."""
    return pe.CRITERIA[criterion].needs_data and loaded.bundle.eval_data is None


def shelf_key(loaded: LoadedModel, criterion: str, examples: int) -> tuple:
    needs_data = pe.CRITERIA[criterion].needs_data
    return (
        loaded.fingerprint,
        criterion,
        loaded.data_fingerprint if needs_data else None,
        examples if needs_data else 0,
    )


def criterion_scores(loaded: LoadedModel, criterion: str, examples: int) -> CriterionScores:
    """Channel scores of `criterion` on `loaded`, from the shelf or computed (with progress when it runs the model).

    Raises the engine's `PruneScopeError` when the criterion cannot score this model.
    """
    chosen = pe.CRITERIA[criterion]
    needs_data = chosen.needs_data
    key = shelf_key(loaded, criterion, examples)
    found = caches.importance_shelf().get(key)
    if found is not None:
        return found
    if not needs_data:
        result = _scored(loaded, criterion, examples, None)
    else:
        used = min(examples, len(loaded.bundle.eval_data))
        with st.status(f"Scoring every layer with {chosen.label} on {used} examples…", expanded=True) as status:
            bar = st.progress(0.0)
            try:
                result = _scored(loaded, criterion, examples, lambda done, note: bar.progress(done, fmt.literal(note)))
            except pe.PruneScopeError:
                status.update(label=f"{chosen.label} could not score this model", state="error", expanded=False)
                raise
            status.update(
                label=f"Scored with {chosen.label} on {used} examples in {result.seconds:.1f} s",
                state="complete",
                expanded=False,
            )
    caches.importance_shelf().put(key, result)
    return result


def _scored(
    loaded: LoadedModel, criterion: str, examples: int, progress: Callable[[float, str], None] | None
) -> CriterionScores:
    chosen = pe.CRITERIA[criterion]
    model = loaded.bundle.model
    eval_data = loaded.bundle.eval_data if chosen.needs_data else None
    start = time.perf_counter()
    scores = pe.importance(model, criterion, eval_data, level="channel", progress=progress, max_examples=examples)
    seconds = time.perf_counter() - start
    unscored = tuple(layer.name for layer in pe.prunable_layers(model) if layer.name not in scores)
    arrays = {}
    for name, tensor in scores.items():
        array = tensor.detach().cpu().double().numpy()
        array.setflags(write=False)
        arrays[name] = array
    return CriterionScores(
        criterion=criterion,
        scores=MappingProxyType(arrays),
        unscored=unscored,
        why=_why_unscored(loaded, criterion, unscored) if unscored else "",
        examples=None if eval_data is None else min(examples, len(eval_data)),
        seconds=seconds,
    )


def _why_unscored(loaded: LoadedModel, criterion: str, layers: tuple[str, ...]) -> str:
    """The engine's sentence for the layers a criterion left out, asked of criteria that need no data (and
    so cost nothing to ask); the others are pointed to their explanation."""
    chosen = pe.CRITERIA[criterion]
    if not chosen.needs_data:
        try:
            pe.importance(loaded.bundle.model, criterion, layers=list(layers))
        except pe.PruneScopeError as error:
            return str(error)
    return f"{chosen.label} scores only some kinds of layer (see About the criteria)."


def estimated_seconds(loaded: LoadedModel, criterion: str, examples: int) -> float:
    """About how long `criterion` takes on `examples` of the model's evaluation examples (one timed forward
    pass, times the criterion's passes)."""
    data_ = loaded.bundle.eval_data
    seconds = caches.forward_seconds(loaded.fingerprint, loaded.data_fingerprint, examples, loaded.bundle.model, data_)
    heads = sum(layer.heads for layer in pe.attention_layers(loaded.bundle.model))
    return importance_data.estimated_seconds(criterion, seconds, len(caches.layer_names(loaded)), heads)
