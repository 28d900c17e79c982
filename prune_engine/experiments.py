"""Experiment history: every applied plan and its metrics, kept in a SQLite database.

`ExperimentStore` is safe to share between the threads of one app and between
processes writing the same file: each operation borrows a connection from a small
pool (no connection is used by two threads at once), the database runs in WAL mode,
a writer that finds the file busy waits (up to `busy_timeout` seconds) instead of
failing, and each write is one transaction, so a process killed mid-write leaves
every run it committed intact.

`pareto_front` and `plan_diff` are pure helpers for the Experiments page: which runs
no other run beats on two metrics at once, and how two plans differ setting by setting.

Example::

    store = ExperimentStore(tmp_path / "experiments.db")
    run_id = store.add("30% channels", plan, {"accuracy": 0.95, "params": 12_345},
                       model_name="digits_cnn", model_fingerprint="9f2c...")
    runs = store.list(model_fingerprint="9f2c...")
    runs[pareto_front(runs, "latency_median_ms", "accuracy")]
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .errors import PruneScopeError
from .export import csv_text
from .jsontext import loads

logger = logging.getLogger(__name__)

DB_ENV_VAR = "PRUNESCOPE_DB"

# Metrics with a column of their own (filterable, sortable in SQL); any other metric
# key is kept in `metrics_json`. Integer-valued counts are INTEGER, the rest REAL.
REAL_METRICS = (
    "accuracy",
    "agreement",
    "cosine",
    "loss",
    "latency_median_ms",
    "latency_iqr_ms",
    "speedup",
)
INTEGER_METRICS = ("params", "nonzero_params", "flops", "size_bytes", "sparse_bytes", "threads", "batch_size")
METRIC_COLUMNS = (
    "accuracy",
    "agreement",
    "cosine",
    "loss",
    "params",
    "nonzero_params",
    "flops",
    "size_bytes",
    "sparse_bytes",
    "latency_median_ms",
    "latency_iqr_ms",
    "threads",
    "batch_size",
    "speedup",
)
RUN_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "name",
    "notes",
    "model_name",
    "model_fingerprint",
    "granularity",
    "criterion",
    "scope",
    "plan_json",
)
PLAN_FILTER_KEYS = ("granularity", "criterion", "scope")

# One entry per schema version: the statements that bring version i to version i + 1,
# applied in order inside one transaction. Adding version 2 is appending one tuple.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            name TEXT,
            notes TEXT,
            model_name TEXT NOT NULL,
            model_fingerprint TEXT NOT NULL,
            plan_json TEXT NOT NULL,
            granularity TEXT,
            criterion TEXT,
            scope TEXT,
            {", ".join(f"{column} {'INTEGER' if column in INTEGER_METRICS else 'REAL'}" for column in METRIC_COLUMNS)},
            metrics_json TEXT NOT NULL DEFAULT '{{}}'
        )
        """,
        "CREATE INDEX runs_by_model ON runs (model_fingerprint, id)",
    ),
)

_SQLITE_INT_MAX = 2**63 - 1
_POOL_SIZE = 4  # idle connections kept open for reuse

UNKNOWN_FINGERPRINT = "unknown"
"""Stored as the fingerprint of runs added without one."""


class ExperimentStoreError(PruneScopeError):
    """The experiment database cannot be opened or written, a run is unknown, or a value is unfit to store."""


class _HasToJson(Protocol):
    def to_json(self) -> str: ...


@dataclass(frozen=True)
class ExperimentRun:
    """One stored run: what was pruned how (`plan_json`), and what it measured (`metrics`).

    `metrics` holds every metric that was given a value, those with a column of their
    own and any other key alike.
    """

    id: int
    created_at: datetime
    updated_at: datetime
    name: str | None
    notes: str | None
    model_name: str
    model_fingerprint: str
    plan_json: str
    granularity: str | None
    criterion: str | None
    scope: str | None
    metrics: dict[str, float | int]


