"""Bad inputs from issue 15, one class at a time: each gets a typed error with a sentence, or a correct result."""

from __future__ import annotations

import csv
import io
import json
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from torch import nn
from torch.nn.utils import parametrizations

import prune_engine as pe
import prune_engine.cli as cli
from prune_engine.errors import DataError, InvalidPlanError, ModelLoadError
from prune_engine.experiments import ExperimentStore, ExperimentStoreError
from prune_engine.export import architecture_sidecar, csv_text, rebuild_from_sidecar
from prune_engine.loading import load_eval_data, load_model, nonfinite_weights
from sample_models import load_sample

DEEP = "[" * 100_000


def torch_bytes(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def npz_bytes(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


# --- 1. deeply nested JSON ----------------------------------------------------------------------


def test_a_deeply_nested_plan_is_an_invalid_plan_error() -> None:
    with pytest.raises(InvalidPlanError, match="nests 100000 levels deep"):
        pe.PruningPlan.from_json(DEEP)


def test_a_deeply_nested_safetensors_header_is_a_model_load_error() -> None:
    header = b'{"a":' + b"[" * 50_000
    with pytest.raises(ModelLoadError, match="header nests"):
        load_model(len(header).to_bytes(8, "little") + header, architecture="digits_mlp")


def test_a_deeply_nested_or_non_utf8_sidecar_is_a_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match=re.escape("architecture.json nests")):
        rebuild_from_sidecar(load_sample("digits_mlp").model, DEEP)
    with pytest.raises(ModelLoadError, match="not UTF-8"):
        rebuild_from_sidecar(load_sample("digits_mlp").model, b"\xff\xfe{}")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    plan = pe.PruningPlan.from_json(json.dumps({"criterion": "l1", "ignored_layers": ["[" * 500]}))
    assert plan.ignored_layers == ["[" * 500]


def test_the_experiment_store_refuses_a_deeply_nested_plan(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "e.db")
    with pytest.raises(ExperimentStoreError, match="nests"):
        store.add("deep", DEEP, {"accuracy": 0.5})
    assert store.count() == 0


# --- 2. decompression bombs in evaluation data ----------------------------------------------------


def test_a_compressed_npz_bomb_is_refused_before_it_is_expanded() -> None:
    zeros = np.broadcast_to(np.float32(0), (50_000_000,))  # 200 MB once expanded; written in chunks
    bomb = npz_bytes(compressed=True, inputs=zeros)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=re.escape("expands to 200.0 MB")):
            load_eval_data(bomb, filename="d.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000


def test_a_deflated_pt_is_refused_beyond_the_configured_size() -> None:
    stored = torch_bytes({"inputs": torch.zeros(1_000_000)})
    deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(stored)) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info))
    assert len(deflated.getvalue()) < 100_000
    with pytest.raises(DataError, match=re.escape("expands to 4.00 MB of data; the limit for this file is 1.00 MB")):
        load_eval_data(deflated.getvalue(), filename="d.pt", max_expanded_bytes=1_000_000)
    assert len(load_eval_data(deflated.getvalue(), filename="d.pt")) == 1_000_000


def test_an_npy_whose_header_claims_more_than_it_stores_is_refused() -> None:
    raw = bytearray(io.BytesIO().getvalue())
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 2), np.float32))
    raw = buffer.getvalue().replace(b"(2, 2)", b"(9999999, 2)".ljust(6)[:12], 1)
    with pytest.raises(DataError):
        load_eval_data(raw, filename="d.npy")


# --- 3. data files that crashed -------------------------------------------------------------------


def test_an_npz_named_npy_is_read_by_its_content() -> None:
    data = load_eval_data(npz_bytes(inputs=np.ones((3, 4), np.float32), labels=np.arange(3)), filename="d.npy")
    assert tuple(data.inputs.shape) == (3, 4) and data.labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("tensor", "words"),
    [(torch.ones(3, 2).to_sparse(), "sparse tensor"), (torch.ones(3, 2, device="meta"), "meta tensor")],
)
def test_sparse_and_meta_tensors_in_pt_data_are_refused(tensor: torch.Tensor, words: str) -> None:
    with pytest.raises(DataError, match=words):
        load_eval_data(torch_bytes({"inputs": tensor}), filename="d.pt")


