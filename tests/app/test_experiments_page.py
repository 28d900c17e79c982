"""The Experiments page under AppTest: applied plans become runs, Compare adds its measurements, runs can be
renamed, deleted, diffed, re-loaded into the sliders and exported as CSV."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from sample_models import load_sample
from ui.shared import keys
from ui.shared.navigation import COMPARE_PAGE, EXPERIMENTS_PAGE, MODEL_PAGE, PRUNE_PAGE
from workbench.session import LoadedModel


def save(at: AppTest) -> AppTest:
    """Press the Prune page's "Save to the history"."""
    return at.button(key=keys.PRUNE_SAVE).click().run()


@pytest.fixture
def two_runs(app: AppTest) -> AppTest:
    """On the Prune page: 30 % (the default) saved, 40 % and 45 % only tried, 50 % saved, back at 30 % (shown as
    saved already); then the Experiments page."""
    save(app.switch_page(PRUNE_PAGE).run())
    for ratio in (40, 45, 50):
        app.slider(key=keys.PRUNE_GLOBAL).set_value(ratio).run()
    save(app)
    app.slider(key=keys.PRUNE_GLOBAL).set_value(30).run()
    assert keys.PRUNE_SAVE not in [button.key for button in app.button]
    assert any("Saved in the history as run #1" in caption.value for caption in app.caption)
    return app.switch_page(EXPERIMENTS_PAGE).run()


def table(at: AppTest) -> pd.DataFrame:
    """The runs table as shown."""
    return next(frame.value for frame in at.dataframe if (frame.key or "").startswith(keys.EXPERIMENTS_TABLE))


def select(at: AppTest, *run_ids: int) -> AppTest:
    """Select the rows of these runs in the table, as a click on them does."""
    frame = next(frame for frame in at.dataframe if (frame.key or "").startswith(keys.EXPERIMENTS_TABLE))
    rows = [frame.value["id"].tolist().index(run_id) for run_id in run_ids]
    at.session_state[frame.key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def runs_by_ratio(experiment_db: Path, model: str | None = None) -> dict[float, int]:
    """Global ratio → run id of the runs stored (of one model, when given)."""
    runs = pe.ExperimentStore(experiment_db).list(model_name=model)
    return {
        json.loads(text)["global_ratio"]: int(run_id)
        for run_id, text in zip(runs["id"], runs["plan_json"], strict=True)
    }


def test_the_table_shows_shares_in_percent_and_sizes_in_kb_like_the_other_pages(
    two_runs: AppTest, experiment_db: Path
) -> None:
    stored = pe.ExperimentStore(experiment_db).list().set_index("id")
    shown = table(two_runs).set_index("id")
    assert shown["accuracy"].tolist() == pytest.approx((stored.loc[shown.index, "accuracy"] * 100).tolist())
    assert shown["size_bytes"].tolist() == pytest.approx((stored.loc[shown.index, "size_bytes"] / 1024).tolist())
    assert 90 < shown["accuracy"].min() <= shown["accuracy"].max() <= 100


def test_each_saved_plan_is_one_run_slider_steps_save_nothing_and_compare_adds_latency(
    two_runs: AppTest, experiment_db: Path
) -> None:
    at = two_runs
    assert not at.exception
    assert table(at)["plan"].tolist() == [
        "single weights · Magnitude (L1) · 50 % in every layer",
        "single weights · Magnitude (L1) · 30 % in every layer",
    ]
    store = pe.ExperimentStore(experiment_db)
    run = store.get(runs_by_ratio(experiment_db)[0.3])
    assert run.model_name == "digits_mlp"
    assert run.model_fingerprint == at.session_state[keys.CURRENT_MODEL].fingerprint
    assert {"params", "nonzero_params", "flops", "size_bytes", "accuracy"} <= set(run.metrics)
    assert "latency_median_ms" not in run.metrics

    at.switch_page(COMPARE_PAGE).run()
    at.switch_page(COMPARE_PAGE).run()
    at.switch_page(PRUNE_PAGE).run()
    measured = store.get(run.id)
    assert store.count() == 2
    assert measured.metrics["latency_median_ms"] > 0
    assert (measured.metrics["batch_size"], measured.metrics["threads"]) == (32, 1)
    assert 0 <= measured.metrics["agreement"] <= 1

    at.switch_page(EXPERIMENTS_PAGE).run()
    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]
    assert titles == [
        "Accuracy vs latency per batch (ms): one run so far",
        "Accuracy vs non-zero parameters: 2 of 2 runs on the front",
        "Accuracy vs FLOPs per example: 1 of 2 runs on the front",  # unstructured: same dense FLOPs,
    ]