def default_db_path() -> Path:
    """`$PRUNESCOPE_DB` when set, else `.prunescope/experiments.db` under the current directory."""
    configured = os.environ.get(DB_ENV_VAR, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.cwd() / ".prunescope" / "experiments.db"


class ExperimentStore:
    """Runs of pruning experiments in one SQLite file, shared safely by threads and processes.

    Opening the store creates the file (and its folder) when missing and brings an
    older schema up to date; a file written by a newer PruneScope is refused.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path if path is not None else default_db_path()).expanduser().absolute()
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._inherited: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ExperimentStoreError(
                f"Cannot create the folder for the experiment database {self.path}: {error}. "
                f"Choose a writable location (set {DB_ENV_VAR})."
            ) from error
        with self._connect() as conn:
            self._enable_wal(conn)
        with self._transaction() as conn:
            self._migrate(conn)

    def __repr__(self) -> str:
        return f"ExperimentStore({str(self.path)!r})"

    def __enter__(self) -> ExperimentStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections; the store stays usable and reconnects when next used."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- writing -------------------------------------------------------------------

    def add(
        self,
        name: str | None,
        plan: _HasToJson | str,
        metrics: Mapping[str, float | int | None],
        *,
        model_name: str | None = None,
        model_fingerprint: str | None = None,
        notes: str | None = None,
    ) -> int:
        """Store one run and return its id; `plan` is a `PruningPlan` (or its JSON text).

        The model is identified by `model_name` and `model_fingerprint`; a script that gives
        neither (`store.add("digits_mlp", plan, metrics)`) files the run under `name`, with an
        unknown fingerprint.
        """
        name = _optional_text(name, "run name")
        notes = _optional_text(notes, "notes")
        model_name = _required_text(model_name if model_name is not None else name, "model name")
        model_fingerprint = _required_text(model_fingerprint or UNKNOWN_FINGERPRINT, "model fingerprint")
        plan_json = _plan_text(plan)
        settings = _plan_settings(plan_json)
        columns, extra = _split_metrics(metrics)
        now = _now()
        record: dict[str, Any] = {
            "created_at": now,
            "updated_at": now,
            "name": name,
            "notes": notes,
            "model_name": model_name,
            "model_fingerprint": model_fingerprint,
            "plan_json": plan_json,
            **{key: _text_or_none(settings.get(key)) for key in PLAN_FILTER_KEYS},
            **columns,
            "metrics_json": json.dumps(extra, allow_nan=False),
        }
        names = ", ".join(record)
        placeholders = ", ".join(f":{key}" for key in record)
        with self._transaction() as conn:
            cursor = conn.execute(f"INSERT INTO runs ({names}) VALUES ({placeholders})", record)
        return int(cursor.lastrowid)

    def rename(self, run_id: int, name: str | None) -> None:
        """Give run `run_id` a new name (None clears it)."""
        self._update(run_id, "name", _optional_text(name, "run name"))

    def set_notes(self, run_id: int, notes: str | None) -> None:
        """Replace the notes of run `run_id` (None clears them)."""
        self._update(run_id, "notes", _optional_text(notes, "notes"))

    def update_metrics(self, run_id: int, metrics: Mapping[str, float | int | None]) -> None:
        """Set the given metrics of run `run_id`, keeping the others (a later measurement, such as latency).

        A metric given as None is left as it was.
        """
        run_id = _run_id(run_id)
        columns, extra = _split_metrics(metrics)
        columns = {column: value for column, value in columns.items() if value is not None}
        with self._transaction() as conn:
            row = conn.execute("SELECT metrics_json FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise _no_run(run_id)
            merged = {**json.loads(row["metrics_json"]), **extra}
            assignments = "".join(f"{column} = :{column}, " for column in columns)
            conn.execute(
                f"UPDATE runs SET {assignments}metrics_json = :metrics_json, updated_at = :updated_at WHERE id = :id",
                {**columns, "metrics_json": json.dumps(merged, allow_nan=False), "updated_at": _now(), "id": run_id},
            )

    def delete(self, run_id: int) -> None:
        """Remove run `run_id` for good."""
        run_id = _run_id(run_id)
        with self._transaction() as conn:
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise _no_run(run_id)

    # -- reading -------------------------------------------------------------------

    def get(self, run_id: int) -> ExperimentRun:
        """The run with id `run_id`."""
        run_id = _run_id(run_id)
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise _no_run(run_id)
        return ExperimentRun(
            id=row["id"],
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            name=row["name"],
            notes=row["notes"],
            model_name=row["model_name"],
            model_fingerprint=row["model_fingerprint"],
            plan_json=row["plan_json"],
            granularity=row["granularity"],
            criterion=row["criterion"],
            scope=row["scope"],
            metrics=_row_metrics(row),
        )

    def list(self, model_fingerprint: str | None = None, model_name: str | None = None) -> pd.DataFrame:
        """All runs (of one model, when given), newest first, one row per run.

        Columns: `RUN_COLUMNS` (id, created_at and updated_at as UTC datetimes, name,
        notes, model_name, model_fingerprint, granularity, criterion, scope,
        plan_json), then `METRIC_COLUMNS` (NaN/<NA> where not measured; counts as
        nullable integers), then every other metric key any listed run has, sorted.
        """
        where, params = _model_filter(model_fingerprint, model_name)
        with self._connect() as conn:
            rows = conn.execute(f"SELECT * FROM runs{where} ORDER BY id DESC", params).fetchall()
        return _runs_frame(rows)

    def count(self, model_fingerprint: str | None = None, model_name: str | None = None) -> int:
        """How many runs are stored (for one model, when given)."""
        where, params = _model_filter(model_fingerprint, model_name)
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0])

    def to_csv(self, ids: Iterable[int] | None = None) -> str:
        """The runs (all, or those in `ids`) as CSV text, columns as in `list`.

        Written by `export.csv_text`: text cells are quoted (a carriage return in a name
        cannot start a row) and those a spreadsheet would run as a formula are prefixed with `'`.
        """
        frame = self.list()
        if ids is not None:
            frame = frame[frame["id"].isin([_run_id(run_id) for run_id in ids])]
        return csv_text(frame)

    # -- internals -----------------------------------------------------------------

    def _update(self, run_id: int, column: str, value: str | None) -> None:
        run_id = _run_id(run_id)
        with self._transaction() as conn:
            cursor = conn.execute(f"UPDATE runs SET {column} = ?, updated_at = ? WHERE id = ?", (value, _now(), run_id))
            if cursor.rowcount == 0:
                raise _no_run(run_id)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection for one operation (one thread at a time); SQLite errors become ours."""
        try:
            conn = self._borrow()
            try:
                yield conn
            finally:
                self._release(conn)
        except sqlite3.Error as error:
            raise self._explain(error) from error

    def _borrow(self) -> sqlite3.Connection:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must neither use nor close its parent's connections: keep them, unused.
                self._inherited += self._idle
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if self._pid == os.getpid() and not conn.in_transaction and len(self._idle) < _POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: takes the write lock up front (waiting while another writer holds it)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (a persistent setting), retrying while another process holds it."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() == "wal":
                    return
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() == "wal":
                    return
                raise ExperimentStoreError(
                    f"The experiment database {self.path} cannot use write-ahead logging (journal mode stays "
                    f"{mode!r}); put it on a local disk (set {DB_ENV_VAR})."
                )
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema to the newest version (inside the caller's transaction); refuse newer files."""
        target = len(_MIGRATIONS)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current > target:
            raise ExperimentStoreError(
                f"The experiment database {self.path} has schema version {current}, newer than this "
                f"PruneScope understands ({target}); upgrade PruneScope or use another file (set {DB_ENV_VAR})."
            )
        for version in range(current + 1, target + 1):
            logger.info("Migrating experiment database %s to schema version %d", self.path, version)
            for statement in _MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, _now()))

    def _explain(self, error: sqlite3.Error) -> ExperimentStoreError:
        message = str(error)
        if "locked" in message or "busy" in message:
            advice = f"another process held it for over {self.busy_timeout:g} s; try again"
        elif isinstance(error, sqlite3.OperationalError) and "unable to open" in message:
            advice = f"choose a writable file (set {DB_ENV_VAR})"
        elif isinstance(error, sqlite3.DatabaseError) and "not a database" in message:
            advice = f"the file is not a PruneScope experiment database; choose another file (set {DB_ENV_VAR})"
        else:
            advice = f"check the file or use another one (set {DB_ENV_VAR})"
        return ExperimentStoreError(f"The experiment database {self.path} failed: {message}; {advice}.")