# --- 4. CSV rows with more fields than the header --------------------------------------------------


def test_a_csv_row_with_more_fields_than_the_header_is_refused_with_its_line() -> None:
    with pytest.raises(DataError, match="line 2 has 4 fields but the header"):
        load_eval_data(b"a,b,label\n1,2,0,9\n", filename="d.csv", label_column="label")
    with pytest.raises(DataError, match="Expected 3 fields in line 3, saw 4"):
        load_eval_data(b"a,b,label\n1,2,0\n3,4,5,6\n", filename="d.csv", label_column="label")


def test_a_well_formed_csv_still_reads_its_columns_in_place() -> None:
    data = load_eval_data(b"a,b,label\n1,2,0\n3,4,1\n", filename="d.csv", label_column="label")
    assert data.inputs.tolist() == [[1.0, 2.0], [3.0, 4.0]] and data.labels.tolist() == [0, 1]


# --- 5. CSV exports ---------------------------------------------------------------------------------


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_carriage_return_in_a_run_name_stays_in_its_cell(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "e.db")
    store.add("ok\r=1+1", pe.PruningPlan(), {"accuracy": 0.5}, model_name="@SUM(A1)")
    rows = read_back(store.to_csv())
    assert len(rows) == 2
    header = rows[0]
    assert rows[1][header.index("name")] == "ok\r=1+1"
    assert rows[1][header.index("model_name")] == "'@SUM(A1)"


def test_the_layer_report_csv_neutralises_formula_like_layer_names() -> None:
    report = pd.DataFrame({"layer": ["=1+2", "@SUM(A1)", "+x", "-y", "fc1"], "achieved_ratio": [0.5, -0.5, 0, 1, 2]})
    rows = read_back(csv_text(report))
    assert [row[0] for row in rows[1:]] == ["'=1+2", "'@SUM(A1)", "'+x", "'-y", "fc1"]
    assert [row[1] for row in rows[1:]] == ["0.5", "-0.5", "0.0", "1.0", "2.0"]


# --- 6. the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli_hardening")
    files = {name: folder / name for name in ("m.safetensors", "plan.json", "deep.json", "bin.json", "x.npy")}
    files["m.safetensors"].write_bytes(pe.export_model(load_sample("digits_mlp").model, "safetensors"))
    files["plan.json"].write_text(pe.PruningPlan(global_ratio=0.3).to_json())
    files["deep.json"].write_text(DEEP)
    files["bin.json"].write_bytes(b"\xff\xfe{")
    data = load_sample("digits_mlp").eval_data
    files["x.npy"].write_bytes(npz_bytes(inputs=data.inputs[:32].numpy(), labels=data.labels[:32].numpy()))
    return files


@pytest.mark.parametrize(
    "extra",
    [
        ["inspect", "--sidecar", "deep.json"],
        ["inspect", "--sidecar", "bin.json"],
        ["inspect", "--sidecar", "plan.json"],
        ["apply", "--plan", "deep.json", "--input-shape", "64"],
        ["apply", "--plan", "bin.json", "--input-shape", "64"],
        ["apply", "--plan", "plan.json", "--input-shape", "100000,100000"],
    ],
)
def test_every_bad_cli_input_is_one_error_line(cli_files, tmp_path, capsys, extra) -> None:
    folder = cli_files["m.safetensors"].parent
    argv = [extra[0], "--model", str(cli_files["m.safetensors"]), "--architecture", "digits_mlp"]
    argv += [str(folder / part) if part.endswith(".json") else part for part in extra[1:]]
    if extra[0] == "apply":
        argv += ["--out", str(tmp_path / "out.pt")]
    assert cli.main(argv) == cli.EXIT_REFUSED
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("prunescope: error: ")
    assert not list(tmp_path.iterdir())


