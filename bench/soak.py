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

- **browser**: `--sessions` browser sessions (default 50) one after another against one
  `streamlit run` server, each a fresh Playwright context (a new Streamlit session): open the
  app, move the Prune page's global slider, open Compare, close the context. The server's RSS
  is read after each session. Streamlit keeps a closed session's state for two minutes
  (its `MemorySessionStorage`: at most 128 sessions, 120 s), so the bench then waits
  `--settle` seconds past that and reads RSS again: growth that stays is a leak or caches
  filling; growth that stops once sessions expire is per-session state, bounded by those caps.
  The verdict is the growth per session after `--warm-sessions` (target ≤ 1 MB each).

Resident memory (RSS) is read after every cycle, without forcing a garbage collection, and the
run passes when RSS after the last cycle is within 10 % of RSS after cycle 20 (the warm-up: imports,
caches and allocator pools filled); the growth over the second half of the cycles tells a step that
levels off from a steady leak. The experiment database is a temporary file.

glibc raises its mmap threshold each time a large block is freed, after which tensors of changing
sizes (every plan gives other shapes) are served from the heap, which fragments: RSS climbs by
about 1 MB per engine cycle for ~100 cycles before it levels off, with no Python object left
behind. `--fixed-mmap-threshold` re-runs the bench with `MALLOC_MMAP_THRESHOLD_` set (64 KiB), which
turns that off, to tell allocator retention from a leak.
Run: `python -m bench.soak [--fixed-mmap-threshold]`, or `python -m bench.soak --levels browser --sessions 50`
(exit status 1 when memory grew beyond the bound).
"""

from __future__ import annotations

import argparse
import os
import subprocess
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
BROWSER_TIMEOUT_MS = 180_000
"""Playwright's wait for one step of a browser session: the first run imports torch on a busy server."""


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


def server_rss_mb(pid: int) -> float:
    """Resident memory of another process (the Streamlit server), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def browser_soak(sessions: int, warm: int, settle: float) -> tuple[list[dict[str, object]], dict[str, object]]:
    """`sessions` browser sessions against one server; RSS after each, and after the closed sessions expire."""
    import time

    from playwright.sync_api import expect, sync_playwright

    from tests.browser.helpers import open_app, open_page, wait_for_app
    from tests.browser.test_prune_compare_browser import press_on_slider
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, _free_port, _wait_until_healthy

    expect.set_options(timeout=BROWSER_TIMEOUT_MS)

    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless",
               "true", "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false"]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    rows: list[dict[str, object]] = []
    log_path = REPO_ROOT / "tests" / "artifacts" / "soak-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(server, base_url, log_path)
        with sync_playwright() as playwright, stopwatch() as elapsed:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for number in range(1, sessions + 1):
                context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
                context.set_default_timeout(BROWSER_TIMEOUT_MS)
                page = context.new_page()
                open_app(page)
                open_page(page, "Prune")
                press_on_slider(page, "Global ratio", "ArrowRight")
                wait_for_app(page)
                open_page(page, "Compare")
                expect(page.get_by_text("Pruned · ").first).to_be_visible()
                context.close()
                rows.append({"session": number, "server_rss_mb": server_rss_mb(server.pid), "elapsed_s": elapsed()})
            browser.close()
        time.sleep(settle)
        settled = server_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    warm_row = rows[min(warm, len(rows)) - 1]
    last = rows[-1]
    after_warm = max(int(last["session"]) - int(warm_row["session"]), 1)
    per_session = (float(last["server_rss_mb"]) - float(warm_row["server_rss_mb"])) / after_warm
    verdict = {
        "level": "browser",
        "sessions": sessions,
        f"rss_after_session_{warm_row['session']}_mb": warm_row["server_rss_mb"],
        "rss_last_session_mb": last["server_rss_mb"],
        "mb_per_session_after_warmup": per_session,
        f"rss_{settle:g}s_later_mb": settled,
        "within_1mb_per_session": per_session <= 1.0,
    }
    return rows, verdict


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
    parser.add_argument("--levels", nargs="+", default=["engine", "app"], choices=["engine", "app", "browser"])
    parser.add_argument("--sessions", type=int, default=50, help="Browser sessions (default 50).")
    parser.add_argument("--warm-sessions", type=int, default=6, help="Sessions before growth is counted (default 6).")
    parser.add_argument(
        "--settle", type=float, default=130.0, help="Seconds to wait after the last session (default 130)."
    )
    parser.add_argument(
        "--fixed-mmap-threshold",
        action="store_true",
        help=f"Re-run with {MMAP_THRESHOLD_ENV}={FIXED_MMAP_THRESHOLD} (glibc's dynamic threshold off).",
    )
    args = parser.parse_args()
    if args.fixed_mmap_threshold and MMAP_THRESHOLD_ENV not in os.environ:
        environment = {**os.environ, MMAP_THRESHOLD_ENV: str(FIXED_MMAP_THRESHOLD)}
        os.execve(sys.executable, [sys.executable, "-m", "bench.soak", *sys.argv[1:]], environment)
    if "browser" in args.levels:
        os.chdir(REPO_ROOT)
        sys.path.insert(0, str(REPO_ROOT))
        rows, verdict_row = browser_soak(args.sessions, args.warm_sessions, args.settle)
        print_table(f"Server memory over {args.sessions} browser sessions", rows, float_format="{:.1f}")
        table = print_table("Growth per browser session after the warm-up", [verdict_row], "{:.2f}")
        args.levels = [level for level in args.levels if level != "browser"]
        if not args.levels:
            return 0 if bool(table["within_1mb_per_session"].all()) else 1
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
