"""Re-estimating BatchNorm statistics after channel pruning."""

from __future__ import annotations

import pytest
import torch
from model_zoo import ZOO_BY_NAME

import prune_engine as pe
from sample_models import load_sample


def test_recalibration_restores_accuracy_after_channel_pruning() -> None:
    bundle = load_sample("digits_resnet")
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3)
    plain = pe.apply_plan(bundle.model, plan, bundle.example_input).model
    calibrated_plan = pe.PruningPlan(granularity="channel", global_ratio=0.3, recalibrate_bn=True)
    calibrated = pe.apply_plan(
        bundle.model, calibrated_plan, bundle.example_input, calibration_data=bundle.train_data
    ).model
    plain_accuracy = pe.evaluate(plain, bundle.eval_data)["accuracy"]
    calibrated_accuracy = pe.evaluate(calibrated, bundle.eval_data)["accuracy"]
    assert calibrated_accuracy >= 0.95
    assert calibrated_accuracy > plain_accuracy
    for (name, weight), (_, same) in zip(plain.named_parameters(), calibrated.named_parameters(), strict=True):
        assert torch.equal(weight, same), f"{name}: only statistics change, never weights"


def test_recalibration_changes_only_batchnorm_statistics_of_a_copy() -> None:
    model = ZOO_BY_NAME["plain_cnn"].build()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    data = pe.EvalData(torch.randn(64, 3, 8, 8) * 3 + 1)
    calibrated = pe.recalibrate_batchnorm(model, data)
    assert all(torch.equal(tensor, model.state_dict()[name]) for name, tensor in before.items())
    assert not calibrated.training
    changed = {name for name, tensor in calibrated.state_dict().items() if not torch.equal(tensor, before[name])}
    assert changed and all("running_" in name or "num_batches" in name for name in changed)
    assert calibrated.features[1].momentum == model.features[1].momentum


def test_a_plan_that_recalibrates_needs_data() -> None:
    entry = ZOO_BY_NAME["plain_cnn"]
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3, recalibrate_bn=True)
    with pytest.raises(pe.InvalidPlanError, match="needs data"):
        pe.apply_plan(entry.build(), plan, entry.example_input())
    assert pe.PruningPlan.from_json(plan.to_json()).recalibrate_bn is True


def test_a_deferred_re_estimation_finishes_into_what_apply_plan_returns_at_once() -> None:
    bundle = load_sample("digits_resnet")
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.4, recalibrate_bn=True)
    calibration = bundle.train_data.subset(128)
    at_once = pe.apply_plan(bundle.model, plan, bundle.example_input, calibration_data=calibration)
    draft = pe.apply_plan(bundle.model, plan, bundle.example_input, calibration_data=calibration, defer_batchnorm=True)
    assert draft.batchnorm_pending and not at_once.batchnorm_pending
    draft_state = {name: tensor.clone() for name, tensor in draft.model.state_dict().items()}
    finished = pe.finish_batchnorm(draft, calibration)
    assert not finished.batchnorm_pending and finished.model is not draft.model
    assert finished.model.state_dict().keys() == at_once.model.state_dict().keys()
    for name, tensor in at_once.model.state_dict().items():
        assert torch.equal(finished.model.state_dict()[name], tensor), name
        assert torch.equal(draft.model.state_dict()[name], draft_state[name]), f"{name}: the draft is left as it was"
    assert not torch.equal(draft.model.bn1.running_mean, at_once.model.bn1.running_mean)
    assert finished.report.equals(at_once.report) and draft.report.equals(at_once.report)
    assert pe.finish_batchnorm(at_once, calibration) is at_once


def test_nothing_is_pending_when_the_plan_does_not_re_estimate_or_the_model_has_no_batchnorm() -> None:
    bundle = load_sample("digits_resnet")
    plain = pe.PruningPlan(granularity="channel", global_ratio=0.4)
    assert not pe.apply_plan(bundle.model, plain, bundle.example_input, defer_batchnorm=True).batchnorm_pending
    mlp = load_sample("digits_mlp")
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.4, recalibrate_bn=True)
    result = pe.apply_plan(mlp.model, plan, mlp.example_input, calibration_data=mlp.train_data, defer_batchnorm=True)
    assert not result.batchnorm_pending
