"""Every engine step follows the model's device and dtype: data is moved and cast batch by batch.

Each step runs on the CPU in float32, float64 and bfloat16, and on CUDA where there is one (the
CUDA cases are skipped without a GPU). A pruned or trained copy stays on its original's device
and dtype; the original is never moved.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import prune_engine as pe
from prune_engine.blocks import BLOCK_LEVEL_CRITERIA
from prune_engine.data import model_fingerprint
from prune_engine.metrics import device_memory
from prune_engine.placement import Placement, model_device, model_dtype, place_model, placement
from prune_engine.sensitivity import ExecutorError, ProcessExecutor, SerialExecutor, default_executor
from prune_engine.sensitivity.executors import portable, unpack
from prune_engine.sensitivity.jobs import ScanSettings
from prune_engine.sparse_runtime import SPARSE_DTYPES
from sample_models import load_sample
from sample_models.large import GPT2Shaped

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
PLACES = [
    ("cpu", torch.float32),
    ("cpu", torch.float64),
    ("cpu", torch.bfloat16),
    ("cuda", torch.float32),
    ("cuda", torch.bfloat16),
]
CASES = [
    pytest.param(device, dtype, id=f"{device}-{str(dtype)[6:]}", marks=[NO_CUDA] if device == "cuda" else [])
    for device, dtype in PLACES
]
"""(device, dtype) pairs for `parametrize("device, dtype", CASES)`; the CUDA ones need a GPU."""
PLACED = [pytest.param(case.values, id=case.id, marks=case.marks) for case in CASES]
"""The same pairs as one fixture parameter."""
EXAMPLES = 32
DATA_CRITERIA = [
    name
    for name, criterion in pe.CRITERIA.items()
    if criterion.needs_data and name not in ("ablation", *BLOCK_LEVEL_CRITERIA)
]
"""Every criterion that runs the model on data and scores the layers of a CNN (not heads, not whole blocks)."""


@pytest.fixture(scope="module")
def digits() -> pe.ModelBundle:
    return load_sample("digits_cnn")


@pytest.fixture(params=PLACED)
def placed(request: pytest.FixtureRequest, digits: pe.ModelBundle) -> nn.Module:
    device, dtype = request.param
    return place_model(digits.model, device, dtype)


@pytest.fixture(scope="module")
def data(digits: pe.ModelBundle) -> pe.EvalData:
    return digits.eval_data.subset(EXAMPLES)


def _same_place(model: nn.Module, like: nn.Module) -> None:
    assert (model_device(model), model_dtype(model)) == (model_device(like), model_dtype(like))


def _tiny_gpt(device: str, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    model = GPT2Shaped(vocab=50, context=16, hidden=32, layers=2, num_heads=4, inner=64).eval()
    return place_model(model, device, dtype)


# --- placement --------------------------------------------------------------------------------


def test_placement_casts_floating_inputs_and_keeps_token_ids_integer() -> None:
    place = Placement(torch.device("cpu"), torch.bfloat16)

    assert place.inputs(torch.randn(2, 3)).dtype == torch.bfloat16
    assert place.inputs(torch.arange(4)).dtype == torch.int64
    assert place.labels(torch.arange(4)).dtype == torch.int64
    assert place.labels(None) is None


def test_place_model_copies_to_another_device_keeping_tied_weights_and_the_original() -> None:
    model = GPT2Shaped(vocab=20, context=8, hidden=16, layers=1, num_heads=2, inner=32)

    moved = place_model(model, "meta", torch.float16)

    assert model_device(moved).type == "meta" and model_dtype(moved) == torch.float16
    assert moved.lm_head.weight is moved.wte.weight, "tied weights stay one tensor"
    assert model_device(model).type == "cpu" and model_dtype(model) == torch.float32


# --- inspection, evaluation, importance -------------------------------------------------------------


@pytest.mark.parametrize("device, dtype", CASES)
def test_histogram_counts_every_weight_on_any_device_and_dtype(
    digits: pe.ModelBundle, device: str, dtype: torch.dtype, caplog: pytest.LogCaptureFixture
) -> None:
    model = place_model(digits.model, device, dtype)
    layer = pe.prunable_layers(model)[0]

    with caplog.at_level(logging.INFO, logger="prune_engine.placement"):
        counts, edges = pe.weight_histogram(model, layer.name, bins=20)

    assert counts.sum() == model.get_submodule(layer.name).weight.numel()
    assert len(edges) == 21
    native = device == "cpu" and dtype in (torch.float32, torch.float64)
    assert ("computed in float32 on the CPU" in caplog.text) is not native
    assert len(pe.layer_stats(model)) == len(pe.prunable_layers(model))


def test_evaluate_follows_the_model(placed: nn.Module, digits: pe.ModelBundle, data: pe.EvalData) -> None:
    reference = pe.evaluate(digits.model, data)

    metrics = pe.evaluate(placed, data, reference=placed)

    assert metrics["accuracy"] == pytest.approx(reference["accuracy"], abs=0.1)
    assert metrics["agreement"] == 1.0
    assert data.inputs.dtype == torch.float32 and data.inputs.device.type == "cpu", "data stays as loaded"


@pytest.mark.parametrize("criterion", ["l1", "random", "bn_scale", *DATA_CRITERIA])
def test_every_criterion_scores_on_the_models_device(placed: nn.Module, data: pe.EvalData, criterion: str) -> None:
    scores = pe.importance(placed, criterion, data, max_examples=8)

    assert scores
    for name, layer_scores in scores.items():
        assert layer_scores.device == model_device(placed)
        assert layer_scores.shape == (placed.get_submodule(name).weight.shape[0],)
        assert torch.isfinite(layer_scores.float()).all()


# --- pruning ----------------------------------------------------------------------------------------


PLANS = [
    pe.PruningPlan(granularity="unstructured", global_ratio=0.5),
    pe.PruningPlan(granularity="unstructured", scope="global", global_ratio=0.5),
    pe.PruningPlan(granularity="unstructured", scope="global", criterion="taylor", global_ratio=0.5),
    pe.PruningPlan(granularity="channel", global_ratio=0.3),
    pe.PruningPlan(granularity="channel", scope="global", criterion="activation", global_ratio=0.3),
    pe.PruningPlan(granularity="n:m", n=2, m=4, ratios={"fc": 0.5}),
    pe.PruningPlan(granularity="channel", global_ratio=0.3, recalibrate_bn=True),
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: f"{plan.granularity}-{plan.scope}-{plan.criterion}")
def test_a_pruned_copy_stays_on_the_originals_device_and_dtype(
    placed: nn.Module, digits: pe.ModelBundle, data: pe.EvalData, plan: pe.PruningPlan
) -> None:
    before = model_fingerprint(placed)

    preview = pe.preview_plan(placed, plan, digits.example_input, data=data)
    result = pe.apply_plan(placed, plan, digits.example_input, data=data)

    _same_place(result.model, placed)
    assert model_fingerprint(placed) == before
    assert (preview.table["assigned_ratio"] > 0).any()
    assert (result.report["achieved_ratio"] > 0).any()
    assert pe.evaluate(result.model, data)["examples"] == EXAMPLES


@pytest.mark.parametrize("device, dtype", CASES)
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_heads_and_global_masks_prune_a_token_model_on_its_device(device: str, dtype: torch.dtype, scope: str) -> None:
    model = _tiny_gpt(device, dtype)
    tokens = torch.randint(0, 50, (1, 8))

    heads = pe.apply_plan(model, pe.PruningPlan(granularity="head", scope=scope, global_ratio=0.5), tokens)
    masks = pe.apply_plan(model, pe.PruningPlan(scope=scope, global_ratio=0.5), tokens)

    for result in (heads, masks):
        _same_place(result.model, model)
        assert (result.report["achieved_ratio"] > 0).any()
    assert [layer.heads for layer in pe.attention_layers(heads.model)] == [2, 2]
    assert pe.evaluate(masks.model, pe.EvalData(torch.randint(0, 50, (4, 8))), reference=model)["cosine"] > 0


def test_head_ablation_runs_token_ids_on_the_models_dtype() -> None:
    model = _tiny_gpt("cpu", torch.bfloat16)
    layer = pe.attention_layers(model)[0]

    scores = pe.importance(model, "ablation", pe.EvalData(torch.randint(0, 50, (8, 8))), layers=[layer.query])

    assert scores[layer.query].shape == (32,)


def test_batchnorm_recalibration_keeps_dtype(placed: nn.Module, data: pe.EvalData) -> None:
    calibrated = pe.recalibrate_batchnorm(placed, data)

    _same_place(calibrated, placed)
    norm = next(module for module in calibrated.modules() if isinstance(module, nn.BatchNorm2d))
    assert norm.running_mean.dtype == model_dtype(placed)


# --- sensitivity ------------------------------------------------------------------------------------


def test_sensitivity_scan_runs_in_process_on_the_model(placed: nn.Module, data: pe.EvalData) -> None:
    layer = pe.prunable_layers(placed)[0].name

    table = pe.sensitivity_scan(placed, data, [0.5], layers=[layer], executor=SerialExecutor())

    assert table["metric"].notna().all() and (table["nonzero"] < table["params"]).all()


def test_a_worker_process_scans_a_float64_model_in_float64(digits: pe.ModelBundle, data: pe.EvalData) -> None:
    model = place_model(digits.model, "cpu", torch.float64)
    layer = pe.prunable_layers(model)[0].name
    serial = pe.sensitivity_scan(model, data, [0.5], layers=[layer], executor=SerialExecutor())
    pe.sensitivity.clear_scan_cache()

    pooled = pe.sensitivity_scan(model, data, [0.5], layers=[layer], executor=ProcessExecutor(1))

    assert pooled["metric"].tolist() == serial["metric"].tolist()


def test_a_worker_without_the_models_device_says_why(digits: pe.ModelBundle, data: pe.EvalData) -> None:
    settings = ScanSettings("unstructured", "l1", data.inputs[:1], "accuracy", None, None, device="cuda:0")
    payload = portable(digits.model, data, settings)

    if torch.cuda.is_available():
        model, _, _ = unpack(payload)
        assert model_device(model).type == "cuda"
    else:
        with pytest.raises(ExecutorError, match="no cuda device"):
            unpack(payload)


def test_an_accelerator_model_is_scanned_in_process() -> None:
    assert isinstance(default_executor(1000, "cuda:0"), SerialExecutor)


# --- training -------------------------------------------------------------------------------------


def test_fine_tune_iterative_and_sparse_training_keep_the_place(placed: nn.Module, digits: pe.ModelBundle) -> None:
    train = digits.train_data.subset(32)
    plan = pe.PruningPlan(global_ratio=0.5)
    pruned = pe.apply_plan(placed, plan, digits.example_input).model

    tuned = pe.fine_tune(pruned, train, epochs=1)
    stepped = pe.iterative_prune(placed, plan, train, train, steps=2)
    slimmed = pe.train_sparse(placed, train, 1e-4, 1, target="bn")

    for model in (tuned, stepped.model, slimmed):
        _same_place(model, placed)
    zeros = pruned.fc.weight == 0
    assert (tuned.fc.weight[zeros] == 0).all(), "pruned weights stay zero"


# --- measuring and exporting ----------------------------------------------------------------------


def test_summary_and_latency_run_the_model_in_its_dtype(placed: nn.Module, digits: pe.ModelBundle) -> None:
    summary = pe.model_summary(placed, digits.example_input)
    device = model_device(placed).type

    table = pe.compare_latency({"a": placed, "b": placed}, digits.example_input, device=device, max_seconds=0.2)
    profile = pe.latency_profile(placed, digits.example_input, device=device)

    assert summary["flops"] is not None and summary["flops"] > 0
    assert table["dtype"].tolist() == [str(model_dtype(placed)).removeprefix("torch.")] * 2
    assert len(profile) > 0


class _NoHalf(nn.Module):
    """A model with an op that has no float16 kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float16:
            raise NotImplementedError("'addmm' not implemented for 'Half'")
        return self.linear(x)


