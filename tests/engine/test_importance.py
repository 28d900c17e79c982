"""Importance criteria: shapes, meaning, refusals, caching, and pruning by each of them."""

from __future__ import annotations

import hashlib

import pytest
import torch
from captum.attr import LayerConductance
from model_zoo import ZOO_BY_NAME
from torch import nn

import prune_engine as pe
from prune_engine.blocks import BLOCK_LEVEL_CRITERIA
from prune_engine.heads import HEAD_LEVEL_CRITERIA
from prune_engine.importance import CRITERIA, clear_importance_cache, importance, importance_cache_info
from sample_models import load_sample

DATA_CRITERIA = [name for name, criterion in CRITERIA.items() if criterion.needs_data]
LAYER_CRITERIA = [name for name in CRITERIA if name not in HEAD_LEVEL_CRITERIA + BLOCK_LEVEL_CRITERIA]
"""Criteria that score any Linear/Conv layer; head ablation scores attention heads (tests/engine/test_heads.py)."""
SCORED_CRITERIA = ["taylor", "activation", "apoz", "grad_x_activation", "conductance", "deeplift"]
EXAMPLES = 48
"""Examples the tests score on: enough for stable scores, few enough to stay fast."""


@pytest.fixture(scope="module")
def cnn() -> pe.ModelBundle:
    return load_sample("digits_cnn")


@pytest.fixture(scope="module")
def mlp() -> pe.ModelBundle:
    return load_sample("digits_mlp")


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    clear_importance_cache()


def small(bundle: pe.ModelBundle, count: int = EXAMPLES) -> pe.EvalData:
    return bundle.eval_data.subset(count)


