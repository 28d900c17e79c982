"""Wanda, SparseGPT, depth (block) pruning and distillation, checked against direct computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prune_engine as pe
from prune_engine.blocks import SkippedBlock
from prune_engine.masks import nm_mask
from prune_engine.oneshot import hessians
from sample_models import load_sample


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 4)).eval()


def _correlated_inputs(count: int = 256, features: int = 16) -> torch.Tensor:
    """Inputs whose features differ in size and move together, as a transformer's do."""
    generator = torch.Generator().manual_seed(1)
    mixing = torch.randn(features, features, generator=generator)
    scales = torch.logspace(-1, 1, features)
    return (torch.randn(count, features, generator=generator) @ mixing) * scales


def test_wanda_scores_are_weight_size_times_input_norm() -> None:
    model = _mlp()
    inputs = torch.randn(40, 8, generator=torch.Generator().manual_seed(2))
    data = pe.EvalData(inputs)

    scores = pe.importance(model, "wanda", data, level="weight")

    hidden = torch.relu(model[0](inputs)).detach()
    expected_first = model[0].weight.detach().abs() * torch.linalg.vector_norm(inputs, dim=0)
    expected_second = model[2].weight.detach().abs() * torch.linalg.vector_norm(hidden, dim=0)
    torch.testing.assert_close(scores["0"], expected_first)
    torch.testing.assert_close(scores["2"], expected_second)


class _PaddedEncoder(nn.Module):
    """Token ids padded with 0 → embedding → Linear, mean over the real tokens (as a sentence embedder)."""

    pad_token_id = 0

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.embed = nn.Embedding(12, 6)
        self.dense = nn.Linear(6, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = (ids != self.pad_token_id).unsqueeze(-1).float()
        return (self.dense(self.embed(ids)) * real).sum(dim=1) / real.sum(dim=1)


def _padded_ids() -> torch.Tensor:
    """Sentences of 2 to 7 real tokens, padded with 0 to 9 positions: most positions are padding."""
    generator = torch.Generator().manual_seed(5)
    ids = torch.zeros(40, 9, dtype=torch.long)
    for row in range(len(ids)):
        length = 2 + row % 6
        ids[row, :length] = torch.randint(1, 12, (length,), generator=generator)
    return ids


def test_wanda_and_sparsegpt_measure_real_tokens_only_never_padding() -> None:
    model = _PaddedEncoder().eval()
    ids = _padded_ids()
    real_inputs = model.embed(ids[ids != 0]).detach()

    scores = pe.importance(model, "wanda", pe.EvalData(ids), level="weight")["dense"]
    hessian = hessians(model, ["dense"], ids)["dense"]

    expected = model.dense.weight.detach().abs() * torch.linalg.vector_norm(real_inputs, dim=0)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(hessian, 2 * real_inputs.T @ real_inputs / len(real_inputs))


def test_wanda_removes_the_same_share_of_every_output_row() -> None:
    model = _mlp()
    data = pe.EvalData(torch.randn(40, 8))
    plan = pe.PruningPlan(criterion="wanda", global_ratio=0.5)

    pruned = pe.apply_plan(model, plan, data.inputs[:1], data=data).model

    for layer in (pruned[0], pruned[2]):
        zeros_per_row = (layer.weight == 0).sum(dim=1)
        assert torch.equal(zeros_per_row, torch.full_like(zeros_per_row, layer.in_features // 2))


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8)])
def test_wanda_n_m_keeps_the_highest_scoring_n_of_every_m(n: int, m: int) -> None:
    model = nn.Sequential(nn.Linear(16, 8)).eval()
    data = pe.EvalData(_correlated_inputs())
    scores = pe.importance(model, "wanda", data, level="weight")["0"]

    pruned = pe.apply_plan(
        model, pe.PruningPlan(granularity="n:m", criterion="wanda", n=n, m=m), data.inputs[:1], data=data
    )

    kept = pruned.model[0].weight != 0
    assert torch.equal(kept, nm_mask(scores, n, m).bool())


def _reconstruction_error(original: nn.Linear, pruned: nn.Linear, inputs: torch.Tensor) -> float:
    with torch.no_grad():
        return float((original(inputs) - pruned(inputs)).square().mean())


@pytest.mark.parametrize("granularity", ["unstructured", "n:m"])
def test_sparsegpt_reconstructs_a_linear_better_than_magnitude_at_equal_sparsity(granularity: str) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(16, 24)).eval()
    inputs = _correlated_inputs()
    data = pe.EvalData(inputs)

    def pruned(criterion: str) -> pe.PruneResult:
        plan = pe.PruningPlan(granularity=granularity, criterion=criterion, global_ratio=0.5)
        return pe.apply_plan(model, plan, inputs[:1], data=data)

    sparsegpt, magnitude = pruned("sparsegpt"), pruned("l1")

    for result in (sparsegpt, magnitude):
        assert float((result.model[0].weight == 0).float().mean()) == pytest.approx(0.5)
    assert _reconstruction_error(model[0], sparsegpt.model[0], inputs) < 0.8 * _reconstruction_error(
        model[0], magnitude.model[0], inputs
    )
    kept = sparsegpt.model[0].weight != 0
    assert not torch.equal(sparsegpt.model[0].weight[kept], model[0].weight.detach()[kept])
    assert sparsegpt.report["kept_changed"].tolist() == [True]
    assert magnitude.report["kept_changed"].tolist() == [False]
    if granularity == "n:m":
        assert torch.equal(kept.reshape(-1, 4).sum(dim=1), torch.full((24 * 4,), 2))


