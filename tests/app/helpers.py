"""Reading AppTest results: chart titles, metric values, the layer table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui.shared import keys
from ui.shared.navigation import INSPECT_PAGE, MODEL_PAGE

APP = Path(__file__).resolve().parents[2] / "app.py"
TIMEOUT_S = 60
"""AppTest's limit per script run: a cold first run imports torch and loads a model."""

PAGES = (MODEL_PAGE, INSPECT_PAGE)


def start_app() -> AppTest:
    """The app after its first run, as a new browser session sees it (on the Model page)."""
    return AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()


def chart_titles(at: AppTest) -> list[str]:
    """The title of every plotly chart on the page, in order."""
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]


def chart_spec(at: AppTest, title_start: str) -> dict:
    """The plotly spec of the chart whose title starts with `title_start`."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec["layout"]["title"]["text"].startswith(title_start):
            return spec
    raise AssertionError(f"No chart titled {title_start!r}…; the charts are {chart_titles(at)}")


def metrics(at: AppTest) -> dict[str, str]:
    """Metric label → shown value."""
    return {metric.label: metric.value for metric in at.metric}


def table_layers(at: AppTest) -> list[str]:
    """The layer names in the Model page's layer table."""
    return at.dataframe[0].value["name"].tolist()


def sidebar_text(at: AppTest) -> str:
    """Everything the sidebar says, as one string."""
    return " ".join([*at.sidebar.markdown.values, *at.sidebar.caption.values, *(w.value for w in at.sidebar.warning)])


def layer_key(at: AppTest, make: Callable[[str, int], str], layer: str) -> str:
    """The key of one of the Prune page's per-layer widgets as the app last drew it (`keys.prune_layer_*`)."""
    generation = at.session_state.get(keys.PRUNE_GENERATION, 0)
    return make(layer, generation)
