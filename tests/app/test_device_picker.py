"""The sidebar's device picker: it offers the devices torch has here and places the working copy there."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from prune_engine.placement import model_device
from sample_models import list_samples
from tests.app.helpers import sidebar_text, start_app
from ui.shared import caches, keys
from ui.shared.navigation import INSPECT_PAGE


def test_the_picker_offers_the_devices_here_and_starts_on_the_cpu(app: AppTest) -> None:
    picker = app.sidebar.selectbox(key=keys.DEVICE)

    assert not app.exception
    assert picker.value == "cpu"
    assert len(picker.options) == len(pe.available_devices())
    assert "Working copy on cpu in float32" in sidebar_text(app)


def test_choosing_a_device_moves_the_working_copy_and_leaves_the_shared_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pe, "available_devices", lambda: ["cpu", "meta"])  # a second device with no GPU here
    app = start_app()

    app.sidebar.selectbox(key=keys.DEVICE).select("meta").run()
    app.switch_page(INSPECT_PAGE).run()

    assert not app.exception
    assert app.session_state[keys.DEVICE] == "meta"
    assert "Working copy on meta in float32" in sidebar_text(app)
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
