"""Plans as the app edits and names them: one description that tells every result-changing field apart."""

from __future__ import annotations

import dataclasses
import itertools

import prune_engine as pe
from sample_models import load_sample
from workbench import plans


def test_the_description_tells_apart_every_field_that_changes_the_result() -> None:
    base = pe.PruningPlan(granularity="channel", criterion="random", global_ratio=0.3)
    variants = [
        base,
        dataclasses.replace(base, global_ratio=0.5),
        dataclasses.replace(base, scope="global"),
        dataclasses.replace(base, criterion="l1"),
        dataclasses.replace(base, granularity="unstructured"),
        dataclasses.replace(base, ratios={"conv1": 0.2}),
        dataclasses.replace(base, round_to=8),
        dataclasses.replace(base, recalibrate_bn=True),
        dataclasses.replace(base, seed=1),
        dataclasses.replace(base, scope="global", min_ratio=0.1),
        dataclasses.replace(base, ignored_layers=["conv1"]),
    ]
    descriptions = [plans.describe_plan(plan) for plan in variants]
    for (first, one), (second, other) in itertools.combinations(zip(variants, descriptions, strict=True), 2):
        assert one != other, f"{first} and {second} read the same: {one}"


def test_the_description_reads_as_words() -> None:
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3, recalibrate_bn=True, round_to=8)
    assert plans.describe_plan(plan) == (
        "whole channels · Magnitude (L1) · 30 % in every layer · kept counts rounded to 8 · BatchNorm re-estimated"
    )
    nm = pe.PruningPlan(granularity="n:m", n=2, m=4, ratios={"fc3": 0.0})
    assert plans.describe_plan(nm) == "2:4 pattern · Magnitude (L1) · 1 layer(s) left dense"


def test_a_stored_plan_this_version_cannot_read_is_described_as_such() -> None:
    assert plans.describe_stored_plan("{not json") == "(a plan this version cannot read)"
    assert plans.batchnorm_policy(plans.stored_plan("{not json")) is None
    text = pe.PruningPlan(recalibrate_bn=True).to_json()
    assert plans.batchnorm_policy(plans.stored_plan(text)) == "re-estimated"
    assert plans.batchnorm_policy(pe.PruningPlan()) == "not re-estimated"


def test_a_result_whose_layers_are_all_set_alone_is_described_without_the_global_ratio() -> None:
    bundle = load_sample("digits_cnn")
    locked = {"conv1": 0.2, "conv2": 0.5, "conv3": 0.1}
    result = pe.apply_plan(
        bundle.model, pe.PruningPlan(granularity="channel", global_ratio=0.36, ratios=locked), bundle.example_input
    )
    assert not plans.follows_global(result.plan, result.report), "fc cannot lose channels; the others are locked"
    assert plans.describe_result(result) == "whole channels · Magnitude (L1) · conv1 20 %, conv2 50 %, conv3 10 %"
    partly = pe.apply_plan(
        bundle.model,
        pe.PruningPlan(granularity="channel", global_ratio=0.36, ratios={"conv1": 0.2}),
        bundle.example_input,
    )
    assert plans.describe_result(partly) == "whole channels · Magnitude (L1) · 36 % in every other layer · conv1 20 %"