def test_latency_in_a_dtype_without_kernels_falls_back_to_float32_and_says_so() -> None:
    table = pe.compare_latency({"m": _NoHalf()}, torch.randn(2, 4), dtype=torch.float16, max_seconds=0.1)

    assert table["dtype"].tolist() == ["float32"]


def test_latency_times_a_half_precision_copy_without_touching_the_model(digits: pe.ModelBundle) -> None:
    table = pe.compare_latency({"m": digits.model}, digits.example_input, dtype=torch.bfloat16, max_seconds=0.1)

    assert table["dtype"].tolist() == ["bfloat16"]
    assert model_dtype(digits.model) == torch.float32


@pytest.mark.parametrize("fmt", [fmt for fmt in pe.EXPORT_FORMATS if fmt != "transformers"])
def test_export_traces_the_model_in_its_dtype(placed: nn.Module, digits: pe.ModelBundle, fmt: str) -> None:
    assert len(pe.export_model(placed, fmt, example_input=digits.example_input)) > 0


@pytest.mark.parametrize("device, dtype", CASES)
def test_sparse_runtime_converts_or_says_why(device: str, dtype: torch.dtype) -> None:
    bundle = load_sample("digits_mlp")
    model = place_model(bundle.model, device, dtype)
    pruned = pe.apply_plan(model, pe.PruningPlan(global_ratio=0.95), bundle.example_input).model

    report = pe.sparse_runtime_report(pruned)
    sparse = pe.sparse_runtime(pruned)
    inputs = placement(sparse).inputs(bundle.example_input)

    torch.testing.assert_close(sparse(inputs), pruned(inputs), rtol=1e-5, atol=1e-6)
    assert report["converted"].eq(report["kept_dense_because"].isna()).all(), "a layer left dense says why"
    if dtype in SPARSE_DTYPES:
        assert report[["dense_us_b1", "sparse_us_b32"]].notna().all().all(), "every candidate is timed on its device"
    else:
        assert (report["kept_dense_because"] == pe.KeptDense.DTYPE).all()


def test_device_memory_is_none_on_the_cpu() -> None:
    assert device_memory("cpu") is None


@NO_CUDA
def test_device_memory_reports_cuda_use() -> None:
    memory = device_memory("cuda")
    assert memory is not None and memory["total"] > 0 and memory["free"] <= memory["total"]
