"""The engine's per-layer report as people read it: named columns, percentages, counts with separators."""

from __future__ import annotations

import pandas as pd

from workbench import fmt

SHARE_COLUMNS = {"target_ratio": "Asked", "assigned_ratio": "Assigned", "achieved_ratio": "Achieved"}
COUNT_COLUMNS = {
    "params_before": "Parameters before",
    "params_after": "Parameters after",
    "nonzero_before": "Non-zeros before",
    "nonzero_after": "Non-zeros after",
    "channels_before": "Channels before",
    "channels_after": "Channels after",
}
TEXT_COLUMNS = {"layer": "Layer", "kind": "Kind", "status": "Status", "note": "Note"}


def readable_report(report: pd.DataFrame) -> pd.DataFrame:
    """The report's columns under plain names, shares as percentages and counts written out (for a page or file).

    The weight counts are left out: for a Linear or Conv layer they repeat the parameters less the bias.
    """
    table = pd.DataFrame({"Layer": report["layer"], "Kind": report["kind"]})
    for column, title in SHARE_COLUMNS.items():
        table[title] = [fmt.percent(None if pd.isna(value) else float(value)) for value in report[column]]
    for column, title in COUNT_COLUMNS.items():
        table[title] = [fmt.MISSING if pd.isna(value) else f"{int(value):,}" for value in report[column]]
    table["Status"] = [str(status) for status in report["status"]]
    table["Note"] = report["note"].fillna("")
    return table
