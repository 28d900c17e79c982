"""Fixtures shared by the test suite: a live `streamlit run` server, chromium, a browser page.

AppTest fixtures live in `tests/app/conftest.py`; engine tests keep theirs in `tests/engine/conftest.py`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
SERVER_LOG = ARTIFACTS / "streamlit-server.log"
SERVER_START_TIMEOUT_S = 60
HEALTH_POLL_S = 0.1
LOG_TAIL_CHARS = 4000

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_MISSING = "chromium is not installed (needs root + apt: `apt-get install -y chromium`); browser tests skipped"
VIEWPORT = {"width": 1400, "height": 900}
EXPECT_TIMEOUT_MS = 30_000
"""How long browser actions and `expect` wait: the first run of a fresh server imports torch."""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item (for failure screenshots) and attach the server log on failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    if report.failed and "app_server" in getattr(item, "fixturenames", ()) and SERVER_LOG.is_file():
        report.sections.append(("streamlit server log (tail)", _log_tail()))
    return report


def _log_tail(log_path: Path = SERVER_LOG) -> str:
    return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


class ServerStartError(RuntimeError):
    """`streamlit run` exited, or never answered its health check; the message carries the log's tail."""


def _wait_until_healthy(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    """Poll the health endpoint; raise with the server log if it exits or never answers."""
    for _ in range(int(SERVER_START_TIMEOUT_S / HEALTH_POLL_S)):
        if _is_healthy(base_url):
            return
        try:
            code = process.wait(timeout=HEALTH_POLL_S)
        except subprocess.TimeoutExpired:
            continue
        raise ServerStartError(f"streamlit exited with code {code} before it was ready:\n{_log_tail(log_path)}")
    raise ServerStartError(
        f"streamlit did not answer {base_url}/_stcore/health within {SERVER_START_TIMEOUT_S} s:\n{_log_tail(log_path)}"
    )


@contextmanager
def streamlit_server(log_path: Path, database: Path, environment: Mapping[str, str] | None = None) -> Iterator[str]:
    """`streamlit run app.py` on a free local port, logging to `log_path`; yields its base URL, then stops it.

    Its experiment history goes to `database` ($PRUNESCOPE_DB), not the working directory's; `environment`
    adds variables (e.g. PRUNESCOPE_ARCHITECTURES). Shared by the `app_server` fixture and `python -m docs.screenshots`.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(environment or {}), "PRUNESCOPE_DB": str(database)},
        )
    try:
        _wait_until_healthy(process, base_url, log_path)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run app.py` on a free local port, for the whole session; yields its base URL.

    Its experiment history goes to a temporary database ($PRUNESCOPE_DB), not the working directory's.
    """
    database = tmp_path_factory.mktemp("app_server") / "experiments.db"
    with ExitStack() as stack:
        try:
            base_url = stack.enter_context(streamlit_server(SERVER_LOG, database))
        except ServerStartError as error:
            pytest.fail(str(error))
        yield base_url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright (never `playwright install`); skips without it, except in CI."""
    if not CHROMIUM.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"chromium is not installed at {CHROMIUM} and CI=true requires the browser tests to run: "
                "install it with `apt-get install -y chromium` (or run `make test` as root)."
            )
        pytest.skip(
            "chromium is not installed (needs root + apt: `apt-get install -y chromium`); browser tests skipped"
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Browser, app_server: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context on the app (so a fresh Streamlit session); a screenshot if the test fails."""
    context = browser.new_context(base_url=app_server, viewport=VIEWPORT)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    browser_page = context.new_page()
    yield browser_page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser_page.screenshot(path=ARTIFACTS / f"{_safe_name(request.node.name)}.png", full_page=True)
    context.close()


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
