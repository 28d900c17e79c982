"""Experiment history: the SQLite store (correct, multi-process and crash safe) and its analysis helpers."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prune_engine import PruneScopeError, experiments
from prune_engine.experiments import (
    METRIC_COLUMNS,
    RUN_COLUMNS,
    ExperimentRun,
    ExperimentStore,
    ExperimentStoreError,
    default_db_path,
    pareto_front,
    plan_diff,
)

WRITER = Path(__file__).with_name("_experiment_writer.py")

PLAN = {
    "granularity": "channel",
    "criterion": "l1",
    "scope": "layer",
    "ratios": {"features.0": 0.3, "features.3": 0.5},
    "global_ratio": None,
    "n": 2,
    "m": 4,
    "ignored_layers": ["classifier"],
    "round_to": None,
    "seed": 0,
    "min_ratio": None,
    "max_ratio": None,
    "version": 1,
}
PLAN_JSON = json.dumps(PLAN)


class _FakePlan:
    """Stands in for PruningPlan: anything with to_json() can be stored."""

    def __init__(self, settings: dict) -> None:
        self.settings = settings

    def to_json(self) -> str:
        return json.dumps(self.settings)


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    return ExperimentStore(tmp_path / "experiments.db")


def _add(store: ExperimentStore, name: str | None = None, metrics: dict | None = None, **kwargs) -> int:
    kwargs.setdefault("model_name", "digits_cnn")
    kwargs.setdefault("model_fingerprint", "fp-digits")
    return store.add(name, kwargs.pop("plan", PLAN_JSON), metrics or {"accuracy": 0.9}, **kwargs)


def _sql(path: Path, query: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on its own connection (committed), bypassing the store."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(query, params).fetchall()


# -- storing and reading runs ---------------------------------------------------------


def test_added_run_reads_back_with_its_plan_settings_and_metrics(store: ExperimentStore) -> None:
    metrics = {"accuracy": 0.91, "loss": 0.3, "params": 12_345, "flops": 2**40, "latency_median_ms": 1.5, "threads": 1}
    run_id = _add(store, "first try", metrics, notes="channel 30 %")

    run = store.get(run_id)

    assert isinstance(run, ExperimentRun)
    assert (run.id, run.name, run.notes) == (run_id, "first try", "channel 30 %")
    assert (run.model_name, run.model_fingerprint) == ("digits_cnn", "fp-digits")
    assert json.loads(run.plan_json) == PLAN
    assert (run.granularity, run.criterion, run.scope) == ("channel", "l1", "layer")
    assert run.metrics == metrics
    assert isinstance(run.metrics["params"], int)
    assert run.created_at == run.updated_at
    assert run.created_at.utcoffset().total_seconds() == 0


def test_plan_object_is_stored_as_its_json(store: ExperimentStore) -> None:
    settings = {"granularity": "n:m", "criterion": "l2", "scope": "global", "ratios": {}}
    run = store.get(_add(store, plan=_FakePlan(settings)))
    assert json.loads(run.plan_json) == settings
    assert (run.granularity, run.criterion, run.scope) == ("n:m", "l2", "global")


def test_run_added_without_model_identity_is_filed_under_its_name(store: ExperimentStore) -> None:
    run = store.get(store.add("digits_mlp", PLAN_JSON, {"accuracy": 0.97}))
    assert (run.name, run.model_name, run.model_fingerprint) == ("digits_mlp", "digits_mlp", "unknown")
    assert store.list(model_name="digits_mlp")["id"].tolist() == [run.id]


def test_run_without_any_name_or_model_is_refused(store: ExperimentStore) -> None:
    with pytest.raises(ExperimentStoreError, match="model name"):
        store.add(None, PLAN_JSON, {"accuracy": 0.97})


def test_plan_without_filter_keys_leaves_them_empty(store: ExperimentStore) -> None:
    run = store.get(_add(store, plan=json.dumps({"ratios": {"fc": 0.2}})))
    assert (run.granularity, run.criterion, run.scope) == (None, None, None)


@pytest.mark.parametrize("plan", ["not json", "[1, 2]", 42, _FakePlan(["a list"])])
def test_plan_that_is_not_a_json_object_is_refused(store: ExperimentStore, plan: object) -> None:
    with pytest.raises(ExperimentStoreError, match="plan"):
        _add(store, plan=plan)
    assert store.count() == 0


def test_list_is_newest_first_and_filters_by_model(store: ExperimentStore) -> None:
    first = _add(store, "a")
    other = _add(store, "b", model_name="resnet", model_fingerprint="fp-resnet")
    last = _add(store, "c")

    assert store.list()["id"].tolist() == [last, other, first]
    assert store.list(model_fingerprint="fp-digits")["id"].tolist() == [last, first]
    assert store.list(model_name="resnet")["name"].tolist() == ["b"]
    assert store.list(model_fingerprint="fp-digits", model_name="resnet").empty
    assert (store.count(), store.count(model_fingerprint="fp-resnet")) == (3, 1)


def test_list_has_documented_columns_with_metrics_as_columns(store: ExperimentStore) -> None:
    _add(store, "measured", {"accuracy": 0.8, "params": 2**60 + 1, "speedup": 1.7, "sparsity": 0.25})
    _add(store, None, {"agreement": 0.99})

    runs = store.list()

    assert list(runs.columns) == [*RUN_COLUMNS, *METRIC_COLUMNS, "sparsity"]
    newest, oldest = runs.iloc[0], runs.iloc[1]
    assert newest["name"] is None and newest["agreement"] == 0.99 and math.isnan(newest["accuracy"])
    assert oldest["params"] == 2**60 + 1  # nullable integers keep big counts exact
    assert pd.isna(newest["params"]) and math.isnan(newest["sparsity"])
    assert str(runs["created_at"].dt.tz) == "UTC"


def test_empty_store_lists_the_documented_columns(store: ExperimentStore) -> None:
    runs = store.list()
    assert runs.empty
    assert list(runs.columns) == [*RUN_COLUMNS, *METRIC_COLUMNS]


def test_unknown_metric_keys_are_kept(store: ExperimentStore) -> None:
    run_id = _add(store, metrics={"accuracy": 0.7, "examples": 360, "sparsity": 0.5, "top5": None})
    assert store.get(run_id).metrics == {"accuracy": 0.7, "examples": 360, "sparsity": 0.5}
    assert store.list().loc[0, ["examples", "sparsity"]].tolist() == [360, 0.5]


def test_numpy_numbers_are_accepted(store: ExperimentStore) -> None:
    run = store.get(_add(store, metrics={"accuracy": np.float32(0.5), "params": np.int64(7)}))
    assert run.metrics == {"accuracy": 0.5, "params": 7}


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"accuracy": float("nan")}, "finite"),
        ({"latency_median_ms": float("inf")}, "finite"),
        ({"custom": -math.inf}, "finite"),
        ({"accuracy": "0.9"}, "number"),
        ({"params": True}, "number"),
        ({"flops": [1, 2]}, "number"),
        ({"id": 3}, "run field"),
        ({7: 0.5}, "non-empty text"),
    ],
)
def test_non_finite_or_wrong_typed_metrics_are_refused(store: ExperimentStore, metrics: dict, message: str) -> None:
    with pytest.raises(ExperimentStoreError, match=message):
        _add(store, metrics=metrics)
    assert store.count() == 0


def test_store_errors_are_prunescope_errors() -> None:
    assert issubclass(ExperimentStoreError, PruneScopeError)


def test_sql_looking_user_text_is_stored_verbatim(store: ExperimentStore) -> None:
    name = "x'); DROP TABLE runs; --"
    notes = 'Robert"); DELETE FROM runs WHERE (1=1'
    layer = "features.0'; DROP TABLE schema_version; --"
    plan = json.dumps({**PLAN, "ratios": {layer: 0.4}})
    run_id = _add(store, name, notes=notes, plan=plan, model_name="m' OR '1'='1")
    store.rename(run_id, name + " (renamed)")

    run = store.get(run_id)

    assert (run.name, run.notes, run.model_name) == (name + " (renamed)", notes, "m' OR '1'='1")
    assert json.loads(run.plan_json)["ratios"] == {layer: 0.4}
    assert store.list(model_name="m' OR '1'='1")["id"].tolist() == [run_id]
    assert store.list(model_name="x' OR '1'='1").empty


def test_rename_and_set_notes_change_only_that_field_and_the_update_time(store: ExperimentStore) -> None:
    run_id = _add(store, "old", notes="keep")
    other = _add(store, "other")
    before = store.get(run_id)

    store.rename(run_id, "new")
    renamed = store.get(run_id)
    store.set_notes(run_id, "better notes")
    store.rename(run_id, None)
    cleared = store.get(run_id)

    assert (renamed.name, renamed.notes) == ("new", "keep")
    assert (cleared.name, cleared.notes) == (None, "better notes")
    assert cleared.created_at == before.created_at < renamed.updated_at <= cleared.updated_at
    assert cleared.metrics == before.metrics
    assert store.get(other).name == "other"


def test_update_metrics_sets_the_given_ones_and_keeps_the_rest(store: ExperimentStore) -> None:
    run_id = _add(store, "run", {"accuracy": 0.9, "params": 100, "custom": 1.5})
    other = _add(store, "other", {"accuracy": 0.8})
    before = store.get(run_id)

    store.update_metrics(run_id, {"latency_median_ms": 1.25, "threads": 1, "accuracy": None, "batch_note": 32})

    updated = store.get(run_id)
    assert updated.metrics == {
        "accuracy": 0.9,
        "params": 100,
        "custom": 1.5,
        "latency_median_ms": 1.25,
        "threads": 1,
        "batch_note": 32,
    }
    assert updated.updated_at > before.updated_at
    assert store.list().set_index("id").loc[run_id, "latency_median_ms"] == 1.25
    assert store.get(other).metrics == {"accuracy": 0.8}
    with pytest.raises(ExperimentStoreError, match="finite"):
        store.update_metrics(run_id, {"accuracy": math.nan})
    assert store.get(run_id).metrics == updated.metrics


def test_delete_removes_only_that_run(store: ExperimentStore) -> None:
    keep, gone = _add(store, "keep"), _add(store, "gone")
    store.delete(gone)
    assert store.list()["id"].tolist() == [keep]
    assert _add(store) > gone  # ids are never reused


@pytest.mark.parametrize(
    "action",
    [
        lambda store: store.get(99),
        lambda store: store.rename(99, "x"),
        lambda store: store.set_notes(99, "x"),
        lambda store: store.delete(99),
        lambda store: store.update_metrics(99, {"accuracy": 0.5}),
    ],
)
def test_unknown_run_id_is_refused_with_a_clear_message(store: ExperimentStore, action) -> None:
    _add(store)
    with pytest.raises(ExperimentStoreError, match="no run with id 99"):
        action(store)


def test_to_csv_holds_every_run_and_defuses_spreadsheet_formulas(store: ExperimentStore) -> None:
    plain = _add(store, "plain", {"accuracy": 0.5, "examples": 10})
    formula = _add(store, '=HYPERLINK("http://x")', notes="@SUM(A1)")

    every = pd.read_csv(io.StringIO(store.to_csv()))
    chosen = pd.read_csv(io.StringIO(store.to_csv(ids=[plain])))

    assert every["id"].tolist() == [formula, plain]
    assert list(every.columns) == list(store.list().columns)
    assert every.loc[0, "name"] == '\'=HYPERLINK("http://x")' and every.loc[0, "notes"] == "'@SUM(A1)"
    assert chosen["id"].tolist() == [plain] and chosen.loc[0, "examples"] == 10
    assert store.get(formula).name == '=HYPERLINK("http://x")'  # the database itself keeps the text


# -- the database file ------------------------------------------------------------------


def test_database_uses_wal_and_records_the_schema_version(store: ExperimentStore) -> None:
    assert _sql(store.path, "PRAGMA journal_mode") == [("wal",)]
    assert [row[0] for row in _sql(store.path, "SELECT version FROM schema_version")] == [len(experiments._MIGRATIONS)]


def test_reopening_a_database_keeps_its_runs_and_reruns_no_migration(tmp_path: Path) -> None:
    path = tmp_path / "experiments.db"
    run_id = _add(ExperimentStore(path), "kept")
    applied = _sql(path, "SELECT version, applied_at FROM schema_version")

    reopened = ExperimentStore(path)

    assert reopened.get(run_id).name == "kept"
    assert _sql(path, "SELECT version, applied_at FROM schema_version") == applied


def test_database_from_a_newer_prunescope_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "experiments.db"
    ExperimentStore(path)
    newer = len(experiments._MIGRATIONS) + 1
    _sql(path, "INSERT INTO schema_version (version, applied_at) VALUES (?, 'later')", (newer,))

    with pytest.raises(ExperimentStoreError, match=f"schema version {newer}, newer than this PruneScope"):
        ExperimentStore(path)


def test_old_database_is_migrated_to_the_current_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "experiments.db"
    run_id = _add(ExperimentStore(path), "from version 1")
    version_2 = ("ALTER TABLE runs ADD COLUMN tags TEXT", "UPDATE runs SET tags = ''")
    monkeypatch.setattr(experiments, "_MIGRATIONS", (*experiments._MIGRATIONS, version_2))

    store = ExperimentStore(path)

    assert [row[0] for row in _sql(path, "SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    assert _sql(path, "SELECT name, tags FROM runs") == [("from version 1", "")]
    assert store.get(run_id).name == "from version 1"


def test_failed_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "experiments.db"
    ExperimentStore(path)
    broken = ("ALTER TABLE runs ADD COLUMN tags TEXT", "UPDATE no_such_table SET x = 1")
    monkeypatch.setattr(experiments, "_MIGRATIONS", (*experiments._MIGRATIONS, broken))

    with pytest.raises(ExperimentStoreError, match="no such table"):
        ExperimentStore(path)

    assert _sql(path, "SELECT MAX(version) FROM schema_version") == [(1,)]
    assert "tags" not in [row[1] for row in _sql(path, "PRAGMA table_info(runs)")]


def test_file_that_is_not_a_database_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text, not SQLite " * 100)
    with pytest.raises(ExperimentStoreError, match="not a PruneScope experiment database"):
        ExperimentStore(path)


def test_default_path_is_under_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRUNESCOPE_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_db_path() == tmp_path / ".prunescope" / "experiments.db"
    assert ExperimentStore().path == tmp_path / ".prunescope" / "experiments.db"
    assert (tmp_path / ".prunescope" / "experiments.db").is_file()


def test_prunescope_db_overrides_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = tmp_path / "deep" / "folder" / "runs.db"
    monkeypatch.setenv("PRUNESCOPE_DB", str(configured))
    assert default_db_path() == configured
    store = ExperimentStore()
    _add(store)
    assert store.path == configured and ExperimentStore(configured).count() == 1


def test_closed_store_reconnects_when_used_again(tmp_path: Path) -> None:
    with ExperimentStore(tmp_path / "experiments.db") as store:
        run_id = _add(store)
    assert store.get(run_id).id == run_id
    store.close()


# -- several threads and processes --------------------------------------------------------


def test_threads_sharing_one_store_lose_no_run(store: ExperimentStore) -> None:
    def add_many(thread: int) -> list[int]:
        ids = []
        for index in range(25):
            ids.append(_add(store, f"t{thread}-{index}", {"params": index}))
            assert store.get(ids[-1]).name == f"t{thread}-{index}"
            assert store.count() >= index + 1
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [run_id for chunk in pool.map(add_many, range(8)) for run_id in chunk]

    assert len(set(ids)) == 200
    assert store.count() == 200
    assert set(store.list()["name"]) == {f"t{thread}-{index}" for thread in range(8) for index in range(25)}


def _start_writer(path: Path, count: int, tag: str, *, wait: bool = False) -> subprocess.Popen:
    args = [sys.executable, str(WRITER), str(path), str(count), tag, *(["--wait"] if wait else [])]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _integrity(path: Path) -> str:
    return _sql(path, "PRAGMA integrity_check")[0][0]


def test_two_processes_adding_at_once_lose_no_run(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"  # both writers also race to create and set up the file
    writers = [_start_writer(path, 200, tag, wait=True) for tag in ("left", "right")]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    for writer in writers:  # release both together
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outputs = [writer.communicate(timeout=60) for writer in writers]

    for writer, (_, errors) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, errors
    reported = [int(line) for out, _ in outputs for line in out.split()]
    assert len(reported) == len(set(reported)) == 400
    store = ExperimentStore(path)
    assert store.count() == 400
    assert store.count(model_fingerprint="left") == store.count(model_fingerprint="right") == 200
    assert set(store.list()["id"]) == set(reported)
    assert _integrity(store.path) == "ok"


def test_writer_killed_mid_batch_keeps_every_committed_run(store: ExperimentStore) -> None:
    writer = _start_writer(store.path, 0, "doomed")
    deadline = time.monotonic() + 60
    while store.count() < 20:
        assert writer.poll() is None, writer.stderr.read()
        assert time.monotonic() < deadline, "the writer committed fewer than 20 runs in 60 s"
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    out, _ = writer.communicate(timeout=30)

    assert writer.returncode == -signal.SIGKILL
    committed = [int(line) for line in out.splitlines(keepends=True) if line.endswith("\n")]
    assert len(committed) >= 10
    reopened = ExperimentStore(store.path)
    assert _integrity(store.path) == "ok"
    stored = set(reopened.list()["id"])
    assert set(committed) <= stored
    assert len(stored) >= len(committed)
    assert reopened.get(_add(reopened, "after the crash")).name == "after the crash"


# -- Pareto front and plan diff -----------------------------------------------------------


@pytest.fixture
def runs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "latency": [1.0, 2.0, 2.0, 1.0, 3.0, 4.0, np.nan, 0.5, 5.0],
            "accuracy": [0.80, 0.90, 0.90, 0.70, 0.90, 0.95, 0.99, np.nan, 0.95],
        },
        index=list("ABCDEFGHI"),
    )


def test_pareto_front_keeps_ties_and_skips_missing_values(runs: pd.DataFrame) -> None:
    front = pareto_front(runs, "latency", "accuracy")
    # A: fastest; B and C tie (neither beats the other); D is as fast as A but worse;
    # E is as accurate as B but slower; F most accurate; G, H lack a value; I is F but slower.
    assert front.index.equals(runs.index)
    assert front.dtype == bool
    assert front[front].index.tolist() == ["A", "B", "C", "F"]


def test_pareto_front_follows_the_chosen_directions(runs: pd.DataFrame) -> None:
    swapped = pareto_front(runs, "accuracy", "latency", minimize_x=False, maximize_y=False)
    assert swapped[swapped].index.tolist() == ["A", "B", "C", "F"]
    worst = pareto_front(runs, "latency", "accuracy", minimize_x=False, maximize_y=False)
    assert worst[worst].index.tolist() == ["D", "E", "I"]


def test_pareto_front_works_on_a_stored_history(store: ExperimentStore) -> None:
    small = _add(store, "small", {"accuracy": 0.8, "params": 1000})
    _add(store, "worse", {"accuracy": 0.7, "params": 2000})
    _add(store, "unmeasured", {"accuracy": 0.99})
    big = _add(store, "big", {"accuracy": 0.9, "params": 5000})

    runs = store.list()
    assert set(runs.loc[pareto_front(runs, "params", "accuracy"), "id"]) == {small, big}


def test_pareto_front_of_nothing_is_empty() -> None:
    front = pareto_front(pd.DataFrame({"x": [], "y": []}), "x", "y")
    assert front.empty and front.dtype == bool


def test_pareto_front_names_a_missing_column(runs: pd.DataFrame) -> None:
    with pytest.raises(ExperimentStoreError, match="no column 'flops'"):
        pareto_front(runs, "flops", "accuracy")


def test_plan_diff_compares_settings_and_each_layer_ratio() -> None:
    other = {
        **PLAN,
        "granularity": "unstructured",
        "ratios": {"features.3": 0.5, "classifier.1": 0.2, "features.0": 0.4},
        "global_ratio": 0.5,
        "new_setting": True,
    }
    del other["round_to"]

    diff = plan_diff(PLAN_JSON, _FakePlan(other)).set_index("setting")

    assert list(diff.columns) == ["a", "b", "changed"]
    settings = [key for key in PLAN if key != "ratios"]
    layers = ["ratios[features.0]", "ratios[features.3]", "ratios[classifier.1]"]
    assert diff.index.tolist() == [*settings, "new_setting", *layers]
    assert diff["changed"][diff["changed"]].index.tolist() == [
        "granularity",
        "global_ratio",
        "new_setting",
        "ratios[features.0]",
        "ratios[classifier.1]",
    ]
    assert diff.loc["ratios[features.0]", ["a", "b"]].tolist() == [0.3, 0.4]
    assert diff.loc["ratios[classifier.1]", "a"] is None
    assert diff.loc["ignored_layers", "a"] == ["classifier"]
    assert not diff.loc["round_to", "changed"]  # absent and null both mean "not set"


def test_plan_diff_of_a_plan_with_itself_changes_nothing() -> None:
    diff = plan_diff(PLAN_JSON, PLAN_JSON)
    assert not diff["changed"].any()
    assert len(diff) == len(PLAN) - 1 + len(PLAN["ratios"])
