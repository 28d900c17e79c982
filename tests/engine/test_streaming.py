"""Ranking without sorting or concatenating every score. Global: on a mid-size transformer the
streamed threshold removes the same count as the exact ranking, differs from it in at most
0.1 % of weights, never holds more than its window of scores at once, and apply_plan uses it
above `STREAM_ABOVE`. Per layer: one `kthvalue` threshold zeroes what `prune.l1_unstructured` does."""

from __future__ import annotations

import pytest
import torch

import prune_engine as pe
from prune_engine import masks, pruning
from sample_models.large import GPT2Shaped, init_gpt2, materialise

EXACT_LIMIT = 1 << 16
"""A window far smaller than the model, so the histogram refinement has to narrow it several times."""


@pytest.fixture(scope="module")
def mid_size_model() -> torch.nn.Module:
    """A 3.4 M-parameter GPT-2-shaped model (tied 4,096-token head, 3 blocks of width 256)."""
    return materialise(
        lambda: GPT2Shaped(vocab=4096, context=64, hidden=256, layers=3, num_heads=4, inner=1024), init_gpt2
    )


@pytest.fixture(scope="module")
def scores(mid_size_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return pe.importance(mid_size_model, "l1", level="weight")


def removed(keep_masks: dict[str, torch.Tensor]) -> int:
    return sum(int((~mask.bool()).sum()) for mask in keep_masks.values())


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_streamed_threshold_matches_the_exact_ranking_on_a_mid_size_model(
    scores: dict[str, torch.Tensor], ratio: float
) -> None:
    total = sum(layer.numel() for layer in scores.values())
    assert total > 3_000_000
    exact = masks.global_masks(scores, ratio)
    streamed = masks.streamed_global_masks(scores, ratio, exact_limit=EXACT_LIMIT)
    assert removed(streamed) == removed(exact) == round(ratio * total)
    differing = sum(int((exact[name].bool() != streamed[name]).sum()) for name in scores)
    assert differing <= 0.001 * total
    threshold = torch.cat([layer.reshape(-1) for layer in scores.values()]).kthvalue(round(ratio * total)).values
    kept_low = min(float(layer[streamed[name]].min()) for name, layer in scores.items())
    dropped_high = max(float(layer[~streamed[name]].max()) for name, layer in scores.items())
    assert dropped_high == float(threshold) <= kept_low


def test_streamed_ranking_never_concatenates_more_than_its_window(
    scores: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    largest = []
    concatenate = torch.cat

    def watched(tensors, *args, **kwargs):
        result = concatenate(tensors, *args, **kwargs)
        largest.append(result.numel())
        return result

    monkeypatch.setattr(torch, "cat", watched)
    masks.streamed_global_masks(scores, 0.5, exact_limit=EXACT_LIMIT)
    assert largest and max(largest) <= EXACT_LIMIT


def test_apply_plan_streams_the_global_ranking_above_the_limit(
    mid_size_model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = pe.PruningPlan(scope="global", global_ratio=0.5)
    tokens = torch.randint(4096, (1, 16))
    exact = pe.apply_plan(mid_size_model, plan, tokens).model
    monkeypatch.setattr(pruning, "STREAM_ABOVE", 1_000_000)
    calls = []
    original = masks.streamed_global_masks
    monkeypatch.setattr(pruning, "streamed_global_masks", lambda *a, **k: calls.append(1) or original(*a, **k))
    streamed = pe.apply_plan(mid_size_model, plan, tokens).model
    assert calls, "the streamed ranking was used"
    layers = [layer.name for layer in pe.prunable_layers(mid_size_model)]
    total = sum(pe.get_layer(mid_size_model, name).weight.numel() for name in layers)
    zeros = {name: pe.get_layer(streamed, name).weight == 0 for name in layers}
    assert sum(int(mask.sum()) for mask in zeros.values()) == round(0.5 * total)
    differing = sum(int((zeros[name] != (pe.get_layer(exact, name).weight == 0)).sum()) for name in layers)
    assert differing <= 0.001 * total
    assert streamed.lm_head.weight is streamed.wte.weight, "the tied head stays tied and is pruned once"
    assert not torch.equal(mid_size_model.lm_head.weight == 0, streamed.lm_head.weight == 0), "original untouched"


@pytest.mark.parametrize("ratio", [0.0, 0.37, 1.0])
def test_layer_masks_by_threshold_zero_what_prune_l1_unstructured_zeroes(ratio: float) -> None:
    layer = torch.nn.Linear(300, 200)
    expected = torch.nn.utils.prune.L1Unstructured(amount=ratio).compute_mask(layer.weight, torch.ones(200, 300))
    keep = masks.layer_mask(layer.weight.detach().abs(), ratio)
    assert keep.dtype == torch.bool
    assert torch.equal(keep, expected.bool())


def test_count_masks_drop_exactly_the_count_when_scores_tie() -> None:
    scores = torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.5, 0.0, 2.0, 0.5]])
    keep = masks.count_mask(scores, 5)
    assert keep.tolist() == [[False, False, False, False], [True, False, True, True]], "first ties in index order go"