def test_a_run_is_renamed_then_deleted_for_good(two_runs: AppTest, experiment_db: Path) -> None:
    run_id = runs_by_ratio(experiment_db)[0.5]
    at = select(two_runs, run_id)
    at.text_input(key=keys.experiments_name(str(run_id))).set_value("half of it")
    at.text_area(key=keys.experiments_notes(str(run_id))).set_value("tried in class")
    at.button(key=keys.experiments_save(str(run_id))).click().run()
    assert not at.exception
    assert f"Saved the name and notes of run #{run_id}." in at.success.values
    assert table(at).set_index("id").loc[run_id, ["name", "notes"]].tolist() == ["half of it", "tried in class"]

    at.text_input(key=keys.EXPERIMENTS_SEARCH).set_value("HALF").run()
    assert table(at)["id"].tolist() == [run_id]
    assert "Selected run" not in at.subheader.values  # row positions changed, so the selection is cleared
    at.text_input(key=keys.EXPERIMENTS_SEARCH).set_value("").run()

    at = select(at, run_id)
    at.button(key=keys.EXPERIMENTS_DELETE).click().run()
    assert f"Deleted run #{run_id}." in at.success.values
    assert run_id not in table(at)["id"].tolist()
    at.switch_page(PRUNE_PAGE).run()
    at.slider(key=keys.PRUNE_GLOBAL).set_value(50).run()
    assert runs_by_ratio(experiment_db).get(0.5) is None  # a deleted result is not saved again in this session


def test_two_selected_runs_show_their_plans_layer_by_layer(two_runs: AppTest, experiment_db: Path) -> None:
    ids = runs_by_ratio(experiment_db)
    at = select(two_runs, ids[0.3], ids[0.5])
    assert not at.exception
    settings, layers = (frame.value for frame in at.dataframe[1:3])
    assert settings.to_dict("records") == [{"setting": "global_ratio", f"#{ids[0.3]}": "0.3", f"#{ids[0.5]}": "0.5"}]
    assert layers.columns.tolist() == ["layer", f"#{ids[0.3]}", f"#{ids[0.5]}", "change"]
    assert layers["layer"].tolist() == ["fc1", "fc2", "fc3"]
    assert layers["change"].tolist() == pytest.approx([0.2, 0.2, 0.2], abs=1e-3)


def test_a_run_is_reloaded_into_the_prune_sliders(two_runs: AppTest, experiment_db: Path) -> None:
    at = select(two_runs, runs_by_ratio(experiment_db)[0.5])
    at.button(key=keys.EXPERIMENTS_RELOAD).click().run()
    assert not at.exception
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 50
    assert at.session_state[keys.PLAN].global_ratio == pytest.approx(0.5)


def test_the_csv_export_holds_the_listed_runs(two_runs: AppTest, downloads: dict[str, bytes]) -> None:
    at = two_runs
    at.multiselect(key=keys.EXPERIMENTS_GRANULARITY).select("unstructured").run()
    url = at.download_button(key=keys.EXPERIMENTS_EXPORT).proto.url
    exported = pd.read_csv(io.BytesIO(downloads[url.rsplit("/", 1)[-1].split(".")[0]]))
    assert exported["id"].tolist() == table(at)["id"].tolist()
    assert {"plan_json", "accuracy", "params", "model_fingerprint"} <= set(exported.columns)
    assert set(exported["model_name"]) == {"digits_mlp"}


