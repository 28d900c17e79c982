"""What the app offers a model: head-level criteria only with attention heads, and why training is missing."""

from __future__ import annotations

import dataclasses

import torch

import prune_engine as pe
from sample_models import load_sample
from tests.engine.test_heads import TinyTransformer
from workbench import capabilities, tasks
from workbench.session import LoadedModel


def loaded(model: torch.nn.Module, with_training: bool = True) -> LoadedModel:
    inputs = torch.randn(8, 4, 48)
    data = pe.EvalData(inputs, torch.zeros(8, dtype=torch.long))
    bundle = pe.ModelBundle(
        name="tiny", model=model, example_input=inputs[:1], eval_data=data, train_data=data if with_training else None
    )
    return LoadedModel.from_bundle(bundle)


def test_head_ablation_is_offered_only_to_models_with_attention_heads() -> None:
    cnn = LoadedModel.from_bundle(load_sample("digits_resnet"))
    transformer = loaded(TinyTransformer())
    for offered in (capabilities.criteria, capabilities.inspectable_criteria):
        assert "ablation" not in offered(cnn)
        assert "ablation" in offered(transformer)
        assert "l1" in offered(cnn) and "l1" in offered(transformer)


def test_a_batchnorm_model_without_training_data_says_why_it_cannot_re_estimate() -> None:
    resnet = load_sample("digits_resnet")
    with_training = LoadedModel.from_bundle(resnet)
    without = LoadedModel.from_bundle(dataclasses.replace(resnet, train_data=None))
    assert capabilities.can_recalibrate(with_training) and capabilities.missing_training_data(with_training) is None
    assert not capabilities.can_recalibrate(without)
    assert capabilities.missing_training_data(without) == capabilities.NO_TRAINING
    assert capabilities.missing_training_data(loaded(TinyTransformer(), with_training=False)) is None, "no BatchNorm"


def test_calibration_criteria_score_on_training_examples_never_the_test_set() -> None:
    bundle = load_sample("digits_mlp")
    for criterion in capabilities.CALIBRATED:
        assert capabilities.criterion_data(bundle, criterion) is bundle.train_data
    assert capabilities.criterion_data(bundle, "taylor") is bundle.eval_data, "Inspect's criteria keep the test set"
    untrained = dataclasses.replace(bundle, train_data=None)
    assert capabilities.criterion_data(untrained, "wanda") is untrained.eval_data


def test_minilm_calibrates_and_distils_on_sentences_it_is_not_judged_on() -> None:
    bundle = load_sample("minilm")
    assert capabilities.criterion_data(bundle, "wanda") is bundle.train_data, "tests/samples checks they differ"
    loaded = LoadedModel.from_bundle(bundle)
    assert tasks.training_problem(loaded, "distill") is None
    assert "labels" in tasks.training_problem(loaded, "fine_tune")
