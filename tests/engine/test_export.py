"""Exports reload to the same outputs, including channel-pruned models rebuilt from their sidecar."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torch_pruning as tp
from torch import nn

from prune_engine.architectures import build_architecture
from prune_engine.errors import ModelLoadError, PruneScopeError
from prune_engine.export import (
    EXPORT_FORMATS,
    ONNX_OPSET,
    ExportError,
    architecture_sidecar,
    export_bundle,
    export_model,
    rebuild_from_sidecar,
)
from prune_engine.loading import StateDictMismatchError, load_model

ATOL = 1e-4


def _sample(name: str, seed: int = 0) -> nn.Module:
    """A sample architecture with seeded weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_architecture(name)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    return model.eval()


def _channel_pruned(name: str, ratio: float = 0.5) -> nn.Module:
    """A sample architecture with `ratio` of its channels removed by Torch-Pruning (output layer kept)."""
    model = _sample(name)
    head = [module for module in model.modules() if isinstance(module, nn.Linear)][-1]
    pruner = tp.pruner.BasePruner(
        model,
        torch.randn(1, 1, 8, 8),
        importance=tp.importance.GroupMagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=[head],
    )
    pruner.step()
    return model.eval()


@pytest.fixture
def example() -> torch.Tensor:
    return torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(4))


def _reloaded_outputs(model: nn.Module, fmt: str, name: str, example: torch.Tensor, sidecar=None) -> np.ndarray:
    """Export `model` as `fmt`, load it back the way a user would, and run it on `example`."""
    data = export_model(model, fmt, example[:1])
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        return session.run(None, {"input": example.numpy()})[0]
    if fmt == "torchscript":
        loaded = load_model(data, allow_code=True)
    else:
        loaded = load_model(data, architecture=name, sidecar=sidecar)
    with torch.inference_mode():
        return loaded(example).numpy()


@pytest.mark.parametrize("fmt", [fmt for fmt in EXPORT_FORMATS if fmt != "transformers"])
@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn", "digits_resnet"])
def test_export_round_trip_matches_pytorch(name, fmt, example):
    model = _sample(name)
    with torch.inference_mode():
        expected = model(example).numpy()
    np.testing.assert_allclose(_reloaded_outputs(model, fmt, name, example), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("fmt", [fmt for fmt in EXPORT_FORMATS if fmt != "transformers"])
@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet"])
def test_channel_pruned_export_round_trip_at_the_smaller_shapes(name, fmt, example):
    model = _channel_pruned(name)
    sidecar = json.loads(json.dumps(architecture_sidecar(model)))
    assert sidecar["modules"]["conv1"]["out_channels"] == build_architecture(name).conv1.out_channels // 2
    with torch.inference_mode():
        expected = model(example).numpy()
    actual = _reloaded_outputs(model, fmt, name, example, sidecar=sidecar)
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)


def test_pruned_state_dict_needs_the_sidecar_and_is_smaller():
    model = _channel_pruned("digits_cnn")
    full = export_model(_sample("digits_cnn"), "safetensors")
    pruned = export_model(model, "safetensors")
    assert len(pruned) < 0.5 * len(full)
    with pytest.raises(StateDictMismatchError, match="shape mismatch"):
        load_model(pruned, architecture="digits_cnn")


def test_rebuild_from_sidecar_resizes_a_fresh_instance_and_leaves_a_given_one_untouched(example):
    pruned = _channel_pruned("digits_resnet")
    sidecar = architecture_sidecar(pruned)
    original = build_architecture("digits_resnet")
    rebuilt = rebuild_from_sidecar(original, json.dumps(sidecar))
    assert original.conv1.out_channels == 64
    assert rebuilt.conv1.out_channels == pruned.conv1.out_channels
    for module_name, record in sidecar["modules"].items():
        module = rebuilt.get_submodule(module_name)
        for attribute, value in record.items():
            if attribute != "type":
                assert json.loads(json.dumps(getattr(module, attribute))) == value, (module_name, attribute)
    rebuilt.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(rebuilt.eval()(example), pruned(example), atol=ATOL, rtol=0)
    from_factory = rebuild_from_sidecar(lambda: build_architecture("digits_resnet"), sidecar)
    assert {key: value.shape for key, value in from_factory.state_dict().items()} == {
        key: value.shape for key, value in pruned.state_dict().items()
    }


