"""Sensitivity scans (one layer at a time over a ratio grid) and ratio suggestions from them."""

from __future__ import annotations

import hashlib
import sys
import threading

import pandas as pd
import pytest
import torch
from torch import nn

import prune_engine as pe
from prune_engine import sensitivity
from prune_engine.metrics import count_parameters
from prune_engine.sensitivity import (
    SCAN_COLUMNS,
    ExecutorError,
    ProcessExecutor,
    RayExecutor,
    ScanCancelled,
    SerialExecutor,
    TargetUnreachableError,
    default_executor,
    executors,
    sensitivity_scan,
    suggest_ratios,
)
from sample_models import load_sample


def state_hash(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    digest.update(repr([m.training for m in model.modules()]).encode())
    return digest.hexdigest()


class CountingExecutor(SerialExecutor):
    """The serial executor, counting the jobs it runs."""

    def __init__(self) -> None:
        self.jobs = 0

    def run(self, model, data, settings, jobs):
        for job, row in super().run(model, data, settings, jobs):
            self.jobs += 1
            yield job, row


@pytest.fixture(scope="module")
def mlp() -> pe.ModelBundle:
    return load_sample("digits_mlp")


@pytest.fixture(scope="module")
def cnn() -> pe.ModelBundle:
    return load_sample("digits_cnn")


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    sensitivity.clear_scan_cache()


@pytest.fixture(scope="module")
def mlp_scan(mlp: pe.ModelBundle) -> pd.DataFrame:
    return sensitivity_scan(mlp.model, mlp.eval_data, (0.2, 0.5, 0.8, 0.95), executor=SerialExecutor())


@pytest.fixture(scope="module")
def cnn_channel_scan(cnn: pe.ModelBundle) -> pd.DataFrame:
    return sensitivity_scan(
        cnn.model, cnn.eval_data, (0.25, 0.5, 0.75), granularity="channel", executor=SerialExecutor()
    )


def test_unstructured_scan_has_a_row_per_layer_and_ratio_and_leaves_the_model_alone(mlp: pe.ModelBundle) -> None:
    before = state_hash(mlp.model)

    scan = sensitivity_scan(mlp.model, mlp.eval_data, (0.5, 0.2, 0.95), executor=SerialExecutor())

    assert state_hash(mlp.model) == before
    assert list(scan.columns) == SCAN_COLUMNS
    assert list(scan["layer"]) == [name for name in ("fc1", "fc2", "fc3") for _ in range(3)]
    assert list(scan["ratio"]) == [0.2, 0.5, 0.95] * 3
    accuracy = pe.evaluate(mlp.model, mlp.eval_data)["accuracy"]
    assert (scan["baseline"] == accuracy).all() and (scan["metric_name"] == "accuracy").all()
    assert (scan["drop"] >= -0.02).all(), "pruning one layer rarely helps"
    assert (scan.groupby("layer")["drop"].last() > 0).all(), "95 % of any layer must cost accuracy"
    weights = {layer.name: layer.weight_shape[0] * layer.weight_shape[1] for layer in pe.prunable_layers(mlp.model)}
    expected_saved = [round(ratio * weights[layer]) for layer, ratio in zip(scan["layer"], scan["ratio"], strict=True)]
    assert list(scan["params_saved"]) == expected_saved
    assert (scan["flops_saved"] == 0).all(), "masks keep the dense FLOPs"
    assert (scan["granularity"] == "unstructured").all() and (scan["criterion"] == "l1").all()


def test_channel_scan_measures_real_savings_and_notes_the_output_layer(
    cnn: pe.ModelBundle, cnn_channel_scan: pd.DataFrame
) -> None:
    scan = cnn_channel_scan.set_index(["layer", "ratio"])
    for layer in ("conv1", "conv2", "conv3"):
        assert scan.loc[(layer, 0.25), "params_saved"] < scan.loc[(layer, 0.75), "params_saved"]
        assert scan.loc[(layer, 0.5), "flops_saved"] > 0
        assert scan.loc[(layer, 0.5), "params"] < count_parameters(cnn.model)[0]
    fc = cnn_channel_scan[cnn_channel_scan["layer"] == "fc"]
    assert len(fc) == 3 and fc["metric"].isna().all() and (fc["params_saved"] == 0).all()
    assert fc["note"].str.startswith("cannot lose channels").all()


def test_scan_without_labels_measures_agreement_with_the_original(mlp: pe.ModelBundle) -> None:
    unlabelled = pe.EvalData(mlp.eval_data.inputs)

    scan = sensitivity_scan(mlp.model, unlabelled, (0.5,), layers=["fc2"], executor=SerialExecutor())

    assert list(scan["layer"]) == ["fc2"]
    assert scan["metric_name"].iloc[0] == "agreement" and scan["baseline"].iloc[0] == 1.0
    assert 0.5 < scan["metric"].iloc[0] <= 1.0
    assert scan["loss"].iloc[0] > 0, "1 − cosine to the original grows once weights are gone"


def test_progress_is_reported_per_job_and_cancel_keeps_the_finished_rows(mlp: pe.ModelBundle) -> None:
    cancel = threading.Event()
    reports: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        reports.append((fraction, message))
        if len(reports) == 2:
            cancel.set()

    with pytest.raises(ScanCancelled, match="after 2 of 6") as raised:
        sensitivity_scan(
            mlp.model, mlp.eval_data, (0.3, 0.6), executor=SerialExecutor(), progress=progress, cancel=cancel
        )

    assert [fraction for fraction, _ in reports] == [1 / 6, 2 / 6]
    assert reports[0][1].startswith("fc1 at 30%: accuracy")
    assert list(raised.value.partial["ratio"]) == [0.3, 0.6] and list(raised.value.partial["layer"]) == ["fc1"] * 2
    assert isinstance(raised.value, pe.PruneScopeError)


def test_a_repeated_scan_comes_from_the_cache(mlp: pe.ModelBundle) -> None:
    executor = CountingExecutor()
    first = sensitivity_scan(mlp.model, mlp.eval_data, (0.5,), executor=executor)
    second = sensitivity_scan(mlp.model, mlp.eval_data, (0.5,), executor=executor)

    assert executor.jobs == 3
    pd.testing.assert_frame_equal(first, second)
    second.loc[0, "metric"] = -1.0
    assert sensitivity_scan(mlp.model, mlp.eval_data, (0.5,), executor=executor).loc[0, "metric"] != -1.0
    sensitivity_scan(mlp.model, mlp.eval_data, (0.5,), criterion="l2", executor=executor)
    assert executor.jobs == 6, "another criterion is another scan"


def test_process_pool_gives_the_same_rows_as_the_serial_executor_with_the_batchnorm_policy(
    cnn: pe.ModelBundle,
) -> None:
    ratios = (0.25, 0.5)
    policy = {"recalibrate_bn": True, "calibration_data": cnn.train_data.subset(128), "latency": False}
    serial = sensitivity_scan(
        cnn.model, cnn.eval_data, ratios, granularity="channel", executor=SerialExecutor(), **policy
    )
    sensitivity.clear_scan_cache()

    pooled = sensitivity_scan(
        cnn.model, cnn.eval_data, ratios, granularity="channel", executor=ProcessExecutor(2), **policy
    )

    pd.testing.assert_frame_equal(serial.drop(columns="seconds"), pooled.drop(columns="seconds"), check_exact=True)
    assert pooled["recalibrate_bn"].all()
    plain = sensitivity_scan(cnn.model, cnn.eval_data, ratios, granularity="channel", latency=False)
    assert not plain["recalibrate_bn"].any()
    assert not plain["metric"].equals(pooled["metric"]), "workers re-estimated BatchNorm on the calibration data"


def test_default_executor_follows_the_ray_address_and_the_job_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sensitivity.RAY_ADDRESS_ENV, raising=False)
    assert isinstance(default_executor(3), SerialExecutor)
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 2)
    assert isinstance(default_executor(100), ProcessExecutor)
    monkeypatch.setenv(sensitivity.RAY_ADDRESS_ENV, "ray://head:10001")
    executor = default_executor(3)
    assert isinstance(executor, RayExecutor) and executor.address == "ray://head:10001"