def _model_filter(model_fingerprint: str | None, model_name: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause (values as parameters) selecting one model's runs, or nothing."""
    given = {"model_fingerprint": model_fingerprint, "model_name": model_name}
    given = {column: value for column, value in given.items() if value is not None}
    where = " WHERE " + " AND ".join(f"{column} = ?" for column in given) if given else ""
    return where, tuple(given.values())


def _plan_text(plan: _HasToJson | str) -> str:
    """The JSON text of a plan: `plan.to_json()`, or `plan` itself when it is already text."""
    text = plan if isinstance(plan, str) else getattr(plan, "to_json", None)
    if callable(text):
        text = text()
    if not isinstance(text, str):
        raise ExperimentStoreError(f"A plan must be a PruningPlan (or its JSON text), got {type(plan).__name__}.")
    return text


def _plan_settings(plan_json: str) -> dict[str, Any]:
    settings = loads(plan_json, "The plan", ExperimentStoreError)
    if not isinstance(settings, dict):
        raise ExperimentStoreError(
            f"The plan JSON must be an object of settings, got {type(settings).__name__}; "
            "store the text of PruningPlan.to_json()."
        )
    return settings


def _split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float | int | None], dict[str, float | int]]:
    """Checked metrics, split into those with a column (all of them, None where absent) and the rest."""
    if not isinstance(metrics, Mapping):
        raise ExperimentStoreError(f"Metrics must be a mapping of name to number, got {type(metrics).__name__}.")
    columns: dict[str, float | int | None] = dict.fromkeys(METRIC_COLUMNS)
    extra: dict[str, float | int] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key:
            raise ExperimentStoreError(f"Metric names must be non-empty text, got {_cut(repr(key))}.")
        if key in RUN_COLUMNS or key == "metrics_json":
            raise ExperimentStoreError(f"{_cut(repr(key))} names a run field, not a metric; rename that metric.")
        number = _metric_value(key, value)
        if number is None:
            continue
        if key in columns:
            columns[key] = number if key in REAL_METRICS else _count(key, number)
        else:
            extra[key] = number
    return columns, extra


