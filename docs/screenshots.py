"""Regenerate every picture of README.md and docs/teaching.md from the running app.

    .venv/bin/python -m docs.screenshots              # all pictures → docs/images/*.png (~3 minutes)
    .venv/bin/python -m docs.screenshots --check      # the same steps, nothing written: do the pages still fit?
    .venv/bin/python -m docs.screenshots --only magnitude channels

Starts `streamlit run app.py` with the server start the browser tests use (`tests.conftest.streamlit_server`,
a temporary experiment history, `docs/examples/my_architectures.py` as PRUNESCOPE_ARCHITECTURES), and drives
Debian's chromium (/usr/bin/chromium) with Playwright through the guide's steps, each in a fresh browser
session. Every wait names the content it expects, so a page that changed fails the step with what was missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from docs.examples import make_upload_files
from tests.browser.helpers import open_app, open_page, select_option, wait_for_app
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, EXPECT_TIMEOUT_MS, REPO_ROOT, VIEWPORT, streamlit_server

IMAGES = REPO_ROOT / "docs" / "images"
ARCHITECTURES = REPO_ROOT / "docs" / "examples" / "my_architectures.py"
LONG_WAIT_MS = 300_000
"""A scan, a training or pruning a 22 M parameter model on a busy two-core machine."""
SETTLE_MS = 400
"""Plotly charts and data grids paint on a canvas after the run has ended; no page state says when."""
PADDING = 12
COLOURS = 256
"""Pictures are saved with a palette of this many colours: a third of the bytes, no visible loss on UI text."""


@dataclass
class Camera:
    """Takes the pictures of one step: writes docs/images/<name>.png, or (check mode) only checks what it frames."""

    page: Page
    folder: Path | None

    def take(self, name: str, top: Locator, bottom: Locator | None = None) -> None:
        """Picture the main column from `top` to `bottom` (default: `top` alone), after the app is idle."""
        expect(top).to_be_visible()
        if bottom is not None:
            expect(bottom).to_be_visible()
        self._settled()
        if self.folder is None:
            return
        self._stretched_shot(self.folder / f"{name}.png", top, bottom or top)

    def take_viewport(self, name: str, shown: Locator) -> None:
        """Picture the window as a visitor sees it (sidebar included), once `shown` is visible."""
        expect(shown).to_be_visible()
        self._settled()
        if self.folder is None:
            return
        self.page.wait_for_timeout(SETTLE_MS)
        path = self.folder / f"{name}.png"
        self.page.screenshot(path=path)
        _shrink(path)

    def _settled(self) -> None:
        """No script run in progress, and no element still showing its loading placeholder."""
        wait_for_app(self.page)
        expect(self.page.get_by_test_id("stSkeleton")).to_have_count(0)

    def _stretched_shot(self, path: Path, top: Locator, bottom: Locator) -> None:
        """Streamlit scrolls inside its main block: stretch the window to the content's height (as the browser
        tests' `save_screenshot` does), clip from `top` to `bottom`, and restore the window."""
        page = self.page
        viewport = page.viewport_size
        assert viewport is not None, "the page has no fixed viewport to restore"
        height = page.get_by_test_id("stMain").evaluate("element => element.scrollHeight")
        page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
        try:
            page.wait_for_timeout(SETTLE_MS)
            column = page.get_by_test_id("stMainBlockContainer").bounding_box()
            first, last = top.bounding_box(), bottom.bounding_box()
            assert column and first and last, "a framed element has no box on the page"
            y = max(first["y"] - PADDING, 0)
            clip = {
                "x": column["x"],
                "y": y,
                "width": column["width"],
                "height": last["y"] + last["height"] + PADDING - y,
            }
            page.screenshot(path=path, clip=clip)
        finally:
            page.set_viewport_size(viewport)
        _shrink(path)


def _shrink(path: Path) -> None:
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT)
    palette.save(path, optimize=True)


# --- helpers that speak this app ------------------------------------------------------------------


def _main(page: Page) -> Locator:
    return page.get_by_test_id("stMain")


def _heading(page: Page, text: str) -> Locator:
    return _main(page).get_by_role("heading", name=text, exact=True).first


def _chart(page: Page, title: str) -> Locator:
    return page.get_by_test_id("stPlotlyChart").filter(has_text=title).first


