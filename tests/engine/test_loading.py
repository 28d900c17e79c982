"""Loading user models and evaluation data: formats told by content, safe by default, clear errors."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from torch import nn

import prune_engine as pe
from prune_engine import architectures
from prune_engine.architectures import build_architecture, list_architectures, register_architecture
from prune_engine.data import EvalData
from prune_engine.errors import DataError, ModelLoadError, PruneScopeError, UnsupportedModelError
from prune_engine.export import export_model
from prune_engine.layers import layer_stats, prunable_layers
from prune_engine.loading import (
    ALLOW_CODE_ENV_VAR,
    StateDictMismatchError,
    check_data_fits,
    code_loading_allowed,
    csv_columns,
    detect_format,
    load_eval_data,
    load_model,
    random_eval_data,
)

SAMPLE_ARCHITECTURES = ("digits_mlp", "digits_cnn", "digits_resnet")


class _WritesMarker:
    """Unpickling this calls `open(marker, "w")`: the file appears only if the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _sample(name: str, seed: int = 0) -> nn.Module:
    """A sample architecture with seeded weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_architecture(name)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _torch_bytes(obj: object, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def cnn() -> nn.Module:
    return _sample("digits_cnn")


@pytest.fixture
def example() -> torch.Tensor:
    return torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))


# --- code-carrying files are refused by default -----------------------------------------


def test_torch_save_with_code_is_refused_and_its_code_never_runs(tmp_path, cnn):
    marker = tmp_path / "marker"
    state = dict(cnn.state_dict(), trap=_WritesMarker(marker))
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(_torch_bytes(state))
    with pytest.raises(ModelLoadError, match="could harm this machine") as caught:
        load_model(path, architecture="digits_cnn")
    assert ALLOW_CODE_ENV_VAR in str(caught.value)
    assert not marker.exists()


def test_legacy_torch_save_with_code_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "marker"
    data = _torch_bytes({"trap": _WritesMarker(marker)}, _use_new_zipfile_serialization=False)
    assert detect_format(data) == "torch_legacy"
    with pytest.raises(ModelLoadError, match="allow_code=True"):
        load_model(data, architecture="digits_cnn")
    assert not marker.exists()


def test_plain_pickle_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"trap": _WritesMarker(marker)}))
    with pytest.raises(ModelLoadError, match="runs whatever code the pickle names"):
        load_model(path, architecture="digits_cnn")
    assert not marker.exists()
    # The trap is armed: with code allowed, unpickling does run it (and the result is no model).
    with pytest.raises(ModelLoadError):
        load_model(path, allow_code=True)
    assert marker.exists()


def test_torchscript_is_refused_without_allow_code(tmp_path, cnn, example):
    data = export_model(cnn, "torchscript", example)
    with pytest.raises(ModelLoadError, match="TorchScript") as caught:
        load_model(data, architecture="digits_cnn")
    assert "PRUNESCOPE_ALLOW_CODE=1" in str(caught.value)


def test_archive_looking_like_torchscript_is_refused_before_anything_is_unpickled(tmp_path):
    marker = tmp_path / "marker"
    buffer = io.BytesIO(_torch_bytes({"trap": _WritesMarker(marker)}))
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("archive/constants.pkl", b"")
        archive.writestr("archive/code/__torch__/model.py", b"")
    assert detect_format(buffer.getvalue()) == "torchscript"
    with pytest.raises(ModelLoadError, match="refuses it by default"):
        load_model(buffer.getvalue())
    assert not marker.exists()


def test_whole_pickled_module_is_refused_without_and_loaded_with_allow_code(cnn, example):
    data = _torch_bytes(cnn)
    with pytest.raises(ModelLoadError, match="holds Python objects"):
        load_model(data)
    loaded = load_model(data, allow_code=True)
    torch.testing.assert_close(loaded(example), cnn(example))


def test_torch_export_program_is_refused_without_and_loaded_with_allow_code(cnn, example):
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(cnn, (example,)), buffer)
    assert detect_format(buffer.getvalue()) == "torch_export"
    with pytest.raises(ModelLoadError, match=r"torch\.export"):
        load_model(buffer.getvalue())
    loaded = load_model(buffer.getvalue(), allow_code=True)
    assert not loaded.training
    torch.testing.assert_close(loaded(example), cnn(example), atol=1e-5, rtol=1e-5)


def test_torchscript_loads_with_allow_code_and_its_layers_are_recognised(cnn, example):
    loaded = load_model(export_model(cnn, "torchscript", example), allow_code=True)
    torch.testing.assert_close(loaded(example), cnn(example))
    assert [(layer.name, layer.kind) for layer in prunable_layers(loaded)] == [
        (layer.name, layer.kind) for layer in prunable_layers(cnn)
    ]


def test_torchscript_model_can_be_inspected(cnn, example):
    loaded = load_model(export_model(cnn, "torchscript", example), allow_code=True)
    pd.testing.assert_frame_equal(layer_stats(loaded), layer_stats(cnn))


def test_torchscript_model_prunes_unstructured_but_refuses_channels(cnn, example):
    loaded = load_model(export_model(cnn, "torchscript", example), allow_code=True)
    before = {name: tensor.clone() for name, tensor in loaded.state_dict().items()}
    result = pe.apply_plan(loaded, pe.PruningPlan(global_ratio=0.5), example)
    assert all(torch.equal(tensor, loaded.state_dict()[name]) for name, tensor in before.items())
    assert result.report["achieved_ratio"].round(2).eq(0.5).all()
    assert torch.isfinite(result.model(example)).all()
    with pytest.raises(pe.UnsupportedModelError, match="TorchScript"):
        pe.apply_plan(loaded, pe.PruningPlan(granularity="channel", global_ratio=0.5), example)


def test_code_loading_allowed_reads_the_environment(monkeypatch):
    monkeypatch.delenv(ALLOW_CODE_ENV_VAR, raising=False)
    assert not code_loading_allowed()
    for value, expected in [("1", True), ("true", True), ("0", False), ("", False), ("no", False)]:
        monkeypatch.setenv(ALLOW_CODE_ENV_VAR, value)
        assert code_loading_allowed() is expected


# --- weights-only formats ---------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_ARCHITECTURES)
@pytest.mark.parametrize("fmt", ["state_dict", "safetensors"])
def test_weights_load_into_a_registered_architecture_from_path_and_bytes(tmp_path, name, fmt, example):
    model = _sample(name, seed=3)
    data = export_model(model, fmt)
    path = tmp_path / "weights.bin"  # the name says nothing: the content decides
    path.write_bytes(data)
    for source in (data, path, str(path)):
        loaded = load_model(source, architecture=name)
        assert not loaded.training
        torch.testing.assert_close(loaded(example), model(example))


def test_architecture_can_be_a_model_instance_or_a_factory_and_the_instance_is_untouched(cnn, example):
    data = export_model(cnn, "safetensors")
    fresh = build_architecture("digits_cnn")
    before = {key: value.clone() for key, value in fresh.state_dict().items()}
    loaded = load_model(data, architecture=fresh)
    torch.testing.assert_close(loaded(example), cnn(example))
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, before[key])
    torch.testing.assert_close(
        load_model(data, architecture=lambda: build_architecture("digits_cnn"))(example), cnn(example)
    )


def test_weights_without_architecture_ask_for_one_and_list_the_registered(cnn):
    with pytest.raises(ModelLoadError, match="choose the architecture") as caught:
        load_model(export_model(cnn, "state_dict"))
    for name in SAMPLE_ARCHITECTURES:
        assert name in str(caught.value)


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "model_state_dict"])
def test_checkpoint_wrappers_and_data_parallel_prefixes_are_unwrapped(wrapper, cnn, example):
    state = {f"module.{key}": value for key, value in cnn.state_dict().items()}
    data = _torch_bytes({wrapper: state, "epoch": 7, "optimizer": {"lr": 0.1}})
    torch.testing.assert_close(load_model(data, architecture="digits_cnn")(example), cnn(example))


def test_pruning_masks_left_in_a_state_dict_are_folded_into_the_weights(cnn, example):
    pruned = _sample("digits_cnn")
    torch.nn.utils.prune.l1_unstructured(pruned.conv2, "weight", amount=0.5)
    assert "conv2.weight_mask" in pruned.state_dict()
    loaded = load_model(_torch_bytes(pruned.state_dict()), architecture="digits_cnn")
    torch.testing.assert_close(loaded(example), pruned(example))
    assert float((loaded.conv2.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_non_tensor_values_in_a_state_dict_are_named(cnn):
    data = _torch_bytes({"conv1.weight": cnn.conv1.weight.detach(), "epoch": 3, "note": "hi"})
    with pytest.raises(ModelLoadError, match=r"not tensors: epoch \(int\), note \(str\)"):
        load_model(data, architecture="digits_cnn")


def test_wrong_architecture_gives_a_mismatch_table():
    data = export_model(_sample("digits_mlp"), "state_dict")
    with pytest.raises(StateDictMismatchError, match="missing") as caught:
        load_model(data, architecture="digits_cnn")
    table = caught.value.table
    assert list(table.columns) == ["key", "problem", "expected_shape", "file_shape"]
    rows = {row.key: row for row in table.itertuples()}
    assert rows["conv1.weight"].problem == "missing"
    assert rows["conv1.weight"].expected_shape == (32, 1, 3, 3)
    assert rows["conv1.weight"].file_shape is None
    assert rows["fc1.weight"].problem == "unexpected"
    assert rows["fc1.weight"].file_shape == (256, 64)
    assert rows["fc.weight"].problem == "missing"
    counts = table["problem"].value_counts()
    assert f"{counts['missing']} missing, {counts['unexpected']} unexpected" in str(caught.value)
    assert not table["key"].str.endswith("num_batches_tracked").any()


def test_shape_mismatch_rows_and_the_sidecar_hint():
    data = export_model(_sample("digits_cnn"), "state_dict")
    narrow = _torch_bytes(
        {key: value[:16] if key.startswith("conv1") else value for key, value in torch.load(io.BytesIO(data)).items()}
    )
    with pytest.raises(StateDictMismatchError, match=r"architecture\.json") as caught:
        load_model(narrow, architecture="digits_cnn")
    table = caught.value.table
    assert table.loc[0, "key"] == "conv1.weight"
    assert table.loc[0, "problem"] == "shape mismatch"
    assert (table.loc[0, "expected_shape"], table.loc[0, "file_shape"]) == ((32, 1, 3, 3), (16, 1, 3, 3))


# --- files that are not models, or are broken -------------------------------------------


def test_size_limit_is_checked_before_reading(tmp_path, cnn):
    path = tmp_path / "big.pt"
    path.write_bytes(export_model(cnn, "state_dict"))
    with pytest.raises(ModelLoadError, match=r"The file is 0\.24\d MB; the limit is 0\.100 MB"):
        load_model(path, architecture="digits_cnn", max_bytes=100_000)
    with pytest.raises(ModelLoadError, match="the limit is"):
        load_model(path.read_bytes(), architecture="digits_cnn", max_bytes=100_000)


def test_archive_that_expands_beyond_the_limit_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * 5_000_000)
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(ModelLoadError, match=r"archive expands to 5\.00 MB"):
        load_model(buffer.getvalue(), max_bytes=1_000_000)


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (b"", "empty"),
        (b"These are the weights you asked for.\n", "This is a text file, not a model"),
        (b"PK\x03", "only 3 bytes, too small to be a model"),
        (b'{"conv1.weight": [1, 2, 3]}', "This is a JSON text file, not a model"),
        (b"pixel0,pixel1,label\n0,1,3\n", "This is a CSV/text table, not a model"),
        (bytes(range(256)) * 4, "format is not recognised"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", "NumPy array file"),
    ],
)
def test_files_that_are_not_models_get_a_specific_sentence(content, sentence):
    with pytest.raises(ModelLoadError, match=sentence):
        load_model(content, architecture="digits_cnn")


def test_missing_path_and_folder_and_wrong_type(tmp_path):
    with pytest.raises(ModelLoadError, match="There is no file"):
        load_model(tmp_path / "absent.pt")
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="file path or bytes"):
        load_model(123)


def test_truncated_files_say_so(cnn):
    state_dict = export_model(cnn, "state_dict")
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_model(state_dict[: len(state_dict) // 2], architecture="digits_cnn")
    tensors = export_model(cnn, "safetensors")
    with pytest.raises(ModelLoadError, match="safetensors file is truncated"):
        load_model(tensors[:200], architecture="digits_cnn")
    with pytest.raises(ModelLoadError, match="safetensors file is truncated"):
        load_model(tensors[:-10], architecture="digits_cnn")


def test_safetensors_without_tensors_and_zip_without_model_say_so():
    empty = safetensors.torch.save({}, metadata={"note": "nothing"})
    with pytest.raises(ModelLoadError, match="holds no tensors"):
        load_model(empty, architecture="digits_cnn")
    buffer = io.BytesIO()
    np.savez(buffer, inputs=np.zeros((2, 3)))
    with pytest.raises(ModelLoadError, match="zip archive but not a PyTorch file"):
        load_model(buffer.getvalue(), architecture="digits_cnn")


def test_onnx_is_recognised_and_refused_with_a_clear_sentence(cnn, example):
    with pytest.raises(UnsupportedModelError, match="ONNX models can be exported but not loaded for pruning yet"):
        load_model(export_model(cnn, "onnx", example))


def test_empty_state_dict_and_non_dict_checkpoint():
    with pytest.raises(ModelLoadError, match="holds no tensors"):
        load_model(_torch_bytes({}), architecture="digits_cnn")
    with pytest.raises(ModelLoadError, match="holds a list, not a state_dict"):
        load_model(_torch_bytes([torch.zeros(2)]), architecture="digits_cnn")


# --- the architecture registry ----------------------------------------------------------


def test_sample_architectures_are_registered_by_default():
    assert set(SAMPLE_ARCHITECTURES) <= set(list_architectures())
    assert isinstance(build_architecture("digits_resnet"), nn.Module)


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ModelLoadError, match=r"Unknown architecture 'resnet50'\. Registered architectures: digits_cnn"):
        build_architecture("resnet50")


def test_register_architecture_makes_a_factory_loadable(example):
    register_architecture("test_tiny", lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 3)))
    try:
        torch.manual_seed(0)
        model = build_architecture("test_tiny")
        assert "test_tiny" in list_architectures()
        loaded = load_model(export_model(model, "safetensors"), architecture="test_tiny")
        torch.testing.assert_close(loaded(example), model(example))
    finally:
        architectures.unregister_architecture("test_tiny")
    assert "test_tiny" not in list_architectures()


def test_operator_files_from_the_environment_are_imported(tmp_path, monkeypatch):
    first = tmp_path / "first.py"
    first.write_text("from torch import nn\nARCHITECTURES = {'op_linear': lambda: nn.Linear(4, 2)}\n")
    second = tmp_path / "second.py"
    second.write_text("from torch import nn\nARCHITECTURES = {'op_conv': lambda: nn.Conv2d(1, 2, 3)}\n")
    monkeypatch.setenv(architectures.ENV_VAR, f"{first}{os.pathsep}{second}")
    assert {"op_linear", "op_conv"} <= set(list_architectures())
    assert isinstance(build_architecture("op_conv"), nn.Conv2d)


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (None, "which is not a file"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("x = 1\n", "defines no ARCHITECTURES"),
        ("ARCHITECTURES = [1, 2]\n", "it must be a dict"),
        ("ARCHITECTURES = {'a': 3}\n", "not name → callable"),
    ],
)
def test_broken_operator_files_give_a_clear_error(tmp_path, monkeypatch, content, sentence):
    path = tmp_path / "models.py"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(architectures.ENV_VAR, str(path))
    with pytest.raises(ModelLoadError, match=sentence):
        list_architectures()


def test_factory_that_fails_or_returns_no_module_is_reported():
    register_architecture("test_broken", lambda: 1 / 0)
    register_architecture("test_not_module", lambda: "model")
    try:
        with pytest.raises(ModelLoadError, match="ZeroDivisionError"):
            build_architecture("test_broken")
        with pytest.raises(ModelLoadError, match=r"returned str, not a torch\.nn\.Module"):
            build_architecture("test_not_module")
    finally:
        architectures.unregister_architecture("test_broken")
        architectures.unregister_architecture("test_not_module")


# --- evaluation data --------------------------------------------------------------------


@pytest.fixture
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.rand(20, 1, 8, 8, generator=generator, dtype=torch.float64), torch.randint(
        0, 10, (20,), generator=generator
    )


def test_eval_data_from_safetensors_pt_npz_and_npy(tmp_path, digits):
    inputs, labels = digits
    files = {
        "data.safetensors": safetensors.torch.save({"inputs": inputs, "labels": labels}),
        "data.pt": _torch_bytes({"inputs": inputs, "labels": labels}),
    }
    for keys in (("inputs", "labels"), ("x", "y")):
        buffer = io.BytesIO()
        np.savez(buffer, **{keys[0]: inputs.numpy(), keys[1]: labels.numpy().astype(np.int32)})
        files[f"{keys[0]}.npz"] = buffer.getvalue()
    for filename, content in files.items():
        data = load_eval_data(content, filename=filename)
        assert data.inputs.dtype == torch.float32, filename
        assert data.labels.dtype == torch.int64, filename
        torch.testing.assert_close(data.inputs, inputs.float())
        torch.testing.assert_close(data.labels, labels)
    path = tmp_path / "inputs.npy"
    np.save(path, inputs.numpy().reshape(20, 64))
    data = load_eval_data(path, input_shape=(1, 8, 8))
    assert data.labels is None
    torch.testing.assert_close(data.inputs, inputs.float())


def test_eval_data_pt_with_code_is_refused(tmp_path):
    marker = tmp_path / "marker"
    content = _torch_bytes({"inputs": torch.zeros(2, 3), "trap": _WritesMarker(marker)})
    with pytest.raises(DataError, match="not loaded for safety"):
        load_eval_data(content, filename="data.pt")
    assert not marker.exists()


def test_eval_data_from_csv_with_a_label_column_and_input_shape(digits):
    inputs, labels = digits
    frame = pd.DataFrame(inputs.reshape(20, 64).numpy(), columns=[f"p{index}" for index in range(64)])
    frame.insert(10, "digit", labels.numpy())
    content = frame.to_csv(index=False).encode()
    data = load_eval_data(content, filename="digits.CSV", label_column="digit", input_shape=(1, 8, 8))
    assert data.inputs.shape == (20, 1, 8, 8)
    assert data.inputs.dtype == torch.float32
    assert data.labels.dtype == torch.int64
    torch.testing.assert_close(data.inputs, inputs.float())
    torch.testing.assert_close(data.labels, labels)
    check_data_fits(_sample("digits_cnn"), data)


def test_csv_float_labels_stay_float_and_headerless_csv_works():
    data = load_eval_data(b"a,b,t\n1,2,0.5\n3,4,1.5\n", filename="r.csv", label_column="t")
    assert data.labels.dtype == torch.float32
    data = load_eval_data(b"1,2,3\n4,5,6\n", filename="plain.csv")
    assert data.inputs.tolist() == [[1, 2, 3], [4, 5, 6]]
    labelled = load_eval_data(b"1,2,3\n4,5,6\n", filename="plain.csv", label_column="2")
    assert labelled.labels.tolist() == [3, 6]


@pytest.mark.parametrize(
    ("content", "columns"),
    [(b"a,b,t\n1,2,0.5\n", ["a", "b", "t"]), (b"1,2,3\n4,5,6\n", ["0", "1", "2"]), (b"", [])],
)
def test_csv_columns_are_the_names_a_label_column_can_take(content, columns):
    assert csv_columns(content) == columns
    for column in columns:
        labelled = load_eval_data(content, filename="d.csv", label_column=column)
        assert labelled.inputs.shape[1] == len(columns) - 1


def test_csv_bad_cell_names_the_column_and_row():
    content = b"a,b,label\n1,2,0\n3,x7,1\n"
    with pytest.raises(DataError, match=r"Column 'b', row 2 \(line 3 of the file\) is 'x7', not a number"):
        load_eval_data(content, filename="d.csv", label_column="label")
    with pytest.raises(DataError, match=r"Column 'a', row 1 \(line 2 of the file\) is empty"):
        load_eval_data(b"a,b\n,2\n3,4\n", filename="d.csv")
    with pytest.raises(DataError, match="has no column 'target'; its columns are: a, b"):
        load_eval_data(b"a,b\n1,2\n", filename="d.csv", label_column="target")


@pytest.mark.parametrize(
    ("content", "filename", "kwargs", "sentence"),
    [
        (b"1,2", "data.xlsx", {}, "unsupported extension"),
        (b"", "data.csv", {}, "empty"),
        (b"garbage", "data.safetensors", {}, "could not be read as .safetensors"),
        (b"garbage", "data.npz", {}, "could not be read as .npz"),
        (safetensors.torch.save({"features": torch.zeros(2)}), "d.safetensors", {}, "has no 'inputs'.*features"),
        (safetensors.torch.save({"x": torch.zeros(3, 4), "y": torch.zeros(2)}), "d.safetensors", {}, "3 inputs but 2"),
        (
            safetensors.torch.save({"x": torch.zeros(3, 4)}),
            "d.safetensors",
            {"input_shape": (5,)},
            "cannot be reshaped",
        ),
        (safetensors.torch.save({"x": torch.full((3, 4), float("nan"))}), "d.safetensors", {}, "12 NaN"),
        (b"a\n1\n", "d.csv", {"label_column": "a"}, "no feature columns"),
    ],
)
def test_bad_eval_data_gets_a_specific_sentence(content, filename, kwargs, sentence):
    with pytest.raises(DataError, match=sentence):
        load_eval_data(content, filename=filename, **kwargs)


def test_eval_data_size_limit_and_bytes_without_filename():
    with pytest.raises(DataError, match="the limit is"):
        load_eval_data(b"1,2\n" * 100, filename="d.csv", max_bytes=100)
    with pytest.raises(DataError, match="filename="):
        load_eval_data(b"1,2\n")


def test_check_data_fits_reports_shapes_and_label_range():
    model = _sample("digits_cnn")
    with pytest.raises(DataError, match=r"cannot take inputs of shape \(8, 64\)"):
        check_data_fits(model, EvalData(torch.zeros(20, 64)))
    with pytest.raises(DataError, match="labels range from 0 to 12, but the model has 10 outputs"):
        check_data_fits(model, EvalData(torch.zeros(3, 1, 8, 8), torch.tensor([0, 12, 3])))
    with pytest.raises(DataError, match="labels range from -1"):
        check_data_fits(model, EvalData(torch.zeros(3, 1, 8, 8), torch.tensor([0, -1, 3])))
    check_data_fits(model, EvalData(torch.zeros(3, 1, 8, 8), torch.tensor([0, 9, 3])))
    check_data_fits(model, EvalData(torch.zeros(3, 1, 8, 8), torch.rand(3, 10)))


def test_random_eval_data_is_seeded_and_unlabelled():
    first, second = random_eval_data((1, 8, 8), count=16, seed=5), random_eval_data((1, 8, 8), count=16, seed=5)
    assert first.inputs.shape == (16, 1, 8, 8) and first.labels is None
    torch.testing.assert_close(first.inputs, second.inputs)
    assert not torch.equal(first.inputs, random_eval_data((1, 8, 8), count=16, seed=6).inputs)
    with pytest.raises(DataError):
        random_eval_data((1, 8, 8), dtype=torch.int64)


def test_every_error_here_is_a_prunescope_error():
    for error_type in (StateDictMismatchError, ModelLoadError, DataError, UnsupportedModelError):
        assert issubclass(error_type, PruneScopeError)


def test_shipped_sample_weights_and_a_csv_of_their_data_give_the_sample_accuracy():
    from prune_engine.metrics import evaluate
    from sample_models import load_sample
    from sample_models.registry import weights_path

    bundle = load_sample("digits_cnn")
    model = load_model(weights_path("digits_cnn"), architecture="digits_cnn")
    frame = pd.DataFrame(bundle.eval_data.inputs.reshape(len(bundle.eval_data), 64).numpy())
    frame["digit"] = bundle.eval_data.labels.numpy()
    data = load_eval_data(
        frame.to_csv(index=False).encode(), filename="digits.csv", label_column="digit", input_shape=(1, 8, 8)
    )
    check_data_fits(model, data)
    assert evaluate(model, data)["accuracy"] == pytest.approx(evaluate(bundle.model, bundle.eval_data)["accuracy"])
