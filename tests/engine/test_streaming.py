"""Ranking without sorting or concatenating every score. Global: on a mid-size transformer the
streamed threshold removes the same weights as the exact ranking (the lowest scores, ties in
layer and index order), never holds more than its window of scores at once, and apply_plan
uses it above `STREAM_ABOVE`, scoring a layerwise criterion one layer at a time. Per layer:
one `kthvalue` threshold zeroes what `prune.l1_unstructured` does. Masks are applied and
non-finite weights counted in blocks."""

from __future__ import annotations

import functools
import importlib

import pytest
import torch
from model_zoo import ZOO_BY_NAME

import prune_engine as pe
from prune_engine import masks, pruning, report
from prune_engine.masks import layer_mask, removed_share, row_mask
from sample_models import load_sample
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
    assert all(torch.equal(exact[name], streamed[name]) for name in scores), "ties go in the same order"
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
    assert all(torch.equal(zeros[name], pe.get_layer(exact, name).weight == 0) for name in layers)
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


def tied_magnitude_mlp() -> torch.nn.Module:
    """The zoo's MLP with every weight one of ±0.05, ±0.1, ±0.2, ±0.4: thousands of ties, no zeros."""
    model = ZOO_BY_NAME["mlp"].build()
    generator = torch.Generator().manual_seed(5)
    levels = torch.tensor([0.05, 0.1, 0.2, 0.4])
    with torch.no_grad():
        for layer in pe.prunable_layers(model):
            weight = pe.get_layer(model, layer.name).weight
            picks = levels[torch.randint(len(levels), weight.shape, generator=generator)]
            weight.copy_(picks * torch.where(torch.rand(weight.shape, generator=generator) < 0.5, -1.0, 1.0))
    return model


def lowest_magnitudes_first(model: torch.nn.Module, count: int) -> dict[str, torch.Tensor]:
    """Brute force: the `count` smallest |w| across the prunable layers, ties taken in layer and index order."""
    names = [layer.name for layer in pe.prunable_layers(model)]
    weights = [pe.get_layer(model, name).weight.detach() for name in names]
    order = torch.sort(torch.cat([weight.abs().reshape(-1) for weight in weights]), stable=True).indices
    removed = torch.zeros(order.numel(), dtype=torch.bool)
    removed[order[:count]] = True
    parts = removed.split([weight.numel() for weight in weights])
    return {name: part.reshape(weight.shape) for name, part, weight in zip(names, parts, weights, strict=True)}


