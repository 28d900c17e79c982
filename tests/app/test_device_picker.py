"""The sidebar's device picker: it offers the devices torch has here and places the working copy there."""

from __future__ import annotations

import copy

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

import prune_engine as pe
from prune_engine.placement import model_device
from sample_models import list_samples
from tests.app.helpers import sidebar_text, start_app
from ui.shared import caches, keys
from ui.shared.navigation import COMPARE_PAGE, INSPECT_PAGE, PRUNE_PAGE
from workbench import session


def test_the_picker_offers_the_devices_here_and_starts_on_the_cpu(app: AppTest) -> None:
    picker = app.sidebar.selectbox(key=keys.DEVICE)

    assert not app.exception
    assert picker.value == "cpu"
    assert len(picker.options) == len(pe.available_devices())
    assert "Working copy on cpu in float32" in sidebar_text(app)


def test_choosing_a_device_places_the_working_copy_every_page_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second device, as a GPU machine would offer it: its copy is made on the CPU here (so it computes),
    and the test follows where the app asks for it."""
    monkeypatch.setattr(pe, "available_devices", lambda: ["cpu", "cuda"])
    placed_on: list[str] = []

    def place_model(model: nn.Module, device: str, dtype: torch.dtype | None = None) -> nn.Module:
        placed_on.append(device)
        return copy.deepcopy(model)

    monkeypatch.setattr(session, "place_model", place_model)
    monkeypatch.setattr(session, "model_device", lambda model: torch.device("cuda"))
    app = start_app()
    app.sidebar.selectbox(key=keys.DEVICE).select("cuda").run()
    for page in (INSPECT_PAGE, PRUNE_PAGE, COMPARE_PAGE):
        app.switch_page(page).run()
        assert not app.exception, page

    assert placed_on == ["cuda"], "placed once, then shared by every page"
    pruned = app.session_state[keys.PRUNED]
    assert pruned.base_fingerprint.endswith("@cuda"), "the pruned result was made from the working copy"
    shared = caches.load_sample_model(list_samples()[0]).bundle.model
    assert model_device(shared).type == "cpu", "the model shared between sessions is not moved"


def test_a_device_that_went_away_falls_back_to_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pe, "available_devices", lambda: ["cpu", "meta"])
    app = start_app()
    app.sidebar.selectbox(key=keys.DEVICE).select("meta").run()
    monkeypatch.setattr(pe, "available_devices", lambda: ["cpu"])

    app.run()

    assert not app.exception
    assert app.sidebar.selectbox(key=keys.DEVICE).value == "cpu"
    assert "Working copy on cpu in float32" in sidebar_text(app)