def test_sidecar_of_another_architecture_or_malformed_is_refused():
    sidecar = architecture_sidecar(_channel_pruned("digits_cnn"))
    with pytest.raises(ModelLoadError, match="does not have"):
        rebuild_from_sidecar(build_architecture("digits_mlp"), sidecar)
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        rebuild_from_sidecar(build_architecture("digits_cnn"), "{oops")
    with pytest.raises(ModelLoadError, match="not a PruneScope architecture"):
        rebuild_from_sidecar(build_architecture("digits_cnn"), {"tensors": {}})
    broken = json.loads(json.dumps(sidecar))
    broken["modules"]["conv1"]["groups"] = "two"
    with pytest.raises(ModelLoadError, match=r"conv1\.groups"):
        rebuild_from_sidecar(build_architecture("digits_cnn"), broken)


def test_sidecar_that_does_not_match_the_weights_file_is_refused_before_resizing():
    weights = export_model(_channel_pruned("digits_cnn", ratio=0.5), "state_dict")
    other = architecture_sidecar(_channel_pruned("digits_cnn", ratio=0.25))
    with pytest.raises(ModelLoadError, match="does not belong to this weights file"):
        load_model(weights, architecture="digits_cnn", sidecar=other)
    huge = architecture_sidecar(_sample("digits_cnn"))
    huge["tensors"]["fc.weight"]["shape"] = [10, 10**12]
    with pytest.raises(ModelLoadError, match="does not belong to this weights file"):
        load_model(export_model(_sample("digits_cnn"), "state_dict"), architecture="digits_cnn", sidecar=huge)


def test_export_bundle_holds_model_sidecar_and_plan(example):
    model = _channel_pruned("digits_cnn")
    bundle = export_bundle(model, "safetensors", example[:1], plan={"granularity": "channel", "global_ratio": 0.5})
    assert set(bundle) == {"model.safetensors", "architecture.json", "plan.json"}
    assert json.loads(bundle["plan.json"]) == {"granularity": "channel", "global_ratio": 0.5}
    sidecar = json.loads(bundle["architecture.json"])
    loaded = load_model(bundle["model.safetensors"], architecture="digits_cnn", sidecar=sidecar)
    torch.testing.assert_close(loaded(example), model(example), atol=ATOL, rtol=0)
    assert set(export_bundle(model, "onnx", example[:1])) == {"model.onnx", "architecture.json"}


def test_onnx_has_a_dynamic_batch_axis_and_the_opset():
    proto = onnx.load_model_from_string(export_model(_sample("digits_mlp"), "onnx", torch.zeros(1, 1, 8, 8)))
    assert max(opset.version for opset in proto.opset_import if opset.domain in ("", "ai.onnx")) >= ONNX_OPSET
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"


def test_tied_weights_export_to_safetensors_and_reload(example):
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encode = nn.Linear(64, 64, bias=False)
            self.decode = nn.Linear(64, 64, bias=False)
            self.decode.weight = self.encode.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decode(torch.relu(self.encode(x.flatten(1))))

    torch.manual_seed(0)
    model = Tied().eval()
    loaded = load_model(export_model(model, "safetensors"), architecture=Tied)
    torch.testing.assert_close(loaded(example), model(example))
    assert loaded.decode.weight is loaded.encode.weight


def test_unstructured_pruning_masks_are_folded_on_export(example):
    model = _sample("digits_cnn")
    torch.nn.utils.prune.l1_unstructured(model.conv2, "weight", amount=0.7)
    for fmt in ("state_dict", "safetensors"):
        loaded = load_model(export_model(model, fmt), architecture="digits_cnn")
        torch.testing.assert_close(loaded(example), model(example), atol=ATOL, rtol=0)
        assert float((loaded.conv2.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.01)


def test_export_errors_are_prunescope_errors():
    model = _sample("digits_mlp")
    with pytest.raises(ExportError, match="Unknown export format 'tflite'; use one of state_dict"):
        export_model(model, "tflite")
    with pytest.raises(ExportError, match="needs an example input"):
        export_model(model, "onnx")

    class Unscriptable(nn.Module):
        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return inputs[0]

    with pytest.raises(ExportError, match="pass example_input to trace it"):
        export_model(Unscriptable(), "torchscript")
    with pytest.raises(ExportError, match="could not be exported to ONNX"):
        export_model(model, "onnx", torch.zeros(1, 3))
    assert issubclass(ExportError, PruneScopeError)


def test_torchscript_without_example_input_scripts_the_model(example):
    model = _sample("digits_mlp")
    loaded = load_model(export_model(model, "torchscript"), allow_code=True)
    torch.testing.assert_close(loaded(example), model(example))


def test_export_leaves_the_model_in_its_mode():
    model = _sample("digits_cnn").train()
    export_model(model, "onnx", torch.zeros(1, 1, 8, 8))
    assert model.training
