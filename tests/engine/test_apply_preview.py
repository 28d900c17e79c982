"""apply_plan carries the preview of the same decision, so a caller that prunes live decides once."""

from __future__ import annotations

import pandas as pd
import pytest

import prune_engine as pe
from sample_models import load_sample


@pytest.mark.parametrize(
    "plan",
    [
        pe.PruningPlan(granularity="unstructured", global_ratio=0.4),
        pe.PruningPlan(granularity="unstructured", scope="global", global_ratio=0.4),
        pe.PruningPlan(granularity="channel", global_ratio=0.5, ratios={"conv2": 0.25}),
        pe.PruningPlan(granularity="n:m", n=2, m=4, global_ratio=0.5),
    ],
    ids=["unstructured", "global", "channel", "n:m"],
)
def test_the_applied_result_carries_the_preview_of_its_plan(plan: pe.PruningPlan) -> None:
    bundle = load_sample("digits_cnn")
    result = pe.apply_plan(bundle.model, plan, bundle.example_input)
    preview = pe.preview_plan(bundle.model, plan, bundle.example_input)
    assert result.preview is not None
    pd.testing.assert_frame_equal(result.preview.table, preview.table)
    assert result.preview.scores.keys() == preview.scores.keys()
    for layer, scores in preview.scores.items():
        assert bool((result.preview.scores[layer] == scores).all())
