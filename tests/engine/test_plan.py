"""PruningPlan: validation with clear errors, and exact JSON round trips."""

from __future__ import annotations

import json

import pytest

import prune_engine as pe


def test_plan_round_trips_through_json_exactly() -> None:
    plan = pe.PruningPlan(
        granularity="channel",
        criterion="l2",
        scope="global",
        ratios={"layer1.conv1": 0.25, "fc": 0.0, "features.3": 0.1 + 0.2},
        global_ratio=0.4,
        min_ratio=0.05,
        max_ratio=0.9,
        ignored_layers=["stem.0"],
        round_to=8,
        seed=7,
    )
    again = pe.PruningPlan.from_json(plan.to_json())
    assert again == plan
    assert again.ratios["features.3"] == 0.1 + 0.2
    assert json.loads(plan.to_json())["ratios"] == {"fc": 0.0, "features.3": 0.30000000000000004, "layer1.conv1": 0.25}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"granularity": "blocks"}, "Unknown granularity"),
        ({"scope": "model"}, "Unknown scope"),
        ({"criterion": "vibes"}, "Unknown criterion"),
        ({"global_ratio": 1.0}, "below 1"),
        ({"global_ratio": -0.1}, "at least 0"),
        ({"global_ratio": float("nan")}, "number in"),
        ({"ratios": {"fc": 1.2}}, "'fc'"),
        ({"ratios": {"fc": "half"}}, "number in"),
        ({"granularity": "n:m", "n": 4, "m": 4}, "0 < n < m"),
        ({"min_ratio": 0.6, "max_ratio": 0.5}, "above the maximum"),
        ({"round_to": 0}, "round_to"),
        ({"seed": 1.5}, "whole number"),
    ],
)
def test_invalid_settings_raise_invalid_plan_error_with_a_sentence(settings: dict, message: str) -> None:
    with pytest.raises(pe.InvalidPlanError, match=message):
        pe.PruningPlan(**settings)


def test_from_json_rejects_bad_text_unknown_keys_and_versions() -> None:
    with pytest.raises(pe.InvalidPlanError, match="not valid JSON"):
        pe.PruningPlan.from_json("{granularity: channel")
    with pytest.raises(pe.InvalidPlanError, match="unknown settings: colour"):
        pe.PruningPlan.from_json('{"colour": "red"}')
    with pytest.raises(pe.InvalidPlanError, match="version 9"):
        pe.PruningPlan.from_json('{"version": 9}')
    with pytest.raises(pe.InvalidPlanError, match="JSON object"):
        pe.PruningPlan.from_json("[1, 2]")


def test_target_ratio_prefers_a_layer_entry_then_the_global_ratio() -> None:
    plan = pe.PruningPlan(ratios={"a": 0.2}, global_ratio=0.5, ignored_layers=["c"])
    assert plan.target_ratio("a") == 0.2
    assert plan.target_ratio("b") == 0.5
    assert plan.target_ratio("c") == 0.0
    assert not plan.is_global_ranked("b"), "layer scope ranks each layer on its own"
    global_plan = pe.PruningPlan(scope="global", ratios={"a": 0.2}, global_ratio=0.5)
    assert global_plan.is_global_ranked("b") and not global_plan.is_global_ranked("a")


def test_nm_plan_without_ratios_targets_every_layer() -> None:
    plan = pe.PruningPlan(granularity="n:m", n=1, m=4)
    assert plan.target_ratio("anything") == 0.75
    only_fc = pe.PruningPlan(granularity="n:m", ratios={"fc": 0.5})
    assert only_fc.target_ratio("fc") == 0.5 and only_fc.target_ratio("other") == 0.0


def test_unknown_layers_are_reported_when_checked_against_a_model() -> None:
    plan = pe.PruningPlan(ratios={"encoder.fc9": 0.3})
    with pytest.raises(pe.InvalidPlanError, match=r"encoder\.fc9"):
        plan.check_layers(["fc1", "fc2"])