def _open_preview(page: Page) -> None:
    """Open the Prune page's preview charts (drawn only while open) and wait for them."""
    page.get_by_text("Preview: the share").first.click()
    expect(_chart(page, "What each layer will lose")).to_be_visible()
    wait_for_app(page)


def _granularity(page: Page, label: str, caption: str) -> None:
    page.get_by_test_id("stRadio").filter(has_text="Granularity").first.get_by_text(label, exact=True).click()
    expect(page.get_by_text(caption).first).to_be_visible()
    wait_for_app(page)


def _preset(page: Page, percent: int, unit: str) -> None:
    """Press a Prune page preset and wait until the page says the plan changed."""
    label = f"{percent} %"
    page.get_by_test_id("stButtonGroup").filter(has_text=label).get_by_text(label, exact=True).click()
    expect(page.get_by_text(f"{percent} % of the {unit} of each unlocked layer").first).to_be_visible()
    wait_for_app(page)


def _pick_sample(page: Page, name: str) -> None:
    select_option(page, "Sample model", name)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(name)
    wait_for_app(page)


def _metric(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label).first


def _tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    wait_for_app(page)


def _compare_boxes(page: Page) -> tuple[Locator, Locator]:
    """The Compare page's title and the last figure of its two boxes (original, pruned)."""
    return _heading(page, "Compare"), page.get_by_test_id("stMetric").filter(has_text="Sparse size").last


def _scan_channels(page: Page) -> None:
    """Sensitivity page: a channel scan with BatchNorm re-estimated, in this server process."""
    open_page(page, "Sensitivity")
    page.get_by_test_id("stRadio").filter(has_text="Granularity").get_by_text("Whole channels").click()
    wait_for_app(page)
    toggle = page.get_by_test_id("stCheckbox").filter(has_text="Re-estimate BatchNorm statistics")
    expect(toggle.locator("input")).to_be_checked()  # on by default for channels, as on the Prune page
    select_option(page, "Run on", "This server process")
    page.get_by_role("button", name="Run the scan").click()
    expect(page.get_by_text("The scan finished in")).to_be_visible(timeout=LONG_WAIT_MS)
    wait_for_app(page)


# --- the steps: one fresh browser session each ----------------------------------------------------


def model_hint(camera: Camera) -> None:
    """The first-visit hint; hidden once dismissed, and still hidden after a visit to another page."""
    page = camera.page
    open_app(page)
    hint = page.get_by_text("New here? A ten-minute tour")
    expect(_metric(page, "Parameters")).to_be_visible()
    camera.take_viewport("model-page", hint)
    page.get_by_role("button", name="Hide this hint").click()
    expect(hint).to_have_count(0)
    open_page(page, "Prune")
    open_page(page, "Model")
    expect(page.get_by_role("combobox", name="Sample model")).to_be_visible()
    expect(hint).to_have_count(0)


def magnitude(camera: Camera) -> None:
    """digits_mlp, single weights: the cut line at 50 %, the histogram's gap, and what 90 % costs."""
    page = camera.page
    open_app(page)
    open_page(page, "Prune")
    _preset(page, 50, "weights")
    _open_preview(page)
    camera.take("prune-magnitude-50", page.get_by_test_id("stRadio").filter(has_text="Granularity").first,
                _chart(page, "Weight importance of"))  # fmt: skip
    open_page(page, "Compare")
    camera.take("compare-histogram-50", _chart(page, "before and after pruning"))
    open_page(page, "Prune")
    _preset(page, 90, "weights")
    camera.take("prune-result-90", _heading(page, "Result"), page.get_by_role("button", name="Download the plan"))
    open_page(page, "Compare")
    title, _ = _compare_boxes(page)
    camera.take("compare-magnitude-90", title, page.get_by_text("This result only sets weights to zero"))


def _cnn_channels_at_50(page: Page) -> None:
    """A fresh session on digits_cnn's Prune page with half of every layer's channels removed."""
    open_app(page)
    _pick_sample(page, "digits_cnn")
    open_page(page, "Prune")
    _granularity(page, "Whole channels", "of the channels of each unlocked layer")
    _preset(page, 50, "channels")