def test_ray_executor_without_ray_installed_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, mlp: pe.ModelBundle
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ExecutorError, match="install ray"):
        sensitivity_scan(mlp.model, mlp.eval_data, (0.5,), executor=RayExecutor(address="auto"))


def test_scan_refuses_settings_it_cannot_scan(mlp: pe.ModelBundle) -> None:
    with pytest.raises(pe.InvalidPlanError, match="N:M"):
        sensitivity_scan(mlp.model, mlp.eval_data, (0.5,), granularity="n:m")
    with pytest.raises(pe.InvalidPlanError, match="below 1"):
        sensitivity_scan(mlp.model, mlp.eval_data, (0.5, 1.0))
    with pytest.raises(pe.UnknownLayerError, match="fc9"):
        sensitivity_scan(mlp.model, mlp.eval_data, (0.5,), layers=["fc9"])


def test_suggested_ratios_meet_the_target_on_a_real_scan(mlp: pe.ModelBundle, mlp_scan: pd.DataFrame) -> None:
    for target in (0.5, 0.8):
        plan = suggest_ratios(mlp_scan, target)

        assert plan.granularity == "unstructured" and plan.criterion == "l1"
        assert set(plan.ratios.values()) <= {0.2, 0.5, 0.8, 0.95}
        _, nonzero_before = count_parameters(mlp.model)
        pruned = pe.apply_plan(mlp.model, plan, mlp.example_input).model
        assert 1 - count_parameters(pruned)[1] / nonzero_before >= target


