"""AppTest fixtures for the page tests."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.helpers import start_app


@pytest.fixture
def app() -> AppTest:
    """The app after its first run: on the Model page, with the first sample loaded."""
    return start_app()
