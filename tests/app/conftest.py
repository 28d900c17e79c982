"""AppTest fixtures for the page tests."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from prune_engine.experiments import DB_ENV_VAR
from tests.app.helpers import start_app


@pytest.fixture(autouse=True)
def experiment_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh experiment database per test ($PRUNESCOPE_DB), so no test writes into the working directory's."""
    path = tmp_path / "experiments.db"
    monkeypatch.setenv(DB_ENV_VAR, str(path))
    return path


@pytest.fixture
def app() -> AppTest:
    """The app after its first run: on the Model page, with the first sample loaded."""
    return start_app()
