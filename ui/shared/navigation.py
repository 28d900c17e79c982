"""The app's pages: each page's script, title, icon and address, written once.

`app.py` builds the navigation from `PAGES`; links and page switches name a page by its
constant here, never by a path of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_PAGE = "pages/1_Model.py"
INSPECT_PAGE = "pages/2_Inspect.py"
PRUNE_PAGE = "pages/3_Prune.py"
COMPARE_PAGE = "pages/4_Compare.py"
SENSITIVITY_PAGE = "pages/5_Sensitivity.py"
EXPERIMENTS_PAGE = "pages/6_Experiments.py"


@dataclass(frozen=True)
class PageSpec:
    """One entry of the navigation.

    `url_path` is lowercase and unlike the file's name: Streamlit also knows the files of a
    `pages/` folder by name ("Model" for 1_Model.py) and can run such a page without `app.py`,
    skipping the shared frame (AppTest reruns do; so does a fresh server's first request).
    """

    script: str
    title: str
    icon: str
    url_path: str


PAGES = (
    PageSpec(MODEL_PAGE, "Model", ":material/deployed_code:", "model"),
    PageSpec(INSPECT_PAGE, "Inspect", ":material/query_stats:", "inspect"),
    PageSpec(PRUNE_PAGE, "Prune", ":material/content_cut:", "prune"),
    PageSpec(COMPARE_PAGE, "Compare", ":material/compare_arrows:", "compare"),
    PageSpec(SENSITIVITY_PAGE, "Sensitivity", ":material/monitor_heart:", "sensitivity"),
    PageSpec(EXPERIMENTS_PAGE, "Experiments", ":material/history:", "experiments"),
)
"""In menu order; the first is where the app opens."""
