"""The docs stay true to the app: every picture they show exists and is made by `python -m docs.screenshots`,
the README's architecture file is the one the app loads, the screenshot steps still find what they wait for,
and the Model page's first-visit hint behaves as the guide says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import prune_engine as pe
from docs import screenshots
from prune_engine.architectures import ENV_VAR
from prune_engine.experiments import DB_ENV_VAR
from tests.app.helpers import start_app
from ui.model.page import GUIDE_HINT
from ui.shared import keys
from ui.shared.navigation import MODEL_PAGE, PRUNE_PAGE

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "teaching.md")
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")
MAX_PICTURE_BYTES = 3_000_000
"""All pictures together stay under ~3 MB, so the repository stays light."""


def pictures_shown() -> dict[Path, Path]:
    """Every picture a doc shows → the doc that shows it."""
    shown = {}
    for doc in DOCS:
        for link in IMAGE_LINK.findall(doc.read_text()):
            shown[(doc.parent / link).resolve()] = doc
    return shown


def test_every_picture_the_docs_show_exists_and_is_made_by_the_screenshot_script() -> None:
    shown = pictures_shown()
    made = {(screenshots.IMAGES / f"{name}.png").resolve() for names in screenshots.PICTURES.values() for name in names}
    missing = [f"{path.name} (in {doc.name})" for path, doc in shown.items() if not path.is_file()]
    assert not missing, f"pictures the docs show but docs/images lacks (run python -m docs.screenshots): {missing}"
    assert set(shown) <= made, f"pictures no screenshot step makes: {sorted(p.name for p in set(shown) - made)}"
    assert made <= set(shown), (
        f"pictures the script makes but no doc shows: {sorted(p.name for p in made - set(shown))}"
    )
    on_disk = set(screenshots.IMAGES.glob("*.png"))
    assert {path.resolve() for path in on_disk} == made, "docs/images holds pictures no step makes"
    assert sum(path.stat().st_size for path in on_disk) < MAX_PICTURE_BYTES


def test_the_readme_architecture_example_is_the_file_the_app_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    example = screenshots.ARCHITECTURES
    code = example.read_text()
    shown_in_readme = code[code.index("from torch import nn") :].strip()
    assert shown_in_readme in (REPO_ROOT / "README.md").read_text()
    monkeypatch.setenv(ENV_VAR, str(example))
    assert {"small_convnet", "small_convnet_wide"} <= set(pe.list_architectures())
    for name, width in (("small_convnet", 16), ("small_convnet_wide", 32)):
        model = pe.build_architecture(name)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
        assert model.features[0].out_channels == width


def test_the_guide_hint_shows_on_a_first_visit_and_stays_hidden_once_dismissed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DB_ENV_VAR, str(tmp_path / "experiments.db"))
    at = start_app()
    assert not at.exception
    assert GUIDE_HINT in at.markdown.values
    at.button(key=keys.MODEL_GUIDE_HINT_DISMISS).click().run()
    assert GUIDE_HINT not in at.markdown.values
    at.switch_page(PRUNE_PAGE).run()
    at.switch_page(MODEL_PAGE).run()
    assert not at.exception
    assert GUIDE_HINT not in at.markdown.values
    assert GUIDE_HINT in start_app().markdown.values, "a new browser session sees the hint again"


@pytest.mark.browser
def test_the_first_screenshot_steps_still_find_what_they_wait_for(browser, app_server: str) -> None:
    screenshots.run_steps(browser, app_server, screenshots.FAST_STEPS, folder=None)