def model_state(model: nn.Module) -> str:
    """Everything scoring must leave alone: values, modes, gradient flags and gradients, hooks."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    digest.update(repr([module.training for module in model.modules()]).encode())
    digest.update(repr([(p.requires_grad, p.grad is None) for p in model.parameters()]).encode())
    hooks = [
        (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks), len(m._backward_pre_hooks))
        for m in model.modules()
    ]
    digest.update(repr(hooks).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("criterion", LAYER_CRITERIA)
def test_scores_have_one_value_per_channel_or_per_weight(cnn: pe.ModelBundle, criterion: str) -> None:
    channel = importance(cnn.model, criterion, small(cnn))
    weight = importance(cnn.model, criterion, small(cnn), level="weight")

    expected = ["conv1", "conv2", "conv3"] + ([] if criterion == "bn_scale" else ["fc"])
    assert list(channel) == expected and list(weight) == expected
    for name in expected:
        layer_weight = pe.get_layer(cnn.model, name).weight
        assert channel[name].shape == (layer_weight.shape[0],)
        assert weight[name].shape == layer_weight.shape


@pytest.mark.parametrize("criterion", LAYER_CRITERIA)
def test_scores_are_the_same_when_computed_again(cnn: pe.ModelBundle, criterion: str) -> None:
    first = importance(cnn.model, criterion, small(cnn), layers=["conv1", "conv2"])
    clear_importance_cache()
    again = importance(cnn.model, criterion, small(cnn), layers=["conv1", "conv2"])
    assert all(torch.equal(first[name], again[name]) for name in first)


def test_random_scores_change_with_the_seed(mlp: pe.ModelBundle) -> None:
    one, same, other = (importance(mlp.model, "random", seed=seed, level="weight") for seed in (1, 1, 2))
    assert all(torch.equal(one[name], same[name]) for name in one)
    assert not any(torch.equal(one[name], other[name]) for name in one)


@pytest.mark.parametrize("criterion", SCORED_CRITERIA)
@pytest.mark.parametrize("sample", ["mlp", "cnn"])
def test_data_driven_scores_are_finite_non_negative_and_discriminate(
    criterion: str, sample: str, mlp: pe.ModelBundle, cnn: pe.ModelBundle
) -> None:
    bundle = mlp if sample == "mlp" else cnn
    scores = importance(bundle.model, criterion, small(bundle))
    for name, layer_scores in scores.items():
        assert torch.isfinite(layer_scores).all() and (layer_scores >= 0).all(), name
    for name in list(scores)[:-1]:  # every output unit is fully active for its own class, so apoz ties there
        assert scores[name].unique().numel() > 1, f"{criterion} gives every channel of {name} the same score"


def branching_model() -> nn.Module:
    """A model torch.fx cannot trace and torch.func.vmap cannot map: its forward branches on data."""

    class Branching(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.norm = nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.norm(self.conv(x))
            return x if x.sum() > 0 else -x

    torch.manual_seed(0)
    return Branching().eval()


@pytest.mark.parametrize("case", ["vectorised", "one_by_one"])
def test_taylor_adds_up_weight_times_gradient_example_by_example(mlp: pe.ModelBundle, case: str) -> None:
    if case == "vectorised":
        model, data, layer = mlp.model, small(mlp, 12), "fc2"

        def loss(output: torch.Tensor, index: int) -> torch.Tensor:
            return nn.functional.cross_entropy(output, data.labels[index : index + 1])
    else:
        model, data, layer = branching_model(), pe.EvalData(torch.randn(5, 1, 6, 6)), "conv"

        def loss(output: torch.Tensor, index: int) -> torch.Tensor:
            return output.pow(2).sum()

    weight = pe.get_layer(model, layer).weight
    expected = torch.zeros_like(weight)
    for index in range(len(data)):
        (gradient,) = torch.autograd.grad(loss(model(data.inputs[index : index + 1]), index), [weight])
        expected += (weight * gradient).abs().detach() / len(data)
    model.zero_grad(set_to_none=True)

    torch.testing.assert_close(importance(model, "taylor", data, level="weight", layers=[layer])[layer], expected)


def test_bn_scale_reads_the_batchnorm_the_data_flows_into_not_the_one_defined_next() -> None:
    class Crossed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_a = nn.Conv2d(1, 4, 3)
            self.norm_for_b = nn.BatchNorm2d(6)  # defined after conv_a, but normalises conv_b
            self.conv_b = nn.Conv2d(4, 6, 3)
            self.norm_for_a = nn.BatchNorm2d(4)
            self.head = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.norm_for_b(self.conv_b(torch.relu(self.norm_for_a(self.conv_a(x)))))
            return self.head(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Crossed()
    for norm in (model.norm_for_a, model.norm_for_b):
        norm.weight.data.uniform_(-1, 1)
    scores = importance(model, "bn_scale")

    assert list(scores) == ["conv_a", "conv_b"]
    torch.testing.assert_close(scores["conv_a"], model.norm_for_a.weight.detach().abs())
    torch.testing.assert_close(scores["conv_b"], model.norm_for_b.weight.detach().abs())


def test_bn_scale_follows_residual_shortcuts() -> None:
    resnet = load_sample("digits_resnet").model
    scores = importance(resnet, "bn_scale", layers=["layer2.0.downsample.0", "layer1.1.conv2"])
    torch.testing.assert_close(scores["layer2.0.downsample.0"], resnet.layer2[0].downsample[1].weight.detach().abs())
    torch.testing.assert_close(scores["layer1.1.conv2"], resnet.layer1[1].bn2.weight.detach().abs())


def test_bn_scale_refuses_layers_without_a_batchnorm_by_name(mlp: pe.ModelBundle, cnn: pe.ModelBundle) -> None:
    with pytest.raises(pe.CriterionError, match=r"needs a BatchNorm after each layer; 'fc1', 'fc2', 'fc3' have none"):
        importance(mlp.model, "bn_scale")
    with pytest.raises(pe.CriterionError, match=r"'fc' have none — choose l1/l2"):
        importance(cnn.model, "bn_scale", layers=["conv1", "fc"])
    with pytest.raises(pe.CriterionError, match=r"'fc' have none"):
        pe.apply_plan(cnn.model, pe.PruningPlan(criterion="bn_scale", global_ratio=0.5), cnn.example_input)


def test_bn_scale_refuses_a_model_it_cannot_trace() -> None:
    with pytest.raises(pe.CriterionError, match=r"could not: torch\.fx could not trace"):
        importance(branching_model(), "bn_scale")
    scores = importance(branching_model(), "activation", pe.EvalData(torch.randn(8, 1, 6, 6)))
    assert scores["conv"].shape == (4,), "observed at the layer's own output when tracing fails"


@pytest.mark.parametrize("criterion", DATA_CRITERIA)
def test_data_driven_criteria_refuse_without_data(mlp: pe.ModelBundle, criterion: str) -> None:
    with pytest.raises(pe.CriterionError, match=f"The {criterion} criterion needs data: .*l1, l2 or bn_scale"):
        importance(mlp.model, criterion)


@pytest.mark.parametrize("criterion", LAYER_CRITERIA)
def test_scoring_leaves_the_model_untouched(criterion: str) -> None:
    model = load_sample("digits_cnn").model.train()  # training mode: a forward pass would move BN statistics
    model.conv1.weight.requires_grad_(False)
    data = load_sample("digits_cnn").eval_data.subset(EXAMPLES)
    before = model_state(model)

    for level in ("channel", "weight"):
        importance(model, criterion, data, level=level)

    assert model_state(model) == before


def test_a_repeated_call_is_served_from_the_cache_as_a_private_copy(cnn: pe.ModelBundle) -> None:
    first = importance(cnn.model, "grad_x_activation", small(cnn))
    assert importance_cache_info()[:2] == (0, 1)

    first["conv1"].zero_()
    again = importance(cnn.model, "grad_x_activation", small(cnn))
    assert importance_cache_info()[:2] == (1, 1)
    assert again["conv1"].abs().sum() > 0, "changing a result must not change the cache"

    importance(cnn.model, "grad_x_activation", small(cnn), seed=1)
    importance(cnn.model, "grad_x_activation", small(cnn, EXAMPLES + 1))
    importance(cnn.model, "grad_x_activation", small(cnn), layers=["conv1"])
    assert importance_cache_info()[:2] == (1, 4), "seed, data and layers are part of the key"


def test_the_cache_recomputes_for_a_changed_model(mlp: pe.ModelBundle) -> None:
    model = load_sample("digits_mlp").model
    before = importance(model, "taylor", small(mlp))
    with torch.no_grad():
        model.fc1.weight[0].mul_(3)
    after = importance(model, "taylor", small(mlp))
    assert importance_cache_info().hits == 0
    assert not torch.equal(before["fc1"], after["fc1"])


@pytest.mark.parametrize("criterion", ["taylor", "conductance"])
def test_progress_rises_to_one(cnn: pe.ModelBundle, criterion: str) -> None:
    seen: list[float] = []
    importance(cnn.model, criterion, small(cnn, 150), progress=lambda fraction, _: seen.append(fraction))
    assert len(seen) == 3 and seen == sorted(seen) and seen[-1] == 1.0

    cached: list[float] = []
    importance(cnn.model, criterion, small(cnn, 150), progress=lambda fraction, _: cached.append(fraction))
    assert cached == [1.0]


def test_conductance_equals_captums_layer_conductance(mlp: pe.ModelBundle) -> None:
    data = small(mlp, 32)
    model = mlp.model

    def centred(inputs: torch.Tensor) -> torch.Tensor:
        logits = model(inputs)
        return logits - logits.mean(dim=1, keepdim=True)

    reference = LayerConductance(centred, model.relu1).attribute(
        data.inputs, target=data.labels, n_steps=16, method="riemann_trapezoid"
    )
    class_means = torch.stack([reference[data.labels == digit].abs().mean(dim=0) for digit in data.labels.unique()])
    ours = importance(model, "conductance", data, layers=["fc1"])["fc1"]
    torch.testing.assert_close(ours, class_means.max(dim=0).values, rtol=1e-4, atol=1e-6)


def test_a_channel_that_one_class_relies_on_outranks_one_every_class_uses_a_little() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0, 5.0], [1.0, 1.0]]))  # unit 0: only class 1; unit 1: everyone
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    inputs = torch.tensor([[1.0, 0.0]] * 9 + [[0.0, 1.0]])
    scores = importance(model, "activation", pe.EvalData(inputs, torch.tensor([0] * 9 + [1])), layers=["0"])["0"]
    torch.testing.assert_close(scores, torch.tensor([5.0, 1.0]), msg="mean over all examples would give [0.5, 1]")


def test_without_labels_the_models_own_predictions_are_the_targets(cnn: pe.ModelBundle) -> None:
    inputs = small(cnn).inputs
    with torch.no_grad():
        predictions = cnn.model(inputs).argmax(dim=1)
    for criterion in ("taylor", "grad_x_activation"):
        unlabelled = importance(cnn.model, criterion, pe.EvalData(inputs))
        predicted = importance(cnn.model, criterion, pe.EvalData(inputs, predictions))
        assert all(torch.allclose(unlabelled[name], predicted[name]) for name in unlabelled)


def test_outputs_that_are_not_class_scores_are_explained_by_their_size() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 1)).eval()
    data = pe.EvalData(torch.randn(20, 6), torch.randn(20, 1))
    for criterion in ("taylor", "grad_x_activation", "conductance", "deeplift"):
        scores = importance(model, criterion, data)
        assert scores["0"].shape == (12,) and torch.isfinite(scores["0"]).all() and scores["0"].sum() > 0


def test_layers_that_never_run_as_modules_are_left_out_or_refused_by_name() -> None:
    entry = ZOO_BY_NAME["transformer"]
    model, data = entry.build(), pe.EvalData(torch.randn(6, 5, 8))
    scores = importance(model, "grad_x_activation", data)
    assert "encoder.layers.0.linear1" in scores
    assert "encoder.layers.0.self_attn.out_proj" not in scores
    with pytest.raises(pe.CriterionError, match=r"'encoder.layers.0.self_attn.out_proj' is not run exactly once"):
        importance(model, "activation", data, layers=["encoder.layers.0.self_attn.out_proj"])
    assert "encoder.layers.0.self_attn.out_proj" in importance(model, "taylor", data), "taylor reads gradients"


def test_path_criteria_refuse_integer_inputs_with_an_alternative() -> None:
    entry = ZOO_BY_NAME["tied_embedding"]
    data = pe.EvalData(torch.randint(0, 40, (4, 7)))
    with pytest.raises(pe.CriterionError, match=r"needs floating-point inputs.*grad_x_activation, taylor"):
        importance(entry.build(), "conductance", data)


PRUNING_CASES = [
    (sample, granularity, criterion)
    for sample in ("digits_mlp", "digits_cnn")
    for granularity in ("unstructured", "channel", "n:m")
    for criterion in LAYER_CRITERIA
] + [
    ("digits_resnet", granularity, criterion)
    for granularity in ("unstructured", "channel")
    for criterion in LAYER_CRITERIA
]


@pytest.mark.parametrize(("sample", "granularity", "criterion"), PRUNING_CASES)
def test_every_criterion_prunes_every_sample(sample: str, granularity: str, criterion: str) -> None:
    bundle = load_sample(sample)
    plan = pe.PruningPlan(
        granularity=granularity,
        criterion=criterion,
        global_ratio=0.5,
        ignored_layers=["fc"]
        if criterion == "bn_scale" and granularity != "channel" and sample != "digits_mlp"
        else [],
    )
    data = bundle.train_data.subset(EXAMPLES)
    if criterion == "bn_scale" and sample == "digits_mlp":
        with pytest.raises(pe.CriterionError, match="needs a BatchNorm"):
            pe.apply_plan(bundle.model, plan, bundle.example_input, data=data)
        return

    result = pe.apply_plan(bundle.model, plan, bundle.example_input, data=data)

    output = result.model(bundle.eval_data.inputs[:8])
    assert output.shape == (8, 10) and torch.isfinite(output).all()
    report = result.report.set_index("layer")
    pruned = report[report["achieved_ratio"] > 0.3]
    assert len(pruned) >= 2, f"{criterion} pruned too little:\n{report}"
    if granularity == "channel":
        assert (pruned["channels_after"] < pruned["channels_before"]).all()


def test_apply_plan_progress_stays_in_order_with_a_data_driven_criterion(cnn: pe.ModelBundle) -> None:
    seen: list[float] = []
    pe.apply_plan(
        cnn.model,
        pe.PruningPlan(granularity="channel", criterion="taylor", global_ratio=0.3),
        cnn.example_input,
        data=small(cnn, 150),
        progress=lambda fraction, _: seen.append(fraction),
    )
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 3
