"""apply_plan across granularities, scopes and architectures."""

from __future__ import annotations

import copy
import gc
import hashlib
import io

import pytest
import torch
from model_zoo import ZOO, ZOO_BY_NAME
from torch import nn
from torch.nn.utils import prune

import prune_engine as pe
from prune_engine import masks, pruning

GRANULARITIES = ["unstructured", "channel", "n:m"]
SCOPES = ["layer", "global"]


def state_hash(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict(keep_vars=False).items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()]
    digest.update(repr(hooks).encode())
    digest.update(repr([m.training for m in model.modules()]).encode())
    return digest.hexdigest()


def weight_zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {layer.name: pe.get_layer(model, layer.name).weight == 0 for layer in pe.prunable_layers(model)}


@pytest.mark.parametrize("entry", ZOO, ids=lambda entry: entry.name)
@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("scope", SCOPES)
def test_every_architecture_prunes_to_a_plain_working_copy(entry, granularity: str, scope: str) -> None:
    model, example = entry.build(), entry.example_input()
    before = state_hash(model)
    expected = model(example)
    plan = pe.PruningPlan(granularity=granularity, scope=scope, global_ratio=0.5)

    result = pe.apply_plan(model, plan, example)

    assert state_hash(model) == before, "the model passed in must not change"
    assert result.model is not model
    output = result.model(example)
    assert output.shape == expected.shape and torch.isfinite(output).all()
    state = result.model.state_dict()
    assert not [key for key in state if key.endswith(("_orig", "_mask"))]
    assert all(not m._forward_pre_hooks for m in result.model.modules())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    reloaded = copy.deepcopy(result.model)
    reloaded.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    torch.testing.assert_close(reloaded(example), output)
    summary, original = pe.model_summary(result.model, example), pe.model_summary(model, example)
    if granularity == "channel" and entry.channel_prunable:
        assert summary["params"] < original["params"]
    if granularity == "unstructured":
        assert summary["nonzero_params"] < original["nonzero_params"]
        assert summary["params"] == original["params"]
    assert set(result.report["layer"]) == {layer.name for layer in pe.prunable_layers(model)}


@pytest.mark.parametrize("entry", ZOO, ids=lambda entry: entry.name)
def test_layer_scope_l1_matches_torch_l1_unstructured(entry) -> None:
    model = entry.build()
    ratios = {layer.name: 0.1 + 0.8 * (i % 3) / 2 for i, layer in enumerate(pe.prunable_layers(model))}
    result = pe.apply_plan(model, pe.PruningPlan(ratios=ratios), entry.example_input())
    reference = copy.deepcopy(model)
    seen = set()
    for name, ratio in ratios.items():
        module = pe.get_layer(reference, name)
        if id(module.weight) in seen:
            continue
        seen.add(id(module.weight))
        prune.l1_unstructured(module, "weight", amount=ratio)
        prune.remove(module, "weight")
    for name, mask in weight_zero_masks(result.model).items():
        assert torch.equal(mask, pe.get_layer(reference, name).weight == 0), name


@pytest.mark.parametrize("entry", ZOO, ids=lambda entry: entry.name)
def test_global_scope_l1_matches_torch_global_unstructured(entry) -> None:
    model = entry.build()
    result = pe.apply_plan(model, pe.PruningPlan(scope="global", global_ratio=0.6), entry.example_input())
    reference = copy.deepcopy(model)
    targets, seen = [], set()
    for layer in pe.prunable_layers(reference):
        module = pe.get_layer(reference, layer.name)
        if id(module.weight) not in seen:
            seen.add(id(module.weight))
            targets.append((module, "weight"))
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=0.6)
    for module, _ in targets:
        prune.remove(module, "weight")
    for name, mask in weight_zero_masks(result.model).items():
        assert torch.equal(mask, pe.get_layer(reference, name).weight == 0), name
    ranked = result.report.set_index("layer")["assigned_ratio"]
    assert ranked.nunique() > 1, "a global ranking gives layers different ratios"


def test_global_unstructured_keeps_each_layer_within_its_bounds() -> None:
    model = ZOO_BY_NAME["residual_cnn"].build()
    plan = pe.PruningPlan(scope="global", global_ratio=0.5, min_ratio=0.2, max_ratio=0.7)
    report = pe.apply_plan(model, plan, torch.randn(1, 3, 8, 8)).report
    rounding = 1 / report["weights_before"]
    assert (report["achieved_ratio"] >= 0.2 - rounding).all() and (report["achieved_ratio"] <= 0.7 + rounding).all()
    weights = report["weights_before"]
    overall = 1 - report["nonzero_after"].sum() / weights.sum()
    assert overall == pytest.approx(0.5, abs=1e-3)


