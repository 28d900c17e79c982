"""Typed statuses: every report and preview says per layer what happened (`status`) and why a
layer cannot be pruned (`blocked_by`); the `note` beside them is for people and decides nothing."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from model_zoo import ZOO_BY_NAME
from torch import nn

import prune_engine as pe
from prune_engine import pruning, structured
from prune_engine.report import PREVIEW_COLUMNS, REPORT_COLUMNS
from prune_engine.status import Blocked
from sample_models import load_sample
from tests.engine.test_heads import PlainAttention

BLOCKED, PRUNED, UNCHANGED = pe.LayerStatus.BLOCKED, pe.LayerStatus.PRUNED, pe.LayerStatus.UNCHANGED


class AttentionNet(nn.Module):
    """One attention layer and a classifier on the mean token."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attn, self.head = PlainAttention(width=16, heads=4), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(x).mean(dim=1))


class OddInputs(nn.Module):
    """A Linear whose input size (6) is not a multiple of 4, between two that are."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 6), nn.Linear(6, 8), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _rows(table, column: str) -> dict[str, object]:
    return dict(zip(table["layer"], table[column], strict=True))


def _preview(entry_name: str, plan: pe.PruningPlan):
    entry = ZOO_BY_NAME[entry_name]
    return pe.preview_plan(entry.build(), plan, entry.example_input()).table


def test_status_and_blocked_by_are_enum_members_and_none() -> None:
    entry = ZOO_BY_NAME["mlp"]
    plan = pe.PruningPlan(granularity="channel", ratios={"fc1": 0.5})
    for table in (
        pe.preview_plan(entry.build(), plan, entry.example_input()).table,
        pe.apply_plan(entry.build(), plan, entry.example_input()).report,
    ):
        assert all(isinstance(status, pe.LayerStatus) for status in table["status"])
        assert all(by is None or isinstance(by, pe.BlockedBy) for by in table["blocked_by"])
        assert set(table["blocked_by"][table["status"] != BLOCKED]) == {None}


def test_the_output_layer_is_blocked_by_output_layer_whether_targeted_or_not() -> None:
    for plan in (
        pe.PruningPlan(granularity="channel", ratios={"fc1": 0.5}),
        pe.PruningPlan(granularity="channel", global_ratio=0.5),
    ):
        table = _preview("mlp", plan)
        assert _rows(table, "status")["head"] == BLOCKED
        assert _rows(table, "blocked_by")["head"] == pe.BlockedBy.OUTPUT_LAYER


def test_a_pruned_and_an_unchanged_layer_in_preview_and_report() -> None:
    entry = ZOO_BY_NAME["mlp"]
    plan = pe.PruningPlan(ratios={"fc1": 0.5})
    preview = pe.preview_plan(entry.build(), plan, entry.example_input()).table
    report = pe.apply_plan(entry.build(), plan, entry.example_input()).report
    for table in (preview, report):
        statuses = _rows(table, "status")
        assert statuses["fc1"] == PRUNED
        assert statuses["fc2"] == UNCHANGED and statuses["head"] == UNCHANGED, "unstructured blocks nothing"


def test_coupled_residual_layers_share_one_status() -> None:
    entry = ZOO_BY_NAME["residual_cnn"]
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3)
    preview = pe.preview_plan(entry.build(), plan, entry.example_input()).table
    coupled = [members for _, members in preview.groupby("group") if len(members) > 1]
    assert coupled, "the residual additions couple layers"
    for members in coupled:
        assert members["status"].nunique() == 1 and members["assigned_ratio"].nunique() == 1
    report = pe.apply_plan(entry.build(), plan, entry.example_input()).report.set_index("layer")
    assert report.loc["fc", "blocked_by"] == pe.BlockedBy.OUTPUT_LAYER
    assert set(report["status"]) == {PRUNED, BLOCKED}


@pytest.mark.parametrize(
    ("entry_name", "layer", "cause"),
    [
        ("transformer", "encoder.layers.0.linear2", pe.BlockedBy.PACKED_ATTENTION),
        ("transformer", "encoder.layers.0.self_attn.out_proj", pe.BlockedBy.NOT_REACHED),
        ("tied_embedding", "hidden", pe.BlockedBy.TIED_WEIGHTS),
        ("lstm", "head", pe.BlockedBy.OUTPUT_LAYER),
    ],
)
def test_channel_preview_names_why_a_layer_is_blocked(entry_name: str, layer: str, cause: pe.BlockedBy) -> None:
    table = _preview(entry_name, pe.PruningPlan(granularity="channel", global_ratio=0.3))
    assert _rows(table, "status")[layer] == BLOCKED
    assert _rows(table, "blocked_by")[layer] == cause


def test_attention_projections_are_blocked_for_channels_and_prunable_for_heads() -> None:
    model, example = AttentionNet(), torch.randn(2, 5, 16)
    channel = pe.preview_plan(model, pe.PruningPlan(granularity="channel", global_ratio=0.3), example).table
    assert _rows(channel, "blocked_by")["attn.q_proj"] == pe.BlockedBy.ATTENTION_PROJECTION
    heads = pe.apply_plan(model, pe.PruningPlan(granularity="head", ratios={"attn": 0.5}), example).report
    statuses, causes = _rows(heads, "status"), _rows(heads, "blocked_by")
    assert all(statuses[name] == PRUNED for name in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj"))
    assert statuses["head"] == BLOCKED and causes["head"] == pe.BlockedBy.NOT_ATTENTION


def test_nm_blocks_layers_whose_input_size_is_not_a_multiple_of_m() -> None:
    model, example = OddInputs(), torch.randn(2, 8)
    for plan in (pe.PruningPlan(granularity="n:m"), pe.PruningPlan(granularity="n:m", ratios={"fc1": 0.5})):
        result = pe.apply_plan(model, plan, example)
        statuses, causes = _rows(result.report, "status"), _rows(result.report, "blocked_by")
        assert statuses["fc2"] == BLOCKED and causes["fc2"] == pe.BlockedBy.NM_SHAPE
        assert statuses["fc1"] == PRUNED
    assert statuses["fc3"] == UNCHANGED, "an untargeted layer of the right shape is only left alone"


def _reworded(sentence: str):
    """`ChannelGraph._blocked` with every cause kept and every sentence replaced by `sentence`."""
    original = structured.ChannelGraph._blocked

    def blocked(self, group, units):
        found = original(self, group, units)
        return None if found is None else Blocked(found.by, sentence)

    return blocked


def test_an_explicit_ratio_is_refused_by_the_typed_cause_not_by_the_note(monkeypatch) -> None:
    """Rewording the sentences changes no behaviour: the error type follows `blocked_by`."""
    monkeypatch.setattr(pruning, "_scored_groups", OrderedDict())  # groups kept from other tests carry the old words
    monkeypatch.setattr(structured.ChannelGraph, "_blocked", _reworded("a sentence that names no cause"))
    entry = ZOO_BY_NAME["mlp"]
    with pytest.raises(pe.InvalidPlanError, match="a sentence that names no cause"):
        pe.apply_plan(entry.build(), pe.PruningPlan(granularity="channel", ratios={"head": 0.5}), entry.example_input())
    monkeypatch.setattr(structured.ChannelGraph, "_blocked", _reworded("the model's output has a single channel"))
    pruning._scored_groups.clear()
    tied = ZOO_BY_NAME["tied_embedding"]
    with pytest.raises(pe.UnsupportedModelError, match="model's output has a single channel"):
        pe.apply_plan(tied.build(), pe.PruningPlan(granularity="channel", ratios={"hidden": 0.5}), tied.example_input())


def test_preview_and_report_columns_are_the_published_schemas() -> None:
    entry = ZOO_BY_NAME["plain_cnn"]
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3)
    assert tuple(pe.preview_plan(entry.build(), plan, entry.example_input()).table.columns) == PREVIEW_COLUMNS
    assert tuple(pe.apply_plan(entry.build(), plan, entry.example_input()).report.columns) == REPORT_COLUMNS


@pytest.mark.parametrize("granularity", ["unstructured", "channel"])
def test_every_way_of_making_a_pruned_model_gives_one_report_schema(granularity: str) -> None:
    bundle = load_sample("digits_mlp")
    plan = pe.PruningPlan(granularity=granularity, global_ratio=0.3)
    applied = pe.apply_plan(bundle.model, plan, bundle.example_input)
    train, held_out = bundle.train_data, bundle.eval_data
    stepped = pe.iterative_prune(bundle.model, plan, train, held_out, steps=2, epochs_per_step=0)
    tuned = pe.fine_tune(applied.model, train, epochs=0)
    rebuilt = pe.layer_report(bundle.model, tuned, plan)
    for report in (applied.report, stepped.report, rebuilt):
        assert tuple(report.columns) == REPORT_COLUMNS
    assert _rows(stepped.report, "status") == _rows(applied.report, "status")
    assert _rows(stepped.report, "blocked_by") == _rows(applied.report, "blocked_by")
    applied_status = _rows(applied.report, "status")
    for layer, status in _rows(rebuilt, "status").items():
        assert status in (PRUNED, UNCHANGED), "without a decision, status comes from the counts"
        assert applied_status[layer] in (status, BLOCKED)
    assert all(math.isnan(value) for value in rebuilt["assigned_ratio"]), "no ranking made a fine-tuned model"
    assert rebuilt["nonzero_after"].tolist() == applied.report["nonzero_after"].tolist()