def test_suggestion_beats_pruning_every_layer_alike(mlp: pe.ModelBundle, mlp_scan: pd.DataFrame) -> None:
    plan = suggest_ratios(mlp_scan, 0.75)
    pruned = pe.apply_plan(mlp.model, plan, mlp.example_input).model
    uniform_plan = pe.PruningPlan(ratios={"fc1": 0.8, "fc2": 0.8, "fc3": 0.8})
    uniform = pe.apply_plan(mlp.model, uniform_plan, mlp.example_input).model

    assert pe.evaluate(pruned, mlp.eval_data)["accuracy"] >= pe.evaluate(uniform, mlp.eval_data)["accuracy"]


def synthetic_scan(sensitive_drop: float) -> pd.DataFrame:
    """Two layers of the same size; `a` loses `sensitive_drop` per 0.5 of ratio, `b` nothing."""
    rows = []
    for layer, drop_per_half in (("a", sensitive_drop), ("b", 0.0)):
        for ratio in (0.5, 0.9):
            rows.append(
                {
                    "layer": layer,
                    "group": layer,
                    "ratio": ratio,
                    "metric": 0.9 - drop_per_half * ratio * 2,
                    "drop": drop_per_half * ratio * 2,
                    "loss_increase": drop_per_half * ratio,
                    "nonzero": 2000 - ratio * 1000,
                    "params_saved": ratio * 1000,
                    "flops": 1e6,
                    "flops_saved": 0.0,
                    "granularity": "unstructured",
                    "criterion": "l2",
                }
            )
    return pd.DataFrame(rows)


def test_suggestion_prunes_the_less_sensitive_layer_first() -> None:
    scan = synthetic_scan(sensitive_drop=0.2)

    assert suggest_ratios(scan, 0.2).ratios == {"b": 0.5}
    assert suggest_ratios(scan, 0.45).ratios == {"b": 0.9}
    assert suggest_ratios(scan, 0.6).ratios == {"a": 0.5, "b": 0.9}
    assert suggest_ratios(scan, 0.6).criterion == "l2"


def test_suggestion_respects_max_drop_and_says_what_is_reachable() -> None:
    scan = synthetic_scan(sensitive_drop=0.2)

    with pytest.raises(TargetUnreachableError, match=r"at most 45\.0%") as raised:
        suggest_ratios(scan, 0.6, max_drop=0.1)
    assert isinstance(raised.value, pe.PruneScopeError)
    with pytest.raises(TargetUnreachableError, match="keeps a model's dense FLOPs"):
        suggest_ratios(scan, 0.2, budget="flops")