def channels(camera: Camera) -> None:
    """digits_cnn, whole channels at 50 %: the model shrinks, and Compare times it against the prediction."""
    page = camera.page
    _cnn_channels_at_50(page)
    expect(_metric(page, "Predicted speed-up")).to_contain_text("×")
    camera.take("prune-channels-50", _heading(page, "Per layer"), page.get_by_role("button", name="Download the plan"))
    open_page(page, "Compare")
    expect(page.get_by_text("Predicted before pruning:")).to_be_visible()
    camera.take("compare-channels-50", *_compare_boxes(page))
    camera.take("compare-latency-channels-50", _heading(page, "Latency"), _chart(page, "Latency of every timed block"))


def sensitivity(camera: Camera) -> None:
    """digits_cnn: a channel scan with BatchNorm re-estimated, its suggested ratios, and those in the sliders."""
    page = camera.page
    open_app(page)
    _pick_sample(page, "digits_cnn")
    _scan_channels(page)
    camera.take("sensitivity-scan", page.get_by_text("Last scan:"), _chart(page, "Accuracy with one layer pruned"))
    _tab(page, "Suggested ratios")
    send = page.get_by_role("button", name="Send to the Prune sliders")
    camera.take("suggested-ratios", page.get_by_text("Remove this share of the model").first, send)
    send.click()
    expect(_heading(page, "Prune")).to_be_visible()
    wait_for_app(page)
    camera.take("prune-from-suggestion", _heading(page, "Per layer"), page.get_by_text("Preview: the share").first)


def prune_in_steps(camera: Camera) -> None:
    """digits_cnn: 50 % of the channels reached in three AGP steps with fine-tuning, then made the pruned model."""
    page = camera.page
    _cnn_channels_at_50(page)
    open_page(page, "Sensitivity")
    _tab(page, "Prune in steps")
    page.get_by_test_id("stRadio").filter(has_text="Plan to reach").get_by_text("The Prune page's plan").click()
    wait_for_app(page)
    page.get_by_role("button", name="Prune and fine-tune in steps").click()
    use = page.get_by_role("button", name="Use this model as the pruned model")
    expect(use).to_be_visible(timeout=LONG_WAIT_MS)
    camera.take("prune-in-steps", page.get_by_text("Plan:", exact=False).first, use)
    use.click()
    expect(page.get_by_text("This is now the session's pruned model.")).to_be_visible()


def sparsity_training(camera: Camera) -> None:
    """digits_cnn: network slimming, trained with and without an L1 penalty on BatchNorm γ, then pruned alike."""
    page = camera.page
    open_app(page)
    _pick_sample(page, "digits_cnn")
    open_page(page, "Sensitivity")
    _tab(page, "Sparsity training")
    page.get_by_test_id("stRadio").filter(has_text="Penalise").get_by_text("BatchNorm γ (network slimming)").click()
    wait_for_app(page)
    page.get_by_role("button", name="Train with and without L1").click()
    use = page.get_by_role("button", name="Use this model as the pruned model")
    expect(use).to_be_visible(timeout=LONG_WAIT_MS)
    camera.take("sparsity-training", _chart(page, "before and after L1 training"), use)


def methods(camera: Camera) -> None:
    """digits_cnn: magnitude, Wanda and random at three ratios, random repeated with three seeds."""
    page = camera.page
    open_app(page)
    _pick_sample(page, "digits_cnn")
    open_page(page, "Sensitivity")
    _tab(page, "Compare methods")
    page.get_by_role("button", name="Compare", exact=True).click()
    table = page.get_by_test_id("stDataFrame").filter(has_text="Random").first
    expect(table).to_be_visible(timeout=LONG_WAIT_MS)
    camera.take("compare-methods", page.get_by_test_id("stForm").first, table)


def heads(camera: Camera) -> None:
    """minilm: 30 % of the attention heads removed with Apply, then compared with the original."""
    page = camera.page
    open_app(page)
    _pick_sample(page, "minilm")
    open_page(page, "Prune")
    _granularity(page, "Attention heads", "of the heads of each unlocked attention layer")
    _open_preview(page)
    page.get_by_role("button", name="Apply the plan").click()
    expect(_metric(page, "Predicted speed-up")).to_contain_text("×", timeout=LONG_WAIT_MS)
    predict = page.get_by_test_id("stCheckbox").filter(has_text="Predict the speed-up")
    camera.take("prune-heads", _heading(page, "Per attention layer"), predict)
    open_page(page, "Compare")
    camera.take("compare-heads", *_compare_boxes(page))