def test_a_deep_safetensors_model_is_one_error_line(tmp_path, capsys) -> None:
    header = b'{"a":' + b"[" * 50_000
    (tmp_path / "deep.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    assert cli.main(["inspect", "--model", str(tmp_path / "deep.safetensors"), "--architecture", "digits_mlp"]) == 1
    assert capsys.readouterr().err.startswith("prunescope: error: This safetensors file's header nests")


def test_a_malformed_command_line_is_one_error_line(capsys) -> None:
    assert cli.main(["apply", "--model", "m", "--input-shape", "1,x"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("prunescope: error: argument --input-shape")


def test_an_npz_passed_as_npy_data_is_read(cli_files, tmp_path, capsys) -> None:
    model, plan, data = (str(cli_files[name]) for name in ("m.safetensors", "plan.json", "x.npy"))
    argv = ["apply", "--model", model, "--architecture", "digits_mlp", "--plan", plan, "--data", data]
    argv += ["--out", str(tmp_path / "o.pt")]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["o.architecture.json", "o.pt"]


def test_a_command_failing_after_the_export_leaves_no_output(cli_files, tmp_path, monkeypatch, capsys) -> None:
    def fail(*args: object) -> None:
        raise DataError("evaluation failed")

    monkeypatch.setattr(cli, "_figures", fail)
    model, plan = str(cli_files["m.safetensors"]), str(cli_files["plan.json"])
    argv = ["apply", "--model", model, "--architecture", "digits_mlp", "--plan", plan, "--input-shape", "64"]
    argv += ["--out", str(tmp_path / "o.safetensors")]
    assert cli.main(argv) == cli.EXIT_REFUSED
    assert capsys.readouterr().err.strip() == "prunescope: error: evaluation failed"
    assert not list(tmp_path.iterdir())


# --- 7. the engine: reparametrised weights and multi-input models ------------------------------------


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def weight_used(model: nn.Module, layer: nn.Module, example: torch.Tensor) -> torch.Tensor:
    """The weight `layer` really multiplies in the forward pass (read after every pre-hook)."""
    seen = {}
    handle = layer.register_forward_pre_hook(lambda module, inputs: seen.setdefault("w", module.weight.detach()))
    with torch.no_grad():
        model(example)
    handle.remove()
    return seen["w"]


REPARAMETRISATIONS = {
    "weight_norm": parametrizations.weight_norm,
    "spectral_norm": parametrizations.spectral_norm,
    "legacy_weight_norm": torch.nn.utils.weight_norm,
    "legacy_spectral_norm": torch.nn.utils.spectral_norm,
}


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("granularity", ["unstructured", "channel"])
@pytest.mark.parametrize("kind", list(REPARAMETRISATIONS))
def test_reparametrised_layers_are_pruned_in_the_weights_the_forward_pass_uses(kind: str, granularity: str) -> None:
    model = mlp()
    REPARAMETRISATIONS[kind](model[0])
    example = torch.randn(4, 8)
    with torch.no_grad():
        before = model(example).clone()
    result = pe.apply_plan(model, pe.PruningPlan(granularity=granularity, ratios={"0": 0.5}), example)
    used = weight_used(result.model, result.model[0], example)
    achieved = result.report.set_index("layer").loc["0", "achieved_ratio"]
    assert achieved == pytest.approx(0.5)
    if granularity == "unstructured":
        assert float((used == 0).float().mean()) == pytest.approx(0.5)
    else:
        assert used.shape[0] == 8
    with torch.no_grad():
        assert torch.equal(model(example), before), "the original model changed"


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_folding_a_reparametrisation_keeps_the_outputs() -> None:
    model = mlp()
    torch.nn.utils.weight_norm(model[0])
    example = torch.randn(4, 8)
    result = pe.apply_plan(model, pe.PruningPlan(ratios={"0": 0.0}), example)
    with torch.no_grad():
        assert torch.allclose(result.model(example), model(example), atol=1e-6)


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x + y)))


