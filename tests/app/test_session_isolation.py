"""Several sessions on one server: each sees only its own model, plan and result; the models they share
through the caches are never changed; the shared cache of pruned models stays bounded."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from prune_engine.data import model_fingerprint
from sample_models import load_sample
from tests.app.helpers import start_app
from ui.shared import caches, keys
from ui.shared.navigation import COMPARE_PAGE, PRUNE_PAGE, SENSITIVITY_PAGE
from workbench.session import LoadedModel


def pruned_title(at: AppTest) -> str:
    """The heading of the pruned side on the Compare page."""
    return next(text for text in at.markdown.values if text.startswith("##### Pruned"))


def original_title(at: AppTest) -> str:
    return next(text for text in at.markdown.values if text.startswith("##### Original"))


@pytest.fixture
def two_sessions() -> tuple[AppTest, AppTest]:
    """Session A prunes digits_mlp's single weights at 60 %; session B digits_cnn's channels at 30 %, in turns."""
    first, second = start_app(), start_app()
    second.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    first.switch_page(PRUNE_PAGE).run()
    second.switch_page(PRUNE_PAGE).run()
    first.slider(key=keys.PRUNE_GLOBAL).set_value(60).run()
    second.radio(key=keys.PRUNE_GRANULARITY).set_value("channel").run()
    return first.switch_page(COMPARE_PAGE).run(), second.switch_page(COMPARE_PAGE).run()


def test_two_sessions_each_compare_their_own_model_and_plan(two_sessions: tuple[AppTest, AppTest]) -> None:
    first, second = two_sessions
    assert not first.exception and not second.exception
    assert original_title(first) == "##### Original · digits\\_mlp"
    assert pruned_title(first) == "##### Pruned · single weights · Magnitude \\(L1\\) · 60 % in every layer"
    assert original_title(second) == "##### Original · digits\\_cnn"
    assert pruned_title(second).startswith("##### Pruned · whole channels · Magnitude \\(L1\\) · 30 % in every layer")

    first.run()  # after the other session's work, a rerun still shows this session's own
    assert pruned_title(first) == "##### Pruned · single weights · Magnitude \\(L1\\) · 60 % in every layer"
    assert first.session_state[keys.PRUNED].base_fingerprint == first.session_state[keys.CURRENT_MODEL].fingerprint
    assert second.session_state[keys.PRUNED].base_fingerprint == second.session_state[keys.CURRENT_MODEL].fingerprint
    assert first.session_state[keys.CURRENT_MODEL].fingerprint != second.session_state[keys.CURRENT_MODEL].fingerprint


def test_shared_originals_and_results_are_unchanged_after_pruning_and_measuring(
    two_sessions: tuple[AppTest, AppTest],
) -> None:
    for session in two_sessions:
        loaded, pruned = session.session_state[keys.CURRENT_MODEL], session.session_state[keys.PRUNED]
        assert loaded is caches.load_sample_model(loaded.name)  # the one object every session shares
        assert model_fingerprint(loaded.bundle.model) == loaded.fingerprint
        assert loaded.fingerprint == LoadedModel.from_bundle(load_sample(loaded.name)).fingerprint
        assert model_fingerprint(pruned.model) == pruned.fingerprint


def test_fine_tuning_in_the_app_leaves_the_shared_original_unchanged_and_is_saved_as_a_run(
    app: AppTest, experiment_db: Path
) -> None:
    loaded = app.session_state[keys.CURRENT_MODEL]
    at = app.switch_page(SENSITIVITY_PAGE).run()
    at.number_input(key=keys.SENS_STEPS).set_value(1)
    at.button(key=keys.SENS_RUN_ITERATIVE).click().run()
    at.button(key=keys.SENS_USE_PRUNED).click().run()
    at.switch_page(COMPARE_PAGE).run()
    assert not at.exception

    assert model_fingerprint(caches.load_sample_model(loaded.name).bundle.model) == loaded.fingerprint
    fine_tuned = at.session_state[keys.PRUNED]
    runs = pe.ExperimentStore(experiment_db).list()
    assert runs["model_fingerprint"].tolist() == [loaded.fingerprint]
    assert runs["accuracy"].iloc[0] == pytest.approx(fine_tuned.result.history["accuracy"].iloc[-1], abs=1e-6)


def test_the_shared_cache_keeps_only_the_latest_pruned_models() -> None:
    loaded = caches.load_sample_model("digits_mlp")
    results = [caches.pruned(loaded, pe.PruningPlan(global_ratio=ratio / 100)) for ratio in range(5, 65, 5)]
    alive = [weakref.ref(result.model) for result in results]
    latest = results[-1]
    del results
    gc.collect()
    kept = [ref() is not None for ref in alive]
    assert sum(kept) <= caches.SHARED_RESULTS < len(alive)
    assert kept[-caches.SHARED_RESULTS :] == [True] * caches.SHARED_RESULTS
    assert caches.pruned(loaded, latest.plan) is latest
