"""Soak: many apply → compare cycles in one session, and whether resident memory stays bounded.

Two levels, each `--cycles` cycles (default 200) on one sample model, every cycle a plan the
previous ones did not use (the global ratio steps through 1-90 %, single weights and whole
channels in turn):

- **engine**: `apply_plan`, `evaluate` with fidelity, `model_summary`, an interleaved
  `measure_latency` of original and pruned model, and the run saved to an `ExperimentStore`
  (added, then updated with its latency), as the app does.
- **app**: one AppTest session (so one Streamlit session, with the server's
  `.streamlit/config.toml`, `runner.postScriptGC = false` included): move the Prune page's
  global slider (the model is pruned live and the run saved), then open Compare (latency
  measured, the run updated).

Resident memory (RSS) is read after every cycle, without forcing a garbage collection, and the
run passes when RSS after the last cycle is within 10 % of RSS after cycle 20 (the warm-up: imports,
caches and allocator pools filled); the growth over the second half of the cycles tells a step that
levels off from a steady leak. The experiment database is a temporary file.

glibc raises its mmap threshold each time a large block is freed, after which tensors of changing
sizes (every plan gives other shapes) are served from the heap, which fragments: RSS climbs by
about 1 MB per engine cycle for ~100 cycles before it levels off, with no Python object left
behind. `--fixed-mmap-threshold` re-runs the bench with `MALLOC_MMAP_THRESHOLD_` set (64 KiB), which
turns that off, to tell allocator retention from a leak.
Run: `python -m bench.soak [--fixed-mmap-threshold]` (exit status 1 when memory grew beyond the bound).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import streamlit.config as st_config

import prune_engine as pe
from bench.common import current_rss_mb, peak_rss_mb, print_table, stopwatch
from prune_engine.experiments import DB_ENV_VAR
from sample_models import load_sample

REPO_ROOT = Path(__file__).resolve().parent.parent
WARM_CYCLE = 20
TOLERANCE = 0.10
REPORT_EVERY = 20
GRANULARITIES = ("unstructured", "channel")
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"
FIXED_MMAP_THRESHOLD = 65536
PRUNE_PAGE = "pages/3_Prune.py"
COMPARE_PAGE = "pages/4_Compare.py"


def plan_for(cycle: int) -> tuple[str, int]:
    """Granularity and global ratio (%) of cycle `cycle` (1-based): no two of 180 consecutive cycles repeat."""
    return GRANULARITIES[cycle % 2], 1 + (cycle // 2) % 90


def engine_cycle(bundle: pe.ModelBundle, store: pe.ExperimentStore) -> Callable[[int], None]:
    """One engine-level apply → compare cycle, as the app runs it."""
    reference = pe.model_outputs(bundle.model, bundle.eval_data)

    def run(cycle: int) -> None:
        granularity, percent = plan_for(cycle)
        plan = pe.PruningPlan(granularity=granularity, global_ratio=percent / 100)
        result = pe.apply_plan(bundle.model, plan, bundle.example_input, bundle.eval_data)
        metrics = {**pe.evaluate(result.model, bundle.eval_data, reference=reference)}
        metrics.update(pe.model_summary(result.model, bundle.example_input))
        run_id = store.add(None, plan, metrics, model_name=bundle.name, model_fingerprint="soak")
        latency = pe.measure_latency(
            {"original": bundle.model, "pruned": result.model}, bundle.example_input, batch_size=32, threads=1
        )
        pruned = latency.table.set_index("model").loc["pruned"]
        store.update_metrics(run_id, {"latency_median_ms": pruned["median_ms"], "latency_iqr_ms": pruned["iqr_ms"]})

    return run


def app_cycle(sample: str) -> Callable[[int], None]:
    """One cycle through the app in a single AppTest session: move the global slider, then open Compare."""
    from tests.app.helpers import start_app

    at = start_app()
    at.selectbox(key="model_sample_picker").select(sample).run()
    at.switch_page(PRUNE_PAGE).run()

    def run(cycle: int) -> None:
        granularity, percent = plan_for(cycle)
        at.switch_page(PRUNE_PAGE).run()
        at.radio(key="prune_granularity").set_value(granularity).run()
        at.slider(key="prune_global").set_value(percent).run()
        at.switch_page(COMPARE_PAGE).run()
        if at.exception:
            raise RuntimeError(f"cycle {cycle}: the app failed: {at.exception[0].message}")

    return run


def soak(level: str, cycle: Callable[[int], None], cycles: int, store: pe.ExperimentStore) -> list[dict[str, object]]:
    """Run `cycles` cycles; one row every REPORT_EVERY cycles (and at the warm-up cycle)."""
    rows: list[dict[str, object]] = []
    with stopwatch() as elapsed:
        for number in range(1, cycles + 1):
            cycle(number)
            if number in (WARM_CYCLE, cycles) or number % REPORT_EVERY == 0:
                rows.append(
                    {
                        "level": level,
                        "cycle": number,
                        "rss_mb": current_rss_mb(),
                        "peak_rss_mb": peak_rss_mb(),
                        "runs_saved": store.count(),
                        "elapsed_s": elapsed(),
                    }
                )
    return rows


def verdict(level: str, rows: list[dict[str, object]]) -> dict[str, object]:
    """RSS after the warm-up and after the last cycle, and whether the growth is within the tolerance."""
    warm = next(row for row in rows if row["cycle"] == WARM_CYCLE)
    last = rows[-1]
    middle = min(rows, key=lambda row: abs(int(row["cycle"]) - int(last["cycle"]) // 2))
    growth = _growth(warm, last)
    return {
        "level": level,
        f"rss_cycle_{WARM_CYCLE}_mb": warm["rss_mb"],
        "rss_last_cycle_mb": last["rss_mb"],
        "growth_pct": growth * 100,
        "within_10pct": abs(growth) <= TOLERANCE,
        "growth_second_half_pct": _growth(middle, last) * 100,
        "s_per_cycle": float(last["elapsed_s"]) / int(last["cycle"]),
    }


def _growth(before: dict[str, object], after: dict[str, object]) -> float:
    return (float(after["rss_mb"]) - float(before["rss_mb"])) / float(before["rss_mb"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="Cycles per level (default 200).")
    parser.add_argument("--sample", default="digits_cnn", help="Sample model (default digits_cnn).")
    parser.add_argument("--levels", nargs="+", default=["engine", "app"], choices=["engine", "app"])
    parser.add_argument(
        "--fixed-mmap-threshold",
        action="store_true",
        help=f"Re-run with {MMAP_THRESHOLD_ENV}={FIXED_MMAP_THRESHOLD} (glibc's dynamic threshold off).",
    )
    args = parser.parse_args()
    if args.fixed_mmap_threshold and MMAP_THRESHOLD_ENV not in os.environ:
        environment = {**os.environ, MMAP_THRESHOLD_ENV: str(FIXED_MMAP_THRESHOLD)}
        os.execve(sys.executable, [sys.executable, "-m", "bench.soak", *sys.argv[1:]], environment)
    if args.cycles < WARM_CYCLE:
        parser.error(f"--cycles must be at least {WARM_CYCLE}, the warm-up cycle memory is compared with")

    os.chdir(REPO_ROOT)  # AppTest reads .streamlit/config.toml from the working directory, like the server
    sys.path.insert(0, str(REPO_ROOT))
    verdicts, rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "experiments.db"
        os.environ[DB_ENV_VAR] = str(database)
        store = pe.ExperimentStore(database)
        for level in args.levels:
            cycle = engine_cycle(load_sample(args.sample), store) if level == "engine" else app_cycle(args.sample)
            level_rows = soak(level, cycle, args.cycles, store)
            rows += level_rows
            verdicts.append(verdict(level, level_rows))
    print(
        f"Sample {args.sample}; runner.postScriptGC = {st_config.get_option('runner.postScriptGC')}; "
        f"{MMAP_THRESHOLD_ENV} = {os.environ.get(MMAP_THRESHOLD_ENV, 'unset (glibc dynamic threshold)')}"
    )
    print_table(f"Resident memory over {args.cycles} apply → compare cycles", rows, float_format="{:.1f}")
    table = print_table(f"RSS after cycle {args.cycles} against cycle {WARM_CYCLE}", verdicts, "{:.2f}")
    return 0 if bool(table["within_10pct"].all()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
