"""AppTest fixtures for the page tests."""

from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
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


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Media file id → content of every file the app hands to the browser (download buttons included)."""
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = path_or_data if isinstance(path_or_data, bytes) else path_or_data.encode()
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files