def test_sparsegpt_leaves_the_model_it_was_given_unchanged() -> None:
    model = _mlp()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    data = pe.EvalData(torch.randn(32, 8))

    pe.apply_plan(model, pe.PruningPlan(criterion="sparsegpt", global_ratio=0.5), data.inputs[:1], data=data)

    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_wanda_and_sparsegpt_need_calibration_data() -> None:
    model = _mlp()
    for criterion in ("wanda", "sparsegpt"):
        with pytest.raises(pe.PruneScopeError, match="data"):
            pe.apply_plan(model, pe.PruningPlan(criterion=criterion, global_ratio=0.5), torch.randn(1, 8))


def test_block_pruning_skips_the_least_influential_residual_block_of_digits_resnet() -> None:
    bundle = load_sample("digits_resnet")
    plan = pe.PruningPlan(granularity="block", criterion="block_influence", global_ratio=0.34)

    result = pe.apply_plan(bundle.model, plan, bundle.example_input, data=bundle.eval_data)

    skipped = [name for name, module in result.model.named_modules() if isinstance(module, SkippedBlock)]
    assert len(skipped) == 1  # one of the three blocks that keep their input's shape
    report = result.report.set_index("layer")
    assert report.loc["layer2.0.conv1", "blocked_by"] == pe.BlockedBy.SHAPE_CHANGE
    assert report.loc["fc", "blocked_by"] == pe.BlockedBy.NOT_IN_BLOCK
    removed = report[report["status"] == pe.LayerStatus.PRUNED]
    assert all(layer.startswith(f"{skipped[0]}.") for layer in removed.index)
    assert (removed["params_after"] == 0).all()
    assert (
        pe.model_summary(result.model, bundle.example_input)["params"]
        < pe.model_summary(bundle.model, bundle.example_input)["params"]
    )
    assert pe.evaluate(result.model, bundle.eval_data)["accuracy"] > 0.9
    assert not any(isinstance(module, SkippedBlock) for module in bundle.model.modules())


def test_block_pruning_refuses_weight_criteria_and_models_without_blocks() -> None:
    bundle = load_sample("digits_resnet")
    with pytest.raises(pe.InvalidPlanError, match="block_influence"):
        pe.apply_plan(
            bundle.model, pe.PruningPlan(granularity="block", criterion="l1", global_ratio=0.3), bundle.example_input
        )
    mlp = load_sample("digits_mlp")
    with pytest.raises(pe.UnsupportedModelError, match="blocks"):
        pe.apply_plan(
            mlp.model, pe.PruningPlan(granularity="block", criterion="random", global_ratio=0.3), mlp.example_input
        )


def test_distillation_recovers_agreement_without_labels_and_keeps_zeros() -> None:
    bundle = load_sample("digits_mlp")
    pruned = pe.apply_plan(bundle.model, pe.PruningPlan(global_ratio=0.9), bundle.example_input).model
    unlabelled = pe.EvalData(bundle.train_data.inputs[:512])

    distilled = pe.distill(pruned, bundle.model, unlabelled, epochs=2, lr=1e-3)

    def agreement(model: nn.Module) -> float:
        return pe.evaluate(model, pe.EvalData(bundle.eval_data.inputs), reference=bundle.model)["agreement"]

    assert agreement(distilled) > agreement(pruned) + 0.05
    for name in ("fc1", "fc2", "fc3"):
        zeros = getattr(pruned, name).weight == 0
        assert bool((getattr(distilled, name).weight[zeros] == 0).all())
    assert torch.equal(
        pe.distill(pruned, bundle.model, unlabelled, epochs=1).fc1.weight,
        pe.distill(pruned, bundle.model, unlabelled, epochs=1).fc1.weight,
    )


def test_iterative_pruning_recovers_by_distillation_without_labels() -> None:
    bundle = load_sample("digits_mlp")
    unlabelled_train = pe.EvalData(bundle.train_data.inputs[:256])
    unlabelled_eval = pe.EvalData(bundle.eval_data.inputs[:128])

    result = pe.iterative_prune(
        bundle.model, pe.PruningPlan(global_ratio=0.8), unlabelled_train, unlabelled_eval, steps=2, recovery="distill"
    )

    history = result.history
    assert (history["metric"] == "agreement").all() and history["accuracy"].isna().all()
    assert history["value"].iloc[0] == 1.0
    assert (history["value"].iloc[1:] >= history["pruned_value"].iloc[1:]).all()
    assert float((result.model.fc1.weight == 0).float().mean()) == pytest.approx(0.8, abs=0.01)


def test_compare_methods_repeats_random_over_seeds_and_data_criteria_over_subsets() -> None:
    from prune_engine.comparison import Method, compare_methods, summarise

    bundle = load_sample("digits_mlp")
    methods = [Method("l1"), Method("random"), Method("wanda")]

    runs = compare_methods(
        bundle.model,
        bundle.example_input,
        bundle.eval_data,
        bundle.train_data,
        methods,
        [0.5],
        repeats=3,
        calibration_size=32,
    )

    assert runs.groupby("criterion")["repeat"].nunique().to_dict() == {"l1": 1, "random": 3, "wanda": 3}
    assert runs[runs["criterion"] == "random"]["value"].nunique() > 1
    table = summarise(runs).set_index("method")
    assert (table["low"] <= table["mean"]).all() and (table["mean"] <= table["high"]).all()
    assert (table["metric"] == "accuracy").all()