@pytest.mark.parametrize("as_dict", [False, True])
def test_channel_pruning_takes_tuple_and_dict_example_inputs(as_dict: bool) -> None:
    model = TwoInputs().eval()
    x, y = torch.randn(2, 8), torch.randn(2, 8)
    example = {"x": x, "y": y} if as_dict else (x, y)
    result = pe.apply_plan(model, pe.PruningPlan(granularity="channel", ratios={"a": 0.5}), example)
    assert result.model.a.out_features == 8
    assert result.model(x, y).shape == (2, 4)


# --- weak: complex and non-finite weights, labels, long names, field types ---------------------------


def test_complex_weights_are_refused_instead_of_losing_their_imaginary_part() -> None:
    state = load_sample("digits_mlp").model.state_dict()
    state["fc1.weight"] = state["fc1.weight"].to(torch.complex64)
    with pytest.raises(ModelLoadError, match=re.escape("complex-valued tensors (fc1.weight)")):
        load_model(torch_bytes(state), architecture="digits_mlp")


def test_nan_weights_load_are_counted_and_noted_in_the_report() -> None:
    state = {key: value.clone() for key, value in load_sample("digits_mlp").model.state_dict().items()}
    state["fc1.weight"][0, :2] = torch.tensor([float("nan"), float("inf")])
    model = load_model(safetensors.torch.save(state), architecture="digits_mlp")
    assert nonfinite_weights(model) == {"fc1.weight": 2}
    result = pe.apply_plan(model, pe.PruningPlan(global_ratio=0.3), torch.randn(1, 64))
    notes = result.report.set_index("layer")["note"]
    assert "holds 2 NaN or infinite weights" in notes["fc1"]
    assert "NaN" not in notes["fc2"]


@pytest.mark.parametrize(("cell", "shown"), [("1e30", "is 1e+30"), ("9223372036854775808", "is 9223372036854775808")])
def test_an_enormous_csv_label_is_refused_showing_its_value(cell: str, shown: str) -> None:
    with pytest.raises(DataError, match=re.escape(f"row 1 (line 2 of the file) {shown}, too large for a class index")):
        load_eval_data(f"a,label\n1,{cell}\n2,3\n".encode(), filename="d.csv", label_column="label")


def test_a_uint64_label_beyond_int64_is_refused_showing_its_value() -> None:
    data = npz_bytes(inputs=np.ones((2, 2), np.float32), labels=np.array([1, 2**64 - 1], np.uint64))
    with pytest.raises(DataError, match="18446744073709551615"):
        load_eval_data(data, filename="d.npz")


def test_a_huge_layer_name_is_cut_in_messages() -> None:
    with pytest.raises(InvalidPlanError) as raised:
        pe.PruningPlan(ratios={"x" * 50_000_000: 2.0})
    assert len(str(raised.value)) < 400 and "50,000,002 characters" in str(raised.value)


def test_ignored_layers_given_as_text_is_refused_not_read_letter_by_letter() -> None:
    with pytest.raises(InvalidPlanError, match="ignored_layers must be a list of layer names, got 'fc1'"):
        pe.PruningPlan.from_json('{"ignored_layers": "fc1"}')


def test_a_sidecar_round_trip_still_rebuilds_a_pruned_model() -> None:
    bundle = load_sample("digits_mlp")
    result = pe.apply_plan(bundle.model, pe.PruningPlan(granularity="channel", global_ratio=0.3), bundle.example_input)
    sidecar = json.dumps(architecture_sidecar(result.model)).encode()
    loaded = load_model(
        pe.export_model(result.model, "safetensors"), architecture="digits_mlp", sidecar=json.loads(sidecar)
    )
    assert loaded.fc1.out_features == result.model.fc1.out_features


def test_a_count_metric_that_is_not_a_whole_number_is_refused_and_the_list_still_reads(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "e.db")
    for value in (1e300, 2.5):
        with pytest.raises(ExperimentStoreError, match="'params' is a count"):
            store.add("x", pe.PruningPlan(), {"params": value})
    store.add("x", pe.PruningPlan(), {"params": 12.0, "x": 10**30})
    assert store.list()["params"].tolist() == [12]