def test_runs_are_listed_per_model_and_another_samples_run_switches_model(
    two_runs: AppTest, experiment_db: Path
) -> None:
    at = two_runs.switch_page(MODEL_PAGE).run()
    at.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    save(at.switch_page(PRUNE_PAGE).run())
    at = at.switch_page(EXPERIMENTS_PAGE).run()
    assert table(at)["plan"].tolist() == ["single weights · Magnitude (L1) · 30 % in every layer"]
    assert "model_name" not in table(at)

    at.toggle(key=keys.EXPERIMENTS_ALL_MODELS).set_value(True).run()
    assert table(at)["model_name"].tolist() == ["digits_cnn", "digits_mlp", "digits_mlp"]
    at = at.switch_page(MODEL_PAGE).run().switch_page(EXPERIMENTS_PAGE).run()
    assert at.toggle(key=keys.EXPERIMENTS_ALL_MODELS).value, "the choice outlives a visit to another page"
    assert table(at)["model_name"].tolist() == ["digits_cnn", "digits_mlp", "digits_mlp"]
    at = select(at, runs_by_ratio(experiment_db, "digits_mlp")[0.5])
    assert at.button(key=keys.EXPERIMENTS_RELOAD).label == "Switch to digits_mlp and load the plan"
    at.button(key=keys.EXPERIMENTS_RELOAD).click().run()
    assert not at.exception
    assert at.session_state[keys.CURRENT_MODEL].name == "digits_mlp"
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 50


def test_an_unusable_database_warns_and_pruning_goes_on(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(pe.experiments.DB_ENV_VAR, str(blocker / "experiments.db"))
    at = save(app.switch_page(PRUNE_PAGE).run())
    assert not at.exception
    assert any("could not be saved to the experiment history" in warning.value for warning in at.warning)
    assert at.session_state[keys.PRUNED] is not None
    at.switch_page(COMPARE_PAGE).run()
    assert not at.exception
    at.switch_page(EXPERIMENTS_PAGE).run()
    assert not at.exception
    assert any("The experiment history cannot be read" in error.value for error in at.error)


def test_a_language_models_runs_are_ranked_by_perplexity_with_lower_drawn_higher(
    app: AppTest, experiment_db: Path
) -> None:
    """Runs of the current model stored with a perplexity (as Compare stores a language model's): the view does
    not care which model made them, only which figure they have."""
    identity = LoadedModel.from_bundle(load_sample(app.session_state[keys.MODEL_SAMPLE_PICKER])).identity
    store = pe.ExperimentStore(experiment_db)
    for ratio, perplexity, nonzero in ((0.3, 7.1, 700_000), (0.5, 9.4, 500_000), (0.6, 9.9, 600_000)):
        plan = pe.PruningPlan(global_ratio=ratio)
        metrics = {"perplexity": perplexity, "nonzero_params": nonzero, "flops": 10**9}
        store.add(None, plan, metrics, model_name="a language model", model_fingerprint=identity)
    at = app.switch_page(EXPERIMENTS_PAGE).run()
    assert not at.exception
    shown = table(at)
    assert shown["perplexity"].tolist() == [9.9, 9.4, 7.1]
    assert "accuracy" not in shown.columns, "no run has an accuracy: no empty column"
    charts = [json.loads(chart.proto.spec)["layout"] for chart in at.get("plotly_chart")]
    assert [layout["title"]["text"] for layout in charts] == [
        "Perplexity vs non-zero parameters: 2 of 3 runs on the front",
        "Perplexity vs FLOPs per example: 1 of 3 runs on the front",
    ], "lower perplexity is better: the 600 k run is dominated by the smaller 500 k one with 9.4"
    assert all(layout["yaxis"]["autorange"] == "reversed" for layout in charts), "lower perplexity is drawn higher"


def test_compare_stores_a_language_models_perplexity_in_its_run(app: AppTest, experiment_db: Path) -> None:
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("tiny_gpt").run()
    save(app.switch_page(PRUNE_PAGE).run())
    app.switch_page(COMPARE_PAGE).run()
    assert not app.exception
    run = pe.ExperimentStore(experiment_db).list().iloc[0]
    assert run["perplexity"] > 1
    assert pd.isna(run["accuracy"])
