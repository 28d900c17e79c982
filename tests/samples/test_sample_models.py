"""The shipped sample models: they load trained, match their recorded figures, and retrain identically."""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

import prune_engine as pe
from prune_engine.errors import UnknownSampleError
from sample_models import ARCHITECTURES, SampleInfo, digits_data, list_samples, load_sample, sample_info
from sample_models.train import train_model

SAMPLES = ["digits_mlp", "digits_cnn", "digits_resnet"]


def test_list_samples_runs_from_smallest_to_largest() -> None:
    assert list_samples() == [*SAMPLES, "tiny_gpt", "minilm"]


@pytest.mark.parametrize("name", SAMPLES)
def test_load_sample_gives_a_trained_eval_mode_bundle(name: str) -> None:
    bundle = load_sample(name)

    assert isinstance(bundle, pe.ModelBundle)
    assert bundle.name == name
    assert bundle.task == "classification"
    assert bundle.description == sample_info(name).description
    assert not any(module.training for module in bundle.model.modules())
    assert bundle.example_input.shape == (1, 1, 8, 8)
    assert bundle.example_input.dtype == torch.float32
    assert torch.equal(bundle.example_input, bundle.eval_data.inputs[:1])
    for data in (bundle.eval_data, bundle.train_data):
        assert data.inputs.shape[1:] == (1, 8, 8)
        assert data.inputs.dtype == torch.float32
        assert data.labels.dtype == torch.int64
    assert bundle.metadata["input_shape"] == [1, 8, 8]
    assert bundle.metadata["classes"] == 10
    with torch.inference_mode():
        assert bundle.model(bundle.example_input).shape == (1, 10)


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_accuracy_on_eval_data_matches_the_recorded_figure(name: str) -> None:
    bundle = load_sample(name)
    info = sample_info(name)

    accuracy = pe.evaluate(bundle.model, bundle.eval_data)["accuracy"]

    assert accuracy >= 0.97
    assert accuracy == pytest.approx(info.accuracy, abs=0.005)
    assert bundle.metadata["accuracy"] == info.accuracy


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_info_describes_the_sample(name: str) -> None:
    info = sample_info(name)

    assert isinstance(info, SampleInfo)
    assert info.name == name
    assert info.task == "classification"
    assert info.architecture in ARCHITECTURES
    assert info.params == sum(parameter.numel() for parameter in ARCHITECTURES[info.architecture]().parameters())
    assert len(info.description) > 40


def test_unknown_sample_raises_an_error_naming_the_valid_samples() -> None:
    with pytest.raises(UnknownSampleError, match="digits_mlp, digits_cnn, digits_resnet"):
        load_sample("digits_vgg")
    with pytest.raises(UnknownSampleError):
        sample_info("digits_vgg")


def test_each_load_returns_an_independent_model() -> None:
    first, second = load_sample("digits_mlp"), load_sample("digits_mlp")
    assert first.model is not second.model

    with torch.no_grad():
        first.model.fc1.weight.zero_()

    assert torch.count_nonzero(second.model.fc1.weight) > 0


def test_digits_split_is_deterministic_disjoint_and_stratified() -> None:
    train, test = digits_data()
    again_train, again_test = digits_data.__wrapped__()

    for split, again in ((train, again_train), (test, again_test)):
        assert torch.equal(split.inputs, again.inputs)
        assert torch.equal(split.labels, again.labels)
    assert (len(train), len(test)) == (1437, 360)
    train_images = {row.numpy().tobytes() for row in train.inputs.reshape(len(train), -1)}
    test_images = {row.numpy().tobytes() for row in test.inputs.reshape(len(test), -1)}
    assert train_images.isdisjoint(test_images)
    assert torch.bincount(test.labels, minlength=10).min() >= 35
    assert float(train.inputs.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(train.inputs.std()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name", SAMPLES)
def test_architecture_builds_a_traceable_model_with_one_module_per_activation(name: str) -> None:
    model = ARCHITECTURES[name]().eval()
    inputs = torch.randn(5, 1, 8, 8)

    with torch.inference_mode():
        assert model(inputs).shape == (5, 10)
    assert len(list(model.named_modules(remove_duplicate=False))) == len(list(model.named_modules()))
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs[:1])
    assert list(graph.get_all_groups())


def test_resnet_has_a_strided_stage_with_a_downsample_shortcut() -> None:
    model = ARCHITECTURES["digits_resnet"]()

    downsample = model.layer2[0].downsample
    assert isinstance(downsample[0], nn.Conv2d)
    assert downsample[0].stride == (2, 2)
    assert isinstance(downsample[1], nn.BatchNorm2d)
    assert model.layer1[0].relu1 is not model.layer1[0].relu_out


def test_training_is_deterministic_and_leaves_torch_settings_alone() -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()

    first = train_model("digits_mlp", epochs=1).state_dict()
    second = train_model("digits_mlp", epochs=1).state_dict()

    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
