"""apply_plan carries the preview of the same decision, so a caller that prunes live decides once."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch

import prune_engine as pe
from prune_engine import pruning
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


@pytest.mark.parametrize("sample", ["digits_cnn", "digits_resnet"])
def test_channel_groups_kept_between_steps_prune_exactly_as_a_fresh_decision(sample: str) -> None:
    """A slider step on the same model reuses the scored channel groups: every ratio must give the same
    pruned weights and report as deciding from scratch."""
    bundle = load_sample(sample)
    plans = [pe.PruningPlan(granularity="channel", scope=scope, global_ratio=ratio)
             for scope in ("layer", "global") for ratio in (0.2, 0.37, 0.6)]  # fmt: skip
    kept = [pe.apply_plan(bundle.model, plan, bundle.example_input) for plan in plans]
    assert pruning._scored_groups, "the groups were kept"
    for plan, result in zip(plans, kept, strict=True):
        pruning._scored_groups.clear()
        fresh = pe.apply_plan(bundle.model, plan, bundle.example_input)
        assert result.model.state_dict().keys() == fresh.model.state_dict().keys()
        for name, tensor in fresh.model.state_dict().items():
            assert torch.equal(result.model.state_dict()[name], tensor), name
        pd.testing.assert_frame_equal(result.report, fresh.report)


def test_kept_channel_groups_follow_the_weights() -> None:
    """Another model's groups (or the same model's after its weights change) are never reused."""
    bundle = load_sample("digits_cnn")
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.5, ratios={"conv1": 0.5})
    before = pe.apply_plan(bundle.model, plan, bundle.example_input)
    changed = copy.deepcopy(bundle.model)
    with torch.no_grad():
        changed.conv1.weight[:16] *= 100  # the first 16 filters become the strongest
    after = pe.apply_plan(changed, plan, bundle.example_input)
    pruning._scored_groups.clear()
    fresh = pe.apply_plan(changed, plan, bundle.example_input)
    assert torch.equal(after.model.conv1.weight, fresh.model.conv1.weight)
    assert torch.equal(after.model.conv1.weight, changed.conv1.weight[:16]), "the strengthened filters stay"
    assert before.model.conv1.weight.shape == after.model.conv1.weight.shape == (16, 1, 3, 3)
