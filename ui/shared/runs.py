"""Saving results to the experiment history: once when a result is kept, then what Compare measures.

Prune, Sensitivity and Compare all keep results; the history itself is shown by the Experiments page.
"""

from __future__ import annotations

import streamlit as st
import torch

import prune_engine as pe
from ui.shared import caches, state
from workbench import fmt
from workbench.session import LoadedModel, PrunedModel

QUALITY_METRICS = ("accuracy", "perplexity", "paraphrase_accuracy", "loss", "agreement", "cosine")
MADE_BY_PREFIXES = ("Prune in steps", "Sparsity training")
"""How the names of runs made other than by applying their plan once begin (see `keep_result`)."""
HEADLINE_METRICS = ("accuracy", "perplexity", "paraphrase_accuracy", "loss")
"""What a result's evaluation adds to its run as soon as it is applied (when that evaluation is cheap)."""
SUMMARY_METRICS = ("params", "nonzero_params", "flops", "size_bytes", "sparse_bytes", "sparsity")


def keep_result(loaded: LoadedModel, pruned: PrunedModel, with_accuracy: bool, made_by: str | None = None) -> None:
    """Make `pruned` this session's result and save it to the experiment history (once).

    For results the user asked for (Apply, "Use this model"); a live slider step only becomes
    the session's result (`state.set_pruned`) and is saved when the user saves it or opens Compare.
    `with_accuracy`: evaluate it on the test data now (cheap models); otherwise Compare adds it.
    `made_by` names how a result other than a plain application of its plan was made
    ("Prune in steps …"): it becomes the run's name and keeps it apart from a plain run of the same plan.
    """
    state.set_pruned(pruned)
    save_result(loaded, pruned, with_accuracy, made_by)


def save_result(loaded: LoadedModel, pruned: PrunedModel, with_accuracy: bool, made_by: str | None = None) -> None:
    """Save `pruned` (finished, when it is a draft) to the experiment history unless this session already did."""
    pruned = state.finish(pruned)
    if not state.was_saved(pruned):
        _save(loaded, pruned, applied_metrics(loaded, pruned, with_accuracy), made_by)


def applied_metrics(loaded: LoadedModel, pruned: PrunedModel, with_accuracy: bool) -> dict[str, float | int | None]:
    """The figures a result has as soon as it is applied: sizes and FLOPs, and accuracy when asked."""
    summary = caches.pruned_summary(loaded, pruned)
    metrics: dict[str, float | int | None] = {key: summary.get(key) for key in SUMMARY_METRICS}
    if with_accuracy:
        try:
            evaluation = caches.pruned_evaluation(loaded, pruned) or {}
        except pe.PruneScopeError:
            evaluation = {}
        metrics.update({key: evaluation[key] for key in HEADLINE_METRICS if key in evaluation})
    return metrics


def record_measurements(loaded: LoadedModel, pruned: PrunedModel, latency: pe.LatencyResult | None) -> None:
    """(Compare page) Add what Compare measured, quality and latency, to the run of `pruned`; unchanged: no write."""
    if not state.was_saved(pruned):
        _save(loaded, pruned, applied_metrics(loaded, pruned, with_accuracy=False))
    run_id = state.saved_run(pruned)
    if run_id is None:
        return
    metrics = {**_quality(loaded, pruned), **_latency(latency)}
    if not metrics or metrics == state.measured(run_id):
        return
    try:
        caches.experiments().update_metrics(run_id, metrics)
    except pe.PruneScopeError as error:
        st.caption(f"The experiment history was not updated: {fmt.literal(str(error))}")
    state.set_measured(run_id, metrics)


def _save(
    loaded: LoadedModel, pruned: PrunedModel, metrics: dict[str, float | int | None], made_by: str | None = None
) -> None:
    """Add the run, or update the run that already holds this model and plan (made the same way)."""
    try:
        store = caches.experiments()
        run_id = _same_run(store, loaded, pruned, made_by)
        if run_id is None:
            run_id = store.add(made_by, pruned.plan, metrics, model_name=loaded.name, model_fingerprint=loaded.identity)
        else:
            store.update_metrics(run_id, metrics)
    except pe.PruneScopeError as error:
        st.warning(
            f"This result could not be saved to the experiment history: {fmt.literal(str(error))}",
            icon=":material/warning:",
        )
        run_id = None
    state.remember_run(pruned, run_id)


def _same_run(store: pe.ExperimentStore, loaded: LoadedModel, pruned: PrunedModel, made_by: str | None) -> int | None:
    """The newest run of this model with the same plan, made the same way, from any session; None if there is none.

    A plain application of a plan gives the same model every time, so it matches any run of that plan
    not made by another method (a renamed one too); a result made another way matches only its own kind.
    """
    runs = store.list(model_fingerprint=loaded.identity)
    same = runs[runs["plan_json"] == pruned.plan.to_json()]
    names = same["name"].fillna("").astype(str)
    same = same[~names.str.startswith(MADE_BY_PREFIXES)] if made_by is None else same[names == made_by]
    return int(same["id"].iloc[0]) if len(same) else None


def _quality(loaded: LoadedModel, pruned: PrunedModel) -> dict[str, float]:
    """Accuracy and loss with labels, and agreement and cosine with the original's outputs (all cached)."""
    data = loaded.bundle.eval_data
    if data is None or loaded.data_fingerprint is None:
        return {}
    try:
        evaluation = caches.pruned_evaluation(loaded, pruned) or {}
        original = caches.outputs(loaded.fingerprint, loaded.data_fingerprint, loaded.bundle.model, data)
        after = caches.outputs(pruned.fingerprint, loaded.data_fingerprint, pruned.model, data)
        evaluation = {**evaluation, **pe.fidelity(torch.from_numpy(after), torch.from_numpy(original))}
    except pe.PruneScopeError:
        return {}
    return {key: float(evaluation[key]) for key in QUALITY_METRICS if key in evaluation}


def _latency(latency: pe.LatencyResult | None) -> dict[str, float | int]:
    """The pruned model's median and IQR with the setting they were measured at, and the original's median."""
    if latency is None:
        return {}
    table = latency.table.set_index("model")
    row = table.loc["pruned"]
    return {
        "latency_median_ms": float(row["median_ms"]),
        "latency_iqr_ms": float(row["iqr_ms"]),
        "speedup": float(row["speedup"]),
        "batch_size": int(row["batch_size"]),
        "threads": int(row["threads"]),
        "original_latency_median_ms": float(table.loc["original", "median_ms"]),
    }


def made_by(pruned: PrunedModel) -> str | None:
    """How a saved result was made when it was not one application of its plan (its run's name), else None."""
    run_id = state.saved_run(pruned)
    if run_id is None:
        return None
    try:
        name = caches.experiments().get(run_id).name
    except pe.PruneScopeError:
        return None
    return name if name and name.startswith(MADE_BY_PREFIXES) else None
