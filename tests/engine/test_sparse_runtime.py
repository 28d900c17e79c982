"""Sparse runtime: very sparse Linear layers on CSR kernels, same outputs, the original untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from model_zoo import ZOO_BY_NAME
from torch import nn

from prune_engine.errors import PruneScopeError
from prune_engine.plan import PruningPlan
from prune_engine.pruning import apply_plan
from prune_engine.sparse_runtime import SparseLinear, sparse_runtime, sparse_runtime_report


def sparse_mlp(bias: bool = True, sparsity: float = 0.95) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64, bias=bias), nn.ReLU(), nn.Linear(64, 48, bias=bias), nn.ReLU())
    model.append(nn.Linear(48, 8, bias=bias))
    plan = PruningPlan(granularity="unstructured", ratios={"0": sparsity, "2": sparsity})
    return apply_plan(model.eval(), plan, torch.randn(2, 32)).model


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 32), (3, 7, 32), (1, 32), (32,)])
def test_sparse_runtime_gives_the_dense_outputs(bias: bool, shape: tuple[int, ...]) -> None:
    model = sparse_mlp(bias)
    runtime = sparse_runtime(model, min_sparsity=0.9)
    inputs = torch.randn(shape)
    with torch.inference_mode():
        expected, actual = model(inputs), runtime(inputs)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_sparse_runtime_also_runs_with_autograd_on() -> None:
    model = sparse_mlp()
    inputs = torch.randn(4, 32)
    torch.testing.assert_close(sparse_runtime(model)(inputs), model(inputs), rtol=1e-5, atol=1e-6)


def test_only_layers_at_or_above_the_threshold_are_converted() -> None:
    model = sparse_mlp()
    runtime = sparse_runtime(model, min_sparsity=0.9)
    assert isinstance(runtime[0], SparseLinear) and isinstance(runtime[2], SparseLinear)
    assert type(runtime[4]) is nn.Linear, "the unpruned output layer stays dense"
    report = sparse_runtime_report(model, min_sparsity=0.9).set_index("layer")
    assert list(report["converted"]) == [True, True, False]
    assert "below the threshold" in report.loc["4", "reason"]
    assert report.loc["0", "sparsity"] == pytest.approx(0.95, abs=0.01)
    exact = sparse_runtime_report(model, min_sparsity=float(report.loc["0", "sparsity"]))
    assert bool(exact.set_index("layer").loc["0", "converted"]), "a layer exactly at the threshold is converted"
    assert not any(isinstance(m, SparseLinear) for m in sparse_runtime(model, min_sparsity=0.99).modules())


def test_the_original_model_is_untouched() -> None:
    model = sparse_mlp()
    before = copy.deepcopy(model.state_dict())
    runtime = sparse_runtime(model)
    assert all(type(module) is not SparseLinear for module in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert runtime[0].values.data_ptr() != model[0].weight.data_ptr()


def test_the_sparse_copy_can_be_copied_cast_and_its_state_saved_after_running() -> None:
    runtime = sparse_runtime(sparse_mlp())
    inputs = torch.randn(2, 32)
    expected = runtime(inputs)
    again = copy.deepcopy(runtime)
    torch.testing.assert_close(again(inputs), expected)
    doubled = copy.deepcopy(runtime).double()
    torch.testing.assert_close(doubled(inputs.double()), expected.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(runtime(inputs), expected, msg="casting a copy leaves the original as it was")
    assert {"0.crow_indices", "0.col_indices", "0.values", "0.bias"} <= set(runtime.state_dict())


def test_fused_transformer_layers_and_half_precision_stay_dense_with_a_reason() -> None:
    model = ZOO_BY_NAME["transformer"].build()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.zero_()
    report = sparse_runtime_report(model)
    fused = report[report["layer"].str.contains("encoder")]
    assert len(fused) and not fused["converted"].any()
    assert fused["reason"].str.contains("fused kernel").all()
    assert report.set_index("layer").loc["head", "converted"]
    example = ZOO_BY_NAME["transformer"].example_input()
    torch.testing.assert_close(sparse_runtime(model)(example), model(example), rtol=1e-5, atol=1e-6)
    half = nn.Sequential(nn.Linear(8, 8)).half()
    with torch.no_grad():
        half[0].weight.zero_()
    assert "float16" in sparse_runtime_report(half).loc[0, "reason"]


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, True, "0.9", None])
def test_a_bad_threshold_is_refused_with_a_sentence(bad: object) -> None:
    with pytest.raises(PruneScopeError, match="min_sparsity must be a fraction"):
        sparse_runtime(sparse_mlp(), min_sparsity=bad)  # type: ignore[arg-type]