def test_global_scope_leaves_layers_with_their_own_ratio_out_of_the_ranking() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    plan = pe.PruningPlan(scope="global", global_ratio=0.5, ratios={"head": 0.1})
    report = pe.apply_plan(model, plan, torch.randn(1, 16)).report.set_index("layer")
    assert report.loc["head", "achieved_ratio"] == pytest.approx(round(0.1 * 120) / 120)
    ranked = report.loc[["fc1", "fc2"]]
    assert 1 - ranked["nonzero_after"].sum() / ranked["weights_before"].sum() == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("entry", ZOO, ids=lambda entry: entry.name)
def test_nm_keeps_at_most_n_in_every_m_consecutive_input_weights(entry) -> None:
    model = entry.build()
    result = pe.apply_plan(model, pe.PruningPlan(granularity="n:m", n=2, m=4), entry.example_input())
    blocked_by = dict(zip(result.report["layer"], result.report["blocked_by"], strict=True))
    for layer in pe.prunable_layers(model):
        weight = pe.get_layer(result.model, layer.name).weight.detach()
        if layer.name in result.skipped:
            assert "multiple of m=4" in result.skipped[layer.name]
            assert blocked_by[layer.name] == pe.BlockedBy.NM_SHAPE
            assert torch.equal(weight, pe.get_layer(model, layer.name).weight.detach())
            continue
        groups = (weight.movedim(1, -1) if weight.dim() > 2 else weight).reshape(-1, 4)
        assert ((groups != 0).sum(dim=1) <= 2).all(), layer.name


def test_nm_keeps_the_largest_weights_of_each_group() -> None:
    model = nn.Sequential(nn.Linear(8, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, -0.9, 0.5, 0.2, 3.0, -2.0, 0.0, 1.0]]))
    result = pe.apply_plan(model, pe.PruningPlan(granularity="n:m", n=2, m=4), torch.randn(1, 8))
    kept = result.model[0].weight.detach() != 0
    assert kept.tolist() == [[False, True, True, False, True, True, False, False]]


def test_channel_pruning_keeps_output_shape_on_residual_blocks() -> None:
    model = ZOO_BY_NAME["residual_cnn"].build()
    example = torch.randn(3, 3, 8, 8)
    result = pe.apply_plan(model, pe.PruningPlan(granularity="channel", global_ratio=0.5), example)
    pruned = result.model
    assert pruned(example).shape == (3, 6)
    assert pruned.fc.out_features == 6, "output units are never removed"
    assert pruned.layer2.conv2.out_channels == pruned.layer2.downsample[0].out_channels == pruned.fc.in_features
    assert pruned.layer1.conv2.out_channels == pruned.stem[0].out_channels, "residual partners share one decision"
    assert pruned.layer2.bn2.num_features == pruned.layer2.conv2.out_channels
    report = result.report.set_index("layer")
    assert "coupled with" in report.loc["layer2.downsample.0", "note"]


def test_channel_pruning_handles_depthwise_concat_grouped_and_conv1d() -> None:
    mobile = pe.apply_plan(
        ZOO_BY_NAME["mobilenet_like"].build(), pe.PruningPlan(granularity="channel", global_ratio=0.5),
        torch.randn(1, 3, 8, 8),
    ).model  # fmt: skip
    depthwise = mobile.block1.depthwise[0]
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == mobile.block1.expand[0].out_channels
    assert depthwise.out_channels == 32

    concat = pe.apply_plan(
        ZOO_BY_NAME["two_branch_concat"].build(),
        pe.PruningPlan(granularity="channel", ratios={"branch_a": 0.5, "branch_b": 0.25}),
        torch.randn(1, 3, 8, 8),
    ).model
    assert (concat.branch_a.out_channels, concat.branch_b.out_channels) == (6, 6)
    assert concat.merge.in_channels == 12

    grouped = pe.apply_plan(
        ZOO_BY_NAME["grouped_conv"].build(), pe.PruningPlan(granularity="channel", ratios={"conv1": 0.5}),
        torch.randn(1, 3, 8, 8),
    ).model  # fmt: skip
    assert grouped.conv1.out_channels == grouped.grouped.in_channels == 8
    assert grouped.grouped.weight.shape[1] * grouped.grouped.groups == 8

    conv1d = pe.apply_plan(
        ZOO_BY_NAME["conv1d"].build(), pe.PruningPlan(granularity="channel", global_ratio=0.25),
        torch.randn(1, 2, 20),
    ).model  # fmt: skip
    assert (conv1d.conv1.out_channels, conv1d.bn1.num_features, conv1d.conv2.out_channels) == (12, 12, 18)