@pytest.fixture
def streamed_layer_by_layer(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Make apply_plan stream every global ranking with a tiny histogram window, and record the layers
    each importance call scores."""
    monkeypatch.setattr(pruning, "STREAM_ABOVE", 100)
    monkeypatch.setattr(
        pruning, "streamed_global_masks", functools.partial(masks.streamed_global_masks, bins=4, exact_limit=64)
    )
    scoring = importlib.import_module("prune_engine.importance")
    requested: list[list[str]] = []
    original = scoring.importance

    def recorded(model, criterion, data=None, level="channel", layers=None, *args, **kwargs):
        requested.append(list(layers or []))
        return original(model, criterion, data, level, layers, *args, **kwargs)

    monkeypatch.setattr(scoring, "importance", recorded)
    return requested


@pytest.mark.parametrize("ratio", [0.3, 0.45, 0.8])
@pytest.mark.parametrize("streamed", [False, True], ids=["concatenated", "streamed"])
def test_global_unstructured_removes_the_lowest_magnitudes_first_ties_in_layer_order(
    ratio: float, streamed: bool, request: pytest.FixtureRequest
) -> None:
    requested = request.getfixturevalue("streamed_layer_by_layer") if streamed else None
    model = tied_magnitude_mlp()
    total = sum(pe.get_layer(model, layer.name).weight.numel() for layer in pe.prunable_layers(model))
    expected = lowest_magnitudes_first(model, round(ratio * total))
    threshold = max(
        float(pe.get_layer(model, name).weight.detach().abs()[removed].max()) for name, removed in expected.items()
    )
    kept_at_threshold = sum(
        int((pe.get_layer(model, name).weight.abs()[~removed] == threshold).sum()) for name, removed in expected.items()
    )
    assert kept_at_threshold > 0, "the threshold falls inside a run of equal magnitudes"
    pruned = pe.apply_plan(model, pe.PruningPlan(scope="global", global_ratio=ratio), torch.randn(1, 16)).model
    for name, removed in expected.items():
        assert torch.equal(pe.get_layer(pruned, name).weight == 0, removed), name
    if requested is not None:
        assert requested and all(len(layers) == 1 for layers in requested), "scores are computed one layer at a time"


@pytest.mark.parametrize("criterion", ["l2", "random"])
def test_layerwise_criteria_prune_the_same_weights_when_streamed(
    criterion: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ZOO_BY_NAME["residual_cnn"].build()
    plan = pe.PruningPlan(criterion=criterion, scope="global", global_ratio=0.6, seed=4)
    example = torch.randn(1, 3, 8, 8)
    exact = pe.apply_plan(model, plan, example).model
    monkeypatch.setattr(pruning, "STREAM_ABOVE", 100)
    streamed = pe.apply_plan(model, plan, example).model
    for layer in pe.prunable_layers(model):
        assert torch.equal(pe.get_layer(streamed, layer.name).weight, pe.get_layer(exact, layer.name).weight)


def test_streamed_scores_in_results_are_those_of_the_unpruned_weights(
    streamed_layer_by_layer: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tied_magnitude_mlp()
    plan = pe.PruningPlan(scope="global", global_ratio=0.5)
    expected = pe.importance(model, "l1", level="weight")
    kept = pe.apply_plan(model, plan, torch.randn(1, 16)).preview.scores
    previewed = pe.preview_plan(model, plan, torch.randn(1, 16)).scores
    for scores in (kept, previewed):
        assert scores.keys() == expected.keys()
        assert all(torch.equal(scores[name], expected[name]) for name in expected)
    monkeypatch.setattr(pruning, "RESULT_SCORES_MAX", 1_000)
    assert pe.apply_plan(model, plan, torch.randn(1, 16)).preview.scores == {}, "1,400 scores are above the limit"


def test_masks_are_applied_in_blocks_as_prune_multiplies_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masks, "MASK_BLOCK", 7)
    weight = torch.randn(12, 9).t()
    weight[0, 0], weight[3, 5], weight[8, 11] = float("nan"), float("inf"), float("-inf")
    keep = torch.rand(weight.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    keep[0, 0] = keep[3, 5] = False
    expected = weight * keep
    masks.apply_mask(weight, keep)
    assert torch.equal(weight.isnan(), expected.isnan()), "a removed NaN or inf stays NaN, as with prune"
    assert torch.equal(weight.nan_to_num(), expected.nan_to_num())


def test_report_counts_non_finite_weights_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "COUNT_BLOCK", 5)
    layer = torch.nn.Linear(6, 4)
    with torch.no_grad():
        layer.weight[0, 1], layer.weight[2, 3], layer.weight[3, 5] = float("nan"), float("inf"), float("-inf")
    assert report.layer_figures(torch.nn.Sequential(layer), "0").nonfinite == 3


@pytest.mark.parametrize(
    "plan",
    [
        pe.PruningPlan(scope="global", global_ratio=0.5, ratios={"head": 0.1}),
        pe.PruningPlan(scope="global", global_ratio=0.5, min_ratio=0.3, max_ratio=0.6),
    ],
    ids=["own-ratio", "bounded"],
)
def test_layers_outside_the_plain_ranking_prune_the_same_weights_when_scored_layer_by_layer(
    plan: pe.PruningPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tied_magnitude_mlp()
    exact = pe.apply_plan(model, plan, torch.randn(1, 16))
    monkeypatch.setattr(pruning, "STREAM_ABOVE", 100)
    streamed = pe.apply_plan(model, plan, torch.randn(1, 16))
    for layer in pe.prunable_layers(model):
        assert torch.equal(
            pe.get_layer(streamed.model, layer.name).weight, pe.get_layer(exact.model, layer.name).weight
        )
    assert streamed.report["assigned_ratio"].tolist() == exact.report["assigned_ratio"].tolist()


@pytest.mark.parametrize("by_row", [False, True])
def test_the_removed_share_a_preview_reports_is_the_one_the_mask_removes(by_row: bool) -> None:
    """A preview takes each own-ratio layer's share from the counts, without building its mask."""
    generator = torch.Generator().manual_seed(0)
    for shape in [(3, 7), (10, 1), (64, 33), (5, 4, 3, 3), (1, 1)]:
        scores = torch.rand(shape, generator=generator)
        for ratio in (0.0, 0.01, 0.3, 0.5, 0.77, 0.99):
            mask = (row_mask if by_row else layer_mask)(scores, ratio)
            removed = 1.0 - int(mask.count_nonzero()) / mask.numel()
            assert removed_share(scores.shape, ratio, by_row) == pytest.approx(removed), (shape, ratio)


def test_a_preview_builds_no_mask_for_a_layer_with_its_own_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = load_sample("digits_mlp")
    plan = pe.PruningPlan(global_ratio=0.4)

    def no_mask(*args, **kwargs):
        raise AssertionError("a preview of own-ratio layers needs no mask")

    monkeypatch.setattr(pruning, "layer_mask", no_mask)
    preview = pe.preview_plan(bundle.model, plan, bundle.example_input)
    monkeypatch.undo()
    applied = pe.apply_plan(bundle.model, plan, bundle.example_input)
    assert preview.table.set_index("layer")["assigned_ratio"].to_dict() == pytest.approx(
        applied.report.set_index("layer")["achieved_ratio"].to_dict()
    )
