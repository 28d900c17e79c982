"""Playwright helpers that speak Streamlit: wait for a run to finish, switch pages, pick options.

They wait on states and content with `expect`, never with sleeps.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

import prune_engine as pe

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def wait_for_app(page: Page) -> None:
    """Wait until no script run is in progress.

    Right after an action the app may still read idle: also wait for the content you expect.
    """
    expect(page.locator(APP_IDLE)).to_be_attached()


def open_app(page: Page, path: str = "/") -> None:
    """Load the app at `path` and wait until its page has rendered a heading."""
    page.goto(path)
    wait_for_app(page)
    expect(page.get_by_role("heading", level=1).first).to_be_visible()


def open_page(page: Page, title: str) -> None:
    """Click the sidebar navigation link `title` and wait until that page is the current one."""
    navigation = page.get_by_test_id("stSidebarNav")
    navigation.get_by_role("link", name=title).click()
    expect(navigation.locator('[aria-current="page"]')).to_contain_text(title)
    wait_for_app(page)


def choose_whole_channels(page: Page) -> None:
    """On the Prune page, switch the granularity to whole channels and wait until the page says so."""
    page.get_by_test_id("stRadio").filter(has_text="Granularity").get_by_text("Whole channels").click()
    expect(page.get_by_text("of the channels of each unlocked layer")).to_be_visible()
    wait_for_app(page)


def select_option(page: Page, label: str, option: str) -> None:
    """Choose `option` in the selectbox labelled `label` and wait until it shows."""
    combobox = page.get_by_role("combobox", name=label)
    combobox.scroll_into_view_if_needed()
    combobox.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(combobox).to_have_value(option)
    wait_for_app(page)


def save_screenshot(page: Page, name: str) -> None:
    """Save the whole page to tests/artifacts/<name>.png.

    Streamlit scrolls inside its main block, not the document, so the viewport is
    stretched to the content's height for the shot and restored afterwards.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    assert viewport is not None, "the page has no fixed viewport to restore"
    height = page.get_by_test_id("stMain").evaluate("element => element.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    page.screenshot(path=ARTIFACTS / f"{name}.png")
    page.set_viewport_size(viewport)


def download_plan(page: Page) -> pe.PruningPlan:
    """Open Compare, wait for its Export section and download the plan it offers."""
    open_page(page, "Compare")
    expect(page.get_by_role("heading", name="Export")).to_be_visible()
    with page.expect_download() as plan_download:
        page.get_by_role("button", name="Download the plan").click()
    return pe.PruningPlan.from_json(Path(plan_download.value.path()).read_text())