def test_channel_pruning_of_zeroed_neurons_leaves_outputs_unchanged() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    dead = [1, 4, 5, 20, 31]
    with torch.no_grad():
        model.fc1.weight[dead] = 0
        model.fc1.bias[dead] = 0
    example = torch.randn(8, 16)
    plan = pe.PruningPlan(granularity="channel", criterion="l1", ratios={"fc1": len(dead) / 32})
    result = pe.apply_plan(model, plan, example)
    assert result.model.fc1.out_features == 27 and result.model.fc2.in_features == 27
    torch.testing.assert_close(result.model(example), model(example))


def test_channel_pruning_never_removes_the_last_channel() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    result = pe.apply_plan(model, pe.PruningPlan(granularity="channel", ratios={"0": 0.99}), torch.randn(1, 4))
    assert result.model[0].out_features == 1
    assert result.report.set_index("layer").loc["0", "channels_after"] == 1


def test_channel_round_to_keeps_multiples() -> None:
    model = ZOO_BY_NAME["plain_cnn"].build()
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3, round_to=8)
    pruned = pe.apply_plan(model, plan, torch.randn(1, 3, 8, 8)).model
    assert pruned.features[0].out_channels % 8 == 0 and pruned.features[3].out_channels % 8 == 0


def test_global_channel_pruning_ranks_across_layers_within_bounds() -> None:
    model = ZOO_BY_NAME["residual_cnn"].build()
    plan = pe.PruningPlan(granularity="channel", scope="global", global_ratio=0.5, min_ratio=0.25, max_ratio=0.625)
    preview = pe.preview_plan(model, plan, torch.randn(1, 3, 8, 8))
    assigned = preview.table.set_index("layer")["assigned_ratio"].drop("fc")
    assert assigned.between(0.25, 0.625).all()
    result = pe.apply_plan(model, plan, torch.randn(1, 3, 8, 8))
    achieved = result.report.set_index("layer")
    torch.testing.assert_close(
        torch.tensor(achieved["achieved_ratio"].drop("fc").to_numpy()), torch.tensor(assigned.to_numpy())
    )


def test_preview_matches_what_apply_does_and_changes_nothing() -> None:
    model = ZOO_BY_NAME["plain_cnn"].build()
    before = state_hash(model)
    plan = pe.PruningPlan(scope="global", global_ratio=0.4)
    preview = pe.preview_plan(model, plan, torch.randn(1, 3, 8, 8))
    assert state_hash(model) == before
    applied = pe.apply_plan(model, plan, torch.randn(1, 3, 8, 8)).report
    torch.testing.assert_close(
        torch.tensor(preview.table["assigned_ratio"].to_numpy()), torch.tensor(applied["achieved_ratio"].to_numpy())
    )
    assert set(preview.scores) == {"features.0", "features.3", "classifier"}


def test_random_criterion_is_reproducible_by_seed() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    example = torch.randn(1, 16)

    def zeros(seed: int) -> dict[str, torch.Tensor]:
        plan = pe.PruningPlan(criterion="random", global_ratio=0.5, seed=seed)
        return weight_zero_masks(pe.apply_plan(model, plan, example).model)

    first, again, other = zeros(1), zeros(1), zeros(2)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_an_explicit_ratio_on_the_output_layer_is_refused_for_channels() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    with pytest.raises(pe.InvalidPlanError, match=r"'head'.*model's output"):
        pe.apply_plan(model, pe.PruningPlan(granularity="channel", ratios={"head": 0.5}), torch.randn(1, 16))


@pytest.mark.parametrize(
    ("entry_name", "layer", "reason"),
    [
        ("transformer", "encoder.layers.0.linear2", "packed query/key/value"),
        ("transformer", "encoder.layers.0.self_attn.out_proj", "fused module"),
        ("tied_embedding", "hidden", "shares its weights"),
    ],
)
def test_channel_pruning_refuses_unsupported_parts_by_name(entry_name: str, layer: str, reason: str) -> None:
    entry = ZOO_BY_NAME[entry_name]
    with pytest.raises(pe.UnsupportedModelError, match=reason) as error:
        pe.apply_plan(entry.build(), pe.PruningPlan(granularity="channel", ratios={layer: 0.5}), entry.example_input())
    assert layer in str(error.value)


def test_channel_pruning_reports_skipped_parts_under_a_global_ratio() -> None:
    entry = ZOO_BY_NAME["transformer"]
    result = pe.apply_plan(
        entry.build(), pe.PruningPlan(granularity="channel", global_ratio=0.5), entry.example_input()
    )
    assert "packed query/key/value" in result.skipped["encoder.layers.1.linear2"]
    assert result.report.set_index("layer").loc["encoder.layers.1.linear2", "blocked_by"] == "packed_attention"
    pruned = result.model.encoder.layers[0]
    assert pruned.linear1.out_features == 32 and pruned.linear2.in_features == 32, "feed-forward layers shrink"
    assert pruned.linear2.out_features == 32 and pruned.self_attn.embed_dim == 32, "model dimension stays"