def test_channel_suggestion_checked_on_the_model_meets_the_real_reduction(
    cnn: pe.ModelBundle, cnn_channel_scan: pd.DataFrame
) -> None:
    for budget in ("params", "flops"):
        plan = suggest_ratios(cnn_channel_scan, 0.4, budget=budget, model=cnn.model, example_input=cnn.example_input)

        assert plan.granularity == "channel" and "fc" not in plan.ratios
        pruned = pe.apply_plan(cnn.model, plan, cnn.example_input).model
        if budget == "params":
            reduction = 1 - count_parameters(pruned)[1] / count_parameters(cnn.model)[1]
        else:
            reduction = 1 - pe.count_flops(pruned, cnn.example_input) / pe.count_flops(cnn.model, cnn.example_input)
        assert reduction >= 0.4
        assert torch.isfinite(pruned(cnn.example_input)).all()


@pytest.fixture(scope="module")
def resnet() -> pe.ModelBundle:
    return load_sample("digits_resnet")


@pytest.mark.slow
def test_suggestion_scanned_with_the_plans_batchnorm_policy_predicts_its_measured_drop(resnet: pe.ModelBundle) -> None:
    """digits_resnet at −50 % parameters: scanned without re-estimating BatchNorm, the suggestion
    predicted a 0.00-point drop and its plan (which re-estimates) lost 20.8 points."""
    calibration = resnet.train_data.subset(256)
    scan = sensitivity_scan(
        resnet.model,
        resnet.eval_data,
        (0.25, 0.5, 0.75),
        granularity="channel",
        executor=SerialExecutor(),
        recalibrate_bn=True,
        calibration_data=calibration,
        latency=False,
    )
    plan = suggest_ratios(scan, 0.5, model=resnet.model, example_input=resnet.example_input)

    assert scan["recalibrate_bn"].all() and plan.recalibrate_bn
    drops = scan.dropna(subset=["metric"]).drop_duplicates(["group", "ratio"]).set_index(["group", "ratio"])["drop"]
    groups = scan.drop_duplicates("layer").set_index("layer")["group"]
    chosen = {groups[layer]: ratio for layer, ratio in plan.ratios.items()}
    predicted = sum(
        max(0.0, *(drops[group, r] for r in (0.25, 0.5, 0.75) if r <= ratio)) for group, ratio in chosen.items()
    )
    pruned = pe.apply_plan(resnet.model, plan, resnet.example_input, calibration_data=calibration).model
    measured = (
        pe.evaluate(resnet.model, resnet.eval_data)["accuracy"] - pe.evaluate(pruned, resnet.eval_data)["accuracy"]
    )
    assert 1 - count_parameters(pruned)[1] / count_parameters(resnet.model)[1] >= 0.5
    assert measured <= predicted + 0.02


def test_channel_scan_predicts_latency_and_unstructured_scan_has_none(
    cnn: pe.ModelBundle, mlp_scan: pd.DataFrame
) -> None:
    scan = sensitivity_scan(
        cnn.model, cnn.eval_data, (0.5,), granularity="channel", layers=["conv2"], executor=SerialExecutor()
    )

    row = scan.iloc[0]
    assert row["latency_ms"] > 0 and row["latency_batch"] == 1
    assert row["latency_ms"] + row["latency_saved"] == pytest.approx(
        float((scan["latency_ms"] + scan["latency_saved"]).iloc[0])
    )
    assert mlp_scan["latency_ms"].isna().all()
    with pytest.raises(TargetUnreachableError, match="no predicted latency"):
        suggest_ratios(mlp_scan, 0.3, budget="latency")


def test_latency_budget_prunes_where_time_is_saved_for_the_least_drop() -> None:
    scan = synthetic_scan(sensitive_drop=0.2).assign(
        recalibrate_bn=True,
        latency_ms=lambda rows: 10.0 - rows["params_saved"] / 250,
        latency_saved=lambda rows: rows["params_saved"] / 250,
    )
    scan.loc[scan["layer"] == "b", ["latency_ms", "latency_saved"]] = [10.0, 0.0]

    plan = suggest_ratios(scan, 0.15, budget="latency")

    assert plan.ratios == {"a": 0.5} and plan.recalibrate_bn, "only a saves time, and the plan keeps the scan's policy"
    with pytest.raises(TargetUnreachableError, match=r"at most 36\.0%"):
        suggest_ratios(scan, 0.5, budget="latency")
