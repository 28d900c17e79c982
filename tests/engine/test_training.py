"""Fine-tuning that keeps pruning, iterative pruning on a schedule, and L1 sparsity training."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

import prune_engine as pe
from prune_engine.training import fine_tune, iterative_prune, schedule_fractions, train_sparse
from sample_models import load_sample


def state_hash(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    digest.update(repr((hooks, [m.training for m in model.modules()])).encode())
    return digest.hexdigest()


def zero_patterns(model: nn.Module) -> dict[str, torch.Tensor]:
    return {layer.name: pe.get_layer(model, layer.name).weight == 0 for layer in pe.prunable_layers(model)}


def assert_plain(model: nn.Module) -> None:
    assert not [key for key in model.state_dict() if key.endswith(("_orig", "_mask"))]
    assert all(not module._forward_pre_hooks for module in model.modules())


@pytest.fixture(scope="module")
def mlp() -> pe.ModelBundle:
    return load_sample("digits_mlp")


@pytest.fixture(scope="module")
def cnn() -> pe.ModelBundle:
    return load_sample("digits_cnn")


@pytest.fixture(scope="module")
def small_train(mlp: pe.ModelBundle) -> pe.EvalData:
    return mlp.train_data.subset(512)


def test_agp_schedule_follows_zhu_and_gupta() -> None:
    assert schedule_fractions("agp", 4) == [1 - 0.75**3, 1 - 0.5**3, 1 - 0.25**3, 1.0]
    assert schedule_fractions("agp", 4) == [0.578125, 0.875, 0.984375, 1.0]
    assert schedule_fractions("linear", 4) == [0.25, 0.5, 0.75, 1.0]
    assert schedule_fractions("one_shot", 3) == [1.0, 1.0, 1.0]
    assert schedule_fractions("agp", 1) == [1.0]
    with pytest.raises(pe.InvalidPlanError, match="agp, linear, one_shot"):
        schedule_fractions("cosine", 3)
    with pytest.raises(pe.InvalidPlanError, match="steps"):
        schedule_fractions("agp", 0)


def test_fine_tuning_keeps_pruned_weights_at_zero_and_returns_a_plain_model(
    mlp: pe.ModelBundle, small_train: pe.EvalData
) -> None:
    pruned = pe.apply_plan(mlp.model, pe.PruningPlan(global_ratio=0.8), mlp.example_input).model
    before = state_hash(pruned)
    zeros = zero_patterns(pruned)

    tuned = fine_tune(pruned, small_train, epochs=1)

    assert state_hash(pruned) == before, "the model passed in must not change"
    assert tuned is not pruned and not tuned.training
    for name, pattern in zero_patterns(tuned).items():
        assert torch.equal(pattern, zeros[name]), f"{name} gained or lost zeros"
    assert not torch.equal(tuned.fc1.weight, pruned.fc1.weight), "the kept weights trained"
    assert_plain(tuned)


def test_fine_tuning_is_deterministic_for_a_seed(mlp: pe.ModelBundle, small_train: pe.EvalData) -> None:
    first = fine_tune(mlp.model, small_train, epochs=1, seed=3)
    again = fine_tune(mlp.model, small_train, epochs=1, seed=3)
    other = fine_tune(mlp.model, small_train, epochs=1, seed=4)

    assert state_hash(first) == state_hash(again) != state_hash(other)


def test_fine_tuning_a_channel_pruned_model_keeps_its_shapes(cnn: pe.ModelBundle) -> None:
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.5)
    pruned = pe.apply_plan(cnn.model, plan, cnn.example_input).model
    shapes = {name: tuple(tensor.shape) for name, tensor in pruned.state_dict().items()}
    reports: list[float] = []

    tuned = fine_tune(pruned, cnn.train_data.subset(256), epochs=2, progress=lambda done, _: reports.append(done))

    assert {name: tuple(tensor.shape) for name, tensor in tuned.state_dict().items()} == shapes
    assert tuned(cnn.example_input).shape == (1, 10)
    assert reports == [0.5, 1.0]
    assert_plain(tuned)


def test_fine_tuning_needs_class_labels(mlp: pe.ModelBundle) -> None:
    with pytest.raises(pe.DataError, match="class labels"):
        fine_tune(mlp.model, pe.EvalData(mlp.train_data.inputs[:64]), epochs=1)
    with pytest.raises(pe.DataError, match="class labels"):
        fine_tune(mlp.model, pe.EvalData(mlp.train_data.inputs[:64], torch.rand(64)), epochs=1)
    with pytest.raises(pe.DataError, match="10 outputs"):
        fine_tune(mlp.model, pe.EvalData(mlp.train_data.inputs[:64], torch.full((64,), 12)), epochs=1)


def test_iterative_pruning_follows_the_schedule_and_records_history(
    mlp: pe.ModelBundle, small_train: pe.EvalData
) -> None:
    before = state_hash(mlp.model)
    plan = pe.PruningPlan(scope="global", global_ratio=0.9)
    reports: list[float] = []

    result = iterative_prune(
        mlp.model,
        plan,
        small_train,
        mlp.eval_data,
        steps=3,
        schedule="agp",
        progress=lambda done, _: reports.append(done),
    )

    assert state_hash(mlp.model) == before
    history = result.history
    assert list(history.columns) == [
        "step", "ratio_fraction", "pruned_accuracy", "accuracy", "params", "nonzero", "metric", "pruned_value", "value"
    ]  # fmt: skip
    assert (history["metric"] == "accuracy").all() and history["value"].equals(history["accuracy"])
    assert list(history["step"]) == [0, 1, 2, 3]
    assert list(history["ratio_fraction"]) == [0.0, *schedule_fractions("agp", 3)]
    assert history["nonzero"].is_monotonic_decreasing and history["params"].nunique() == 1
    assert history["accuracy"].iloc[0] == pe.evaluate(mlp.model, mlp.eval_data)["accuracy"]
    weights = sum(layer.weight_shape[0] * layer.weight_shape[1] for layer in pe.prunable_layers(mlp.model))
    zeros = sum(int(mask.sum()) for mask in zero_patterns(result.model).values())
    assert zeros == round(0.9 * weights)
    assert result.report["achieved_ratio"].between(0.5, 1).all()
    assert result.plan == plan and reports[-1] == 1.0 and reports == sorted(reports)
    assert_plain(result.model)


def test_iterative_channel_pruning_reaches_each_layer_ratio_of_the_original_channels(cnn: pe.ModelBundle) -> None:
    plan = pe.PruningPlan(granularity="channel", ratios={"conv2": 0.5, "conv3": 0.25})

    result = iterative_prune(
        cnn.model, plan, cnn.train_data.subset(256), cnn.eval_data, steps=3, schedule="linear", epochs_per_step=1
    )

    assert result.model.conv2.out_channels == 32 and result.model.conv3.out_channels == 48
    assert list(result.history["params"]) == sorted(result.history["params"], reverse=True)
    report = result.report.set_index("layer")
    assert report.loc["conv2", "channels_after"] == 32 and report.loc["conv2", "achieved_ratio"] == 0.5


def test_l1_on_batchnorm_scales_shrinks_them(cnn: pe.ModelBundle) -> None:
    data = cnn.train_data.subset(512)

    def scale_norm(model: nn.Module) -> float:
        return sum(float(m.weight.detach().abs().sum()) for m in model.modules() if isinstance(m, nn.BatchNorm2d))

    plain = fine_tune(cnn.model, data, epochs=3, lr=1e-2)
    slim = train_sparse(cnn.model, data, l1_lambda=1e-2, epochs=3, lr=1e-2, target="bn")

    assert scale_norm(slim) < 0.9 * scale_norm(plain)
    assert pe.evaluate(slim, cnn.eval_data)["accuracy"] > 0.8


def test_l1_on_weights_shrinks_them_and_needs_batchnorm_for_bn(mlp: pe.ModelBundle, small_train: pe.EvalData) -> None:
    def weight_norm(model: nn.Module) -> float:
        return sum(
            float(pe.get_layer(model, layer.name).weight.detach().abs().sum()) for layer in pe.prunable_layers(model)
        )

    plain = fine_tune(mlp.model, small_train, epochs=2)
    sparse = train_sparse(mlp.model, small_train, l1_lambda=1e-4, epochs=2, target="weights")

    assert weight_norm(sparse) < 0.9 * weight_norm(plain)
    with pytest.raises(pe.UnsupportedModelError, match="no BatchNorm"):
        train_sparse(mlp.model, small_train, l1_lambda=1e-4, epochs=1, target="bn")