def test_lstm_inputs_can_shrink_but_never_the_hidden_state() -> None:
    entry = ZOO_BY_NAME["lstm"]
    result = pe.apply_plan(
        entry.build(), pe.PruningPlan(granularity="channel", ratios={"proj": 0.5}), entry.example_input()
    )
    assert result.model.proj.out_features == 8 and result.model.lstm.input_size == 8
    assert result.model.lstm.hidden_size == 32


def test_tied_weights_stay_tied_after_unstructured_pruning() -> None:
    entry = ZOO_BY_NAME["tied_embedding"]
    pruned = pe.apply_plan(entry.build(), pe.PruningPlan(global_ratio=0.5), entry.example_input()).model
    assert pruned.decoder.weight is pruned.embedding.weight
    assert float((pruned.embedding.weight == 0).float().mean()) == pytest.approx(0.5)


def test_unknown_layers_and_models_without_layers_are_refused() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    with pytest.raises(pe.InvalidPlanError, match="fc9"):
        pe.apply_plan(model, pe.PruningPlan(ratios={"fc9": 0.5}), torch.randn(1, 16))
    with pytest.raises(pe.UnsupportedModelError, match="nothing to prune"):
        pe.apply_plan(nn.Sequential(nn.ReLU()), pe.PruningPlan(global_ratio=0.5), torch.randn(1, 4))


def test_models_still_carrying_prune_hooks_get_a_clear_error() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)
    with pytest.raises(pe.UnsupportedModelError, match=r"prune\.remove"):
        pe.apply_plan(model, pe.PruningPlan(global_ratio=0.5), torch.randn(1, 16))


def test_progress_is_reported_until_done() -> None:
    seen = []
    pe.apply_plan(
        ZOO_BY_NAME["mlp"].build(), pe.PruningPlan(global_ratio=0.5), torch.randn(1, 16),
        progress=lambda fraction, message: seen.append((fraction, message)),
    )  # fmt: skip
    assert seen[-1] == (1.0, "Done")
    assert [fraction for fraction, _ in seen] == sorted(fraction for fraction, _ in seen)


@pytest.mark.parametrize("ratio", [0.01, 0.5, 0.97])
def test_streamed_global_threshold_equals_the_exact_ranking(ratio: float) -> None:
    generator = torch.Generator().manual_seed(3)
    scores = {f"layer{i}": torch.randn(20_000 + 7_000 * i, generator=generator).abs() for i in range(6)}
    scores["layer2"][:5_000] = 0.0
    exact = masks.global_masks(scores, ratio)
    streamed = masks.streamed_global_masks(scores, ratio, bins=32, exact_limit=2_000)
    assert sum(int((~keep).sum()) for keep in streamed.values()) == sum(int((m == 0).sum()) for m in exact.values())
    assert all(torch.equal(exact[name], streamed[name]) for name in scores), "equal scores go in the same order"


def test_large_models_rank_globally_by_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ZOO_BY_NAME["residual_cnn"].build()
    exact = pe.apply_plan(model, pe.PruningPlan(scope="global", global_ratio=0.7), torch.randn(1, 3, 8, 8)).model
    monkeypatch.setattr(pruning, "STREAM_ABOVE", 1_000)
    calls = []
    original = masks.streamed_global_masks
    monkeypatch.setattr(pruning, "streamed_global_masks", lambda *a, **k: calls.append(1) or original(*a, **k))
    streamed = pe.apply_plan(model, pe.PruningPlan(scope="global", global_ratio=0.7), torch.randn(1, 3, 8, 8)).model
    assert calls, "the streamed ranking was used"
    for name, mask in weight_zero_masks(streamed).items():
        assert torch.equal(mask, pe.get_layer(exact, name).weight == 0), name


def test_channel_pruning_leaves_no_reference_cycles_behind() -> None:
    """The app turns off Streamlit's per-rerun gc, so an apply or a preview must not leave cyclic garbage
    (Torch-Pruning's graph holds traced autograd nodes) for a rare full collection to find."""
    model = ZOO_BY_NAME["residual_cnn"].build()
    example = ZOO_BY_NAME["residual_cnn"].example_input()
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3)
    pe.apply_plan(model, plan, example)
    gc.collect()
    gc.disable()
    try:
        pe.apply_plan(model, plan, example)
        pe.preview_plan(model, plan, example)
        assert gc.collect() == 0
    finally:
        gc.enable()
