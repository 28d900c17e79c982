"""Sparse runtime: very sparse Linear layers on CSR kernels where they were timed faster, same outputs,
the original untouched, and a typed decision per layer."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from model_zoo import ZOO_BY_NAME
from torch import nn

from prune_engine.errors import PruneScopeError
from prune_engine.metrics import MEASURABLE_CHANGE
from prune_engine.plan import PruningPlan
from prune_engine.pruning import apply_plan
from prune_engine.sparse_runtime import (
    KeptDense,
    LayerTimer,
    SparseLinear,
    sparse_decisions,
    sparse_runtime,
    sparse_runtime_report,
)


def sparse_mlp(bias: bool = True, sparsity: float = 0.95) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64, bias=bias), nn.ReLU(), nn.Linear(64, 48, bias=bias), nn.ReLU())
    model.append(nn.Linear(48, 8, bias=bias))
    plan = PruningPlan(granularity="unstructured", ratios={"0": sparsity, "2": sparsity})
    return apply_plan(model.eval(), plan, torch.randn(2, 32)).model


def known_timer(sparse_wins: dict[tuple[int, int], bool], otherwise: bool = True) -> LayerTimer:
    """A clock that says, per (in_features, rows), whether the sparse form took half or twice the dense time."""

    def timer(dense: nn.Module, sparse: nn.Module, rows: torch.Tensor, threads: int) -> tuple[np.ndarray, np.ndarray]:
        half, twice = np.full(7, 1e-6), np.full(7, 2e-6)
        return (twice, half) if sparse_wins.get((dense.in_features, rows.shape[0]), otherwise) else (half, twice)

    return timer


SPARSE_ALWAYS = known_timer({})
SPARSE_FROM_32 = known_timer({(32, 1): False, (32, 32): True, (64, 1): False, (64, 32): True})
TIMERS = {"sparse at every batch": SPARSE_ALWAYS, "sparse from 32 rows": SPARSE_FROM_32, "measured here": None}


@pytest.mark.parametrize("timer", TIMERS.values(), ids=TIMERS.keys())
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 32), (3, 7, 32), (1, 32), (32,), (40, 32), (2, 20, 32)])
def test_sparse_runtime_gives_the_dense_outputs(timer: LayerTimer | None, bias: bool, shape: tuple[int, ...]) -> None:
    model = sparse_mlp(bias)
    runtime = sparse_runtime(model, min_sparsity=0.9, timer=timer)
    inputs = torch.randn(shape)
    with torch.inference_mode():
        expected, actual = model(inputs), runtime(inputs)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_sparse_runtime_also_runs_with_autograd_on() -> None:
    model = sparse_mlp()
    inputs = torch.randn(40, 32)
    for timer in (SPARSE_ALWAYS, SPARSE_FROM_32):
        torch.testing.assert_close(sparse_runtime(model, timer=timer)(inputs), model(inputs), rtol=1e-5, atol=1e-6)


def test_each_layer_runs_sparse_from_the_batch_size_where_it_was_timed_faster() -> None:
    model = sparse_mlp()
    timer = known_timer({(32, 1): True, (32, 32): True, (64, 1): False, (64, 32): True})
    runtime = sparse_runtime(model, min_sparsity=0.9, timer=timer)
    decisions = {decision.layer: decision for decision in sparse_decisions(model, min_sparsity=0.9, timer=timer)}

    assert decisions["0"].sparse_from_batch == 1 and decisions["0"].kept_dense_because is None
    assert isinstance(runtime[0], SparseLinear) and runtime[0].weight is None, "no dense copy when sparse wins at 1"
    assert decisions["2"].sparse_from_batch == 32 and decisions["2"].converted
    assert isinstance(runtime[2], SparseLinear) and runtime[2].sparse_from_batch == 32
    assert "2.weight" in runtime.state_dict(), "the layer keeps its dense weight for calls of fewer rows"
    assert decisions["0"].dense_us == {1: 2.0, 32: 2.0} and decisions["0"].sparse_us == {1: 1.0, 32: 1.0}
    assert decisions["2"].speedup_low == {1: 0.5, 32: 2.0}


def test_a_layer_below_the_threshold_stays_dense_untimed() -> None:
    model = sparse_mlp()
    runtime = sparse_runtime(model, min_sparsity=0.9, timer=SPARSE_ALWAYS)
    assert type(runtime[4]) is nn.Linear, "the unpruned output layer stays dense"
    report = sparse_runtime_report(model, min_sparsity=0.9, timer=SPARSE_ALWAYS).set_index("layer")
    assert list(report["converted"]) == [True, True, False]
    assert report.loc["4", "kept_dense_because"] == KeptDense.BELOW_MIN_SPARSITY
    assert math.isnan(report.loc["4", "dense_us_b1"]) and math.isnan(report.loc["4", "sparse_us_b32"])
    assert report.loc["0", "sparsity"] == pytest.approx(0.95, abs=0.01)
    exact = sparse_runtime_report(model, min_sparsity=float(report.loc["0", "sparsity"]), timer=SPARSE_ALWAYS)
    assert bool(exact.set_index("layer").loc["0", "converted"]), "a layer exactly at the threshold is converted"
    above = sparse_runtime(model, min_sparsity=0.99, timer=SPARSE_ALWAYS)
    assert not any(isinstance(m, SparseLinear) for m in above.modules())


@pytest.mark.parametrize(
    "wins", [{1: False, 32: False}, {1: True, 32: False}], ids=["slower everywhere", "faster only at one row"]
)
def test_a_layer_whose_sparse_form_is_not_faster_at_the_largest_batch_stays_dense(wins: dict[int, bool]) -> None:
    model = sparse_mlp()
    timer = known_timer({(32, 1): wins[1], (32, 32): wins[32], (64, 1): True, (64, 32): True})
    runtime = sparse_runtime(model, min_sparsity=0.9, timer=timer)
    decision = sparse_decisions(model, min_sparsity=0.9, timer=timer)[0]
    assert type(runtime[0]) is nn.Linear and isinstance(runtime[2], SparseLinear)
    assert decision.kept_dense_because == KeptDense.NOT_FASTER and decision.sparse_from_batch is None
    assert "not at least 5% faster at batch 32" in decision.reason


def test_a_sparse_form_faster_in_the_median_but_slower_in_three_blocks_of_seven_stays_dense() -> None:
    model = sparse_mlp()

    def uneven(dense: nn.Module, sparse: nn.Module, rows: torch.Tensor, threads: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full(7, 2e-6), np.array([1e-6, 3e-6, 1e-6, 3e-6, 1e-6, 3e-6, 1e-6])

    decision = sparse_decisions(model, min_sparsity=0.9, timer=uneven)[0]
    assert decision.sparse_us[32] < decision.dense_us[32], "the median alone would convert it"
    assert decision.kept_dense_because == KeptDense.NOT_FASTER and decision.speedup_low[32] < 1


def test_measured_decisions_follow_their_own_timings_and_are_cached() -> None:
    model = sparse_mlp()
    decisions = sparse_decisions(model, min_sparsity=0.9, batch_sizes=(1, 8))
    runtime = sparse_runtime(model, min_sparsity=0.9, batch_sizes=(1, 8))
    modules = dict(runtime.named_modules())
    for decision in decisions[:2]:
        wins = {b: decision.speedup_low[b] >= 1 / (1 - MEASURABLE_CHANGE) for b in (1, 8)}
        expected = 1 if wins[1] and wins[8] else 8 if wins[8] else None
        assert decision.sparse_from_batch == expected, decision
        assert isinstance(modules[decision.layer], SparseLinear) is decision.converted
    assert sparse_decisions(model, min_sparsity=0.9, batch_sizes=(1, 8)) == decisions, "timings are cached"


def test_the_original_model_is_untouched() -> None:
    model = sparse_mlp()
    before = copy.deepcopy(model.state_dict())
    runtime = sparse_runtime(model, timer=SPARSE_FROM_32)
    assert all(type(module) is not SparseLinear for module in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert runtime[0].values.data_ptr() != model[0].weight.data_ptr()
    assert runtime[0].weight.data_ptr() != model[0].weight.data_ptr()


@pytest.mark.parametrize("timer", [SPARSE_ALWAYS, SPARSE_FROM_32], ids=["sparse at every batch", "sparse from 32"])
def test_the_sparse_copy_can_be_copied_cast_and_its_state_saved_after_running(timer: LayerTimer) -> None:
    runtime = sparse_runtime(sparse_mlp(), timer=timer)
    for rows in (2, 40):
        inputs = torch.randn(rows, 32)
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
    report = sparse_runtime_report(model, timer=SPARSE_ALWAYS)
    fused = report[report["layer"].str.contains("encoder")]
    assert len(fused) and not fused["converted"].any()
    assert (fused["kept_dense_because"] == KeptDense.FUSED_KERNEL).all()
    assert fused["reason"].str.contains("fused kernel").all()
    assert report.set_index("layer").loc["head", "converted"]
    example = ZOO_BY_NAME["transformer"].example_input()
    torch.testing.assert_close(
        sparse_runtime(model, timer=SPARSE_ALWAYS)(example), model(example), rtol=1e-5, atol=1e-6
    )
    half = nn.Sequential(nn.Linear(8, 8)).half()
    with torch.no_grad():
        half[0].weight.zero_()
    half_report = sparse_runtime_report(half)
    assert half_report.loc[0, "kept_dense_because"] == KeptDense.DTYPE
    assert "float16" in half_report.loc[0, "reason"]


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, True, "0.9", None])
def test_a_bad_threshold_is_refused_with_a_sentence(bad: object) -> None:
    with pytest.raises(PruneScopeError, match="min_sparsity must be a fraction"):
        sparse_runtime(sparse_mlp(), min_sparsity=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_sizes, threads", [((), 1), ((0, 32), 1), ((1.5,), 1), ((1, 32), 0)])
def test_bad_timing_settings_are_refused_with_a_sentence(batch_sizes: tuple, threads: int) -> None:
    with pytest.raises(PruneScopeError, match="whole number"):
        sparse_runtime(sparse_mlp(), batch_sizes=batch_sizes, threads=threads)
