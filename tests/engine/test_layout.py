"""Evaluation runs convolutional models as a channels-last copy: same outputs, the model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prune_engine as pe
from prune_engine import layout
from sample_models import load_sample


class ViewingCNN(nn.Module):
    """A CNN that flattens with `view`, which a channels-last activation refuses (with `reshape`, which
    takes any layout, when not `views`)."""

    def __init__(self, views: bool = True) -> None:
        super().__init__()
        self.views = views
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.head(x.view(x.size(0), -1) if self.views else x.reshape(x.size(0), -1))


def plain_outputs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        outputs = model(inputs)
    model.train(was_training)
    return outputs


def test_a_cnn_is_evaluated_in_channels_last_with_the_same_outputs_and_left_as_it_was() -> None:
    bundle = load_sample("digits_cnn")
    model = bundle.model
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert layout.wants_channels_last(model)
    copied = layout.channels_last_copy(model)
    assert copied is not model and copied.conv2.weight.is_contiguous(memory_format=torch.channels_last)

    outputs = pe.model_outputs(model, bundle.eval_data)

    torch.testing.assert_close(outputs, plain_outputs(model, bundle.eval_data.inputs), atol=1e-5, rtol=1e-5)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]) and tensor.is_contiguous(), name
    assert not model.training


def test_a_model_in_training_mode_is_evaluated_on_its_running_statistics_and_stays_in_training_mode() -> None:
    torch.manual_seed(0)
    model = ViewingCNN(views=False)
    model.bn.running_mean.uniform_(-1, 1)
    model.train()
    assert layout.channels_last_copy(model) is not None
    data = pe.EvalData(torch.randn(20, 1, 8, 8), torch.randint(0, 10, (20,)))
    outputs = pe.model_outputs(model, data)
    assert model.training
    torch.testing.assert_close(outputs, plain_outputs(model, data.inputs), atol=1e-5, rtol=1e-5)


def test_a_model_that_views_its_activations_falls_back_to_its_own_layout() -> None:
    torch.manual_seed(0)
    model = ViewingCNN().eval()
    inputs = torch.randn(6, 1, 8, 8)
    with pytest.raises(RuntimeError, match="view"):
        layout.channels_last_copy(model)(layout.channels_last_inputs(inputs))
    outputs = pe.model_outputs(model, pe.EvalData(inputs))
    torch.testing.assert_close(outputs, plain_outputs(model, inputs))


def test_wrong_inputs_still_say_what_does_not_fit() -> None:
    model = ViewingCNN().eval()
    with pytest.raises(pe.DataError, match=r"cannot run on inputs of shape \(4, 3, 8, 8\)"):
        pe.model_outputs(model, pe.EvalData(torch.randn(4, 3, 8, 8)))


def test_models_without_convolutions_scripted_or_too_large_run_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not layout.wants_channels_last(load_sample("digits_mlp").model)
    assert not layout.wants_channels_last(torch.jit.script(ViewingCNN()))
    assert layout.wants_channels_last(ViewingCNN())
    monkeypatch.setattr(layout, "CHANNELS_LAST_MAX_BYTES", 1_000)
    assert layout.channels_last_copy(ViewingCNN()) is None
