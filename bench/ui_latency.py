"""How fast the Prune page answers a slider: key press → the app idle again with the new content shown.

Starts `streamlit run app.py` on a free port, drives Debian's chromium with Playwright, and
on each sample model presses ArrowRight on the global slider `--presses` times, timing each
press until the page shows the new ratio (a caption only the rerun writes) and the app reads
idle again. Targets on a quiet machine: the digits samples p50 ≤ 150 ms and p95 ≤ 300 ms, the
transformers (minilm, tiny_gpt) p50 ≤ 300 ms and p95 ≤ 600 ms.
Run: `python -m bench.ui_latency [--samples digits_mlp minilm] [--granularity channel] [--presses 30]`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from playwright.sync_api import Page, expect, sync_playwright

from bench.common import print_table
from sample_models import list_samples
from tests.browser.helpers import open_app, open_page, select_option, wait_for_app
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, EXPECT_TIMEOUT_MS, VIEWPORT

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60
PRESS_TIMEOUT_MS = 30_000
TARGETS_MS = {"digits": (150, 300), "other": (300, 600)}
"""(p50, p95) per sample family: samples named digits_* and the rest (the transformers)."""
START_PERCENT = 30
GRANULARITY_LABELS = {"unstructured": "Single weights", "channel": "Whole channels"}
UNITS = {"unstructured": "weights", "channel": "channels"}

RERUN_DONE = """([expected]) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
    return Array.from(document.querySelectorAll('[data-testid="stCaptionContainer"]'))
        .some((caption) => caption.textContent.includes(expected));
}"""
"""True once a caption written by the rerun shows `expected` and no script run is in progress."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def app_server() -> Iterator[str]:
    """`streamlit run app.py` on a free local port (settings from .streamlit/config.toml); yields its base URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _healthy(base_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start:\n{log.read().decode(errors='replace')[-4000:]}")
                time.sleep(0.1)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def targets(sample: str) -> tuple[int, int]:
    """The (p50, p95) milliseconds `sample` should answer a key press within."""
    return TARGETS_MS["digits" if sample.startswith("digits") else "other"]


def expected_caption(percent: int, granularity: str) -> str:
    """The start of the global slider's caption at `percent`, which only the page's rerun writes."""
    return f"{percent} % of the {UNITS[granularity]} of each unlocked layer"


def time_presses(page: Page, sample: str, granularity: str, presses: int) -> list[float]:
    """Milliseconds from each ArrowRight on the global slider until the rerun has shown it and finished."""
    open_app(page)
    select_option(page, "Sample model", sample)
    open_page(page, "Prune")
    if granularity != "unstructured":
        page.get_by_test_id("stRadio").filter(has_text="Granularity").get_by_text(
            GRANULARITY_LABELS[granularity]
        ).click()
    page.wait_for_function(RERUN_DONE, arg=[expected_caption(START_PERCENT, granularity)], timeout=PRESS_TIMEOUT_MS)
    wait_for_app(page)
    handle = page.get_by_test_id("stSlider").filter(has_text="Global ratio").locator('input[type="range"]')
    handle.wait_for(state="attached")
    times = []
    for step in range(1, presses + 1):
        expected = expected_caption(START_PERCENT + step, granularity)
        handle.focus()
        start = time.perf_counter()
        handle.press("ArrowRight")
        page.wait_for_function(RERUN_DONE, arg=[expected], polling="raf", timeout=PRESS_TIMEOUT_MS)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def load() -> str:
    """The load averages `uptime` reports (1, 5 and 15 minutes)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=30, help="Key presses per sample (default 30).")
    parser.add_argument(
        "--granularity", choices=sorted(UNITS), nargs="+", default=["unstructured", "channel"], help="Granularities."
    )
    parser.add_argument("--samples", nargs="+", default=list_samples(), help="Samples (default: all).")
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        sys.exit(f"chromium is missing at {CHROMIUM}: `apt-get install -y chromium` (never `playwright install`).")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    load_before = load()
    rows = []
    with app_server() as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for granularity in args.granularity:
            for sample in args.samples:
                context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
                context.set_default_timeout(EXPECT_TIMEOUT_MS)
                times = np.array(time_presses(context.new_page(), sample, granularity, args.presses))
                context.close()
                p50, p95 = np.percentile(times, [50, 95])
                target_p50, target_p95 = targets(sample)
                rows.append(
                    {
                        "sample": sample,
                        "granularity": granularity,
                        "presses": len(times),
                        "p50_ms": p50,
                        "p95_ms": p95,
                        "max_ms": times.max(),
                        "target_ms": f"{target_p50} / {target_p95}",
                        "target": "met" if p50 <= target_p50 and p95 <= target_p95 else "missed",
                    }
                )
        browser.close()
    title = (
        "Slider key press → app idle with the new content (target: p50 / p95 ms); "
        f"load average before {load_before}, after {load()}"
    )
    print_table(title, rows, float_format="{:.0f}")


if __name__ == "__main__":
    main()