def _metric_value(key: str, value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExperimentStoreError(
            f"Metric {_cut(repr(key))} must be a number or None, got {type(value).__name__} {_cut(repr(value))}."
        )
    if isinstance(value, numbers.Integral) and abs(int(value)) <= _SQLITE_INT_MAX:
        return int(value)
    try:
        number = float(value)
    except OverflowError:
        raise ExperimentStoreError(f"Metric {_cut(repr(key))} is too large to store as a number.") from None
    if not math.isfinite(number):
        raise ExperimentStoreError(
            f"Metric {_cut(repr(key))} is {number}; store only finite numbers (or None when unknown)."
        )
    return number


def _count(key: str, number: float | int) -> int:
    """A count metric (params, flops, …) as the whole number its INTEGER column holds, or an error."""
    whole = _as_integer(number)
    if not isinstance(whole, int):
        raise ExperimentStoreError(
            f"Metric {key!r} is a count; give a whole number of at most {_SQLITE_INT_MAX:,}, got {number!r}."
        )
    return whole


def _as_integer(number: float | int) -> float | int:
    """Whole numbers as int (floats stay floats when fractional or beyond SQLite's 64-bit range)."""
    if isinstance(number, float) and number.is_integer() and abs(number) <= _SQLITE_INT_MAX:
        return int(number)
    return number


def _row_metrics(row: sqlite3.Row) -> dict[str, float | int]:
    metrics = {column: row[column] for column in METRIC_COLUMNS if row[column] is not None}
    metrics.update(json.loads(row["metrics_json"]))
    return metrics


def _runs_frame(rows: list[sqlite3.Row]) -> pd.DataFrame:
    extras = [json.loads(row["metrics_json"]) for row in rows]
    extra_keys = sorted({key for extra in extras for key in extra})
    columns: dict[str, pd.Series] = {}
    for column in (*RUN_COLUMNS, *METRIC_COLUMNS):
        values = pd.Series([row[column] for row in rows], dtype=object)
        if column == "id":
            values = values.astype("int64")
        elif column in ("created_at", "updated_at"):
            values = pd.to_datetime(values, utc=True, format="ISO8601")
        elif column in INTEGER_METRICS:
            values = values.astype("Int64")
        elif column in REAL_METRICS:
            values = values.astype("float64")
        columns[column] = values
    for key in extra_keys:
        columns[key] = pd.to_numeric(pd.Series([extra.get(key) for extra in extras], dtype=object))
    return pd.DataFrame(columns)


def _optional_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _storable(value, what)
    raise ExperimentStoreError(f"The {what} must be text or None, got {type(value).__name__}.")


def _required_text(value: Any, what: str) -> str:
    if isinstance(value, str) and value:
        return _storable(value, what)
    raise ExperimentStoreError(f"The {what} must be non-empty text, got {_cut(repr(value))}.")


def _storable(text: str, what: str) -> str:
    """`text` when SQLite can store it (UTF-8: no lone surrogate characters)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ExperimentStoreError(
            f"The {what} holds a character that is not valid text (position {error.start}); remove it."
        ) from error
    return text


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _run_id(run_id: Any) -> int:
    if isinstance(run_id, bool) or not isinstance(run_id, numbers.Integral):
        raise ExperimentStoreError(f"A run id is a whole number, got {run_id!r}.")
    return int(run_id)


def _no_run(run_id: int) -> ExperimentStoreError:
    return ExperimentStoreError(f"There is no run with id {run_id}; it may have been deleted. Reload the list.")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- analysis helpers -------------------------------------------------------------


def pareto_front(df: pd.DataFrame, x: str, y: str, minimize_x: bool = True, maximize_y: bool = True) -> pd.Series:
    """True for the runs no other run beats on both `x` and `y` (by default: lower x, higher y).

    A run is off the front when another is at least as good on both and better on one;
    runs with identical values are all on the front. Rows with a missing or
    non-finite x or y are never on it. The result shares `df`'s index.
    """
    for column in (x, y):
        if column not in df.columns:
            raise ExperimentStoreError(
                f"There is no column {column!r}; choose one of {', '.join(map(str, df.columns))}."
            )
    try:
        cost_x = df[x].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        cost_y = df[y].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ExperimentStoreError(f"Columns {x!r} and {y!r} must hold numbers to find a Pareto front.") from error
    # Both as costs to minimise.
    cost_x = cost_x if minimize_x else -cost_x
    cost_y = -cost_y if maximize_y else cost_y
    valid = np.isfinite(cost_x) & np.isfinite(cost_y)
    on_front = np.zeros(len(df), dtype=bool)
    if valid.any():
        points = pd.DataFrame({"x": cost_x[valid], "y": cost_y[valid]})
        best_y_at_x = points.groupby("x")["y"].min()  # sorted by x
        best_y_before_x = best_y_at_x.cummin().shift(1, fill_value=np.inf)
        # On the front: best y among equal x, and strictly better y than every smaller x.
        on_front[valid] = (points["y"].to_numpy() == points["x"].map(best_y_at_x).to_numpy()) & (
            points["y"].to_numpy() < points["x"].map(best_y_before_x).to_numpy()
        )
    return pd.Series(on_front, index=df.index, name="pareto")


def plan_diff(plan_json_a: _HasToJson | str, plan_json_b: _HasToJson | str) -> pd.DataFrame:
    """Two plans side by side: one row per top-level setting, then one per layer ratio.

    Columns: `setting` (the key, or `ratios[<layer>]` for a layer), `a`, `b` (the
    values; None where a plan does not set it) and `changed`. Layers follow plan a's
    order, then those only plan b names.
    """
    settings_a, settings_b = _plan_settings(_plan_text(plan_json_a)), _plan_settings(_plan_text(plan_json_b))
    ratios_a, ratios_b = _plan_ratios(settings_a), _plan_ratios(settings_b)
    rows = [(key, settings_a.get(key), settings_b.get(key)) for key in _union(settings_a, settings_b)]
    rows += [(f"ratios[{layer}]", ratios_a.get(layer), ratios_b.get(layer)) for layer in _union(ratios_a, ratios_b)]
    frame = pd.DataFrame(rows, columns=["setting", "a", "b"], dtype=object)
    frame["changed"] = pd.Series([a != b for _, a, b in rows], index=frame.index, dtype=bool)
    return frame


def _plan_ratios(settings: dict[str, Any]) -> dict[str, Any]:
    """Remove and return a plan's per-layer `ratios` (empty when it has none)."""
    ratios = settings.pop("ratios", None) or {}
    if not isinstance(ratios, Mapping):
        raise ExperimentStoreError(
            f"A plan's ratios must map layer names to ratios, got {type(ratios).__name__}; "
            "compare plans saved by PruningPlan.to_json()."
        )
    return dict(ratios)


def _union(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    return [*first, *(key for key in second if key not in first)]