def upload(camera: Camera) -> None:
    """Your own model: a small_convnet state_dict (docs/examples) with a CSV of evaluation and one of training data."""
    page = camera.page
    with tempfile.TemporaryDirectory() as folder:
        files = Path(folder)
        make_upload_files.write_files(files)
        open_app(page)
        page.get_by_role("tab", name="Upload your own model").click()
        wait_for_app(page)
        _upload(page, "Model file", files / "small_convnet.pt")
        select_option(page, "Architecture", "small_convnet")
        _upload(page, "Data file", files / "digits_eval.csv")
        expect(page.get_by_role("combobox", name="Label column")).to_have_value("label")
        shape = page.get_by_role("textbox", name="Shape of one example")
        shape.fill("1, 8, 8")
        shape.press("Enter")
        wait_for_app(page)
        page.get_by_test_id("stRadio").filter(has_text="Upload a training file").get_by_text(
            "Upload a training file"
        ).click()
        wait_for_app(page)
        _upload(page, "Training file", files / "digits_train.csv")
        load = page.get_by_role("button", name="Load this model")
        camera.take("upload-form", page.get_by_text("Load a trained PyTorch model of your own"), load)
        load.click()
        expect(page.get_by_text("Loaded small_convnet.pt").first).to_be_visible()
        camera.take("upload-loaded", page.get_by_text("Loaded small_convnet.pt").first, _metric(page, "Sparsity"))


def _upload(page: Page, label: str, path: Path) -> None:
    page.get_by_test_id("stFileUploader").filter(has_text=label).locator('input[type="file"]').set_input_files(path)
    expect(page.get_by_test_id("stFileUploader").filter(has_text=label)).to_contain_text(path.name)
    wait_for_app(page)


STEPS: dict[str, Callable[[Camera], None]] = {
    "model_hint": model_hint,
    "magnitude": magnitude,
    "channels": channels,
    "sensitivity": sensitivity,
    "prune_in_steps": prune_in_steps,
    "sparsity_training": sparsity_training,
    "methods": methods,
    "heads": heads,
    "upload": upload,
}
"""Every step, in the guide's order."""
PICTURES: dict[str, tuple[str, ...]] = {
    "model_hint": ("model-page",),
    "magnitude": ("prune-magnitude-50", "compare-histogram-50", "prune-result-90", "compare-magnitude-90"),
    "channels": ("prune-channels-50", "compare-channels-50", "compare-latency-channels-50"),
    "sensitivity": ("sensitivity-scan", "suggested-ratios", "prune-from-suggestion"),
    "prune_in_steps": ("prune-in-steps",),
    "sparsity_training": ("sparsity-training",),
    "methods": ("compare-methods",),
    "heads": ("prune-heads", "compare-heads"),
    "upload": ("upload-form", "upload-loaded"),
}
"""The pictures each step writes (docs/images/<name>.png); tests/test_docs.py checks the docs use no others."""
FAST_STEPS = ("model_hint", "magnitude")
"""The steps the browser test runs in check mode: the pages a first reader meets, in well under a minute."""


def run_steps(browser: Browser, base_url: str, names: list[str] | tuple[str, ...], folder: Path | None) -> None:
    """Run the named steps, each in a fresh browser session against `base_url`; write pictures to `folder`
    (None: check only)."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    for name in names:
        context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        started = time.perf_counter()
        try:
            STEPS[name](Camera(context.new_page(), folder))
        finally:
            context.close()
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="run the steps but write no pictures")
    parser.add_argument("--only", nargs="+", choices=list(STEPS), default=list(STEPS), help="steps to run")
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        sys.exit(f"chromium is missing at {CHROMIUM}: `apt-get install -y chromium` (never `playwright install`).")
    folder = None if args.check else IMAGES
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "streamlit.log"
        environment = {"PRUNESCOPE_ARCHITECTURES": str(ARCHITECTURES)}
        with streamlit_server(log, Path(scratch) / "experiments.db", environment) as base_url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                run_steps(browser, base_url, args.only, folder)
            finally:
                browser.close()
    if folder is not None:
        total = sum(path.stat().st_size for path in folder.glob("*.png"))
        print(f"{len(list(folder.glob('*.png')))} pictures in {folder}, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
