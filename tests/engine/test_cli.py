"""The `prunescope` command line: apply a plan in a pipeline, inspect a model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch

import prune_engine as pe
from prune_engine.cli import main
from sample_models import load_sample

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    bundle = load_sample("digits_cnn")
    paths = {
        "model": folder / "cnn.safetensors",
        "plan": folder / "plan.json",
        "data": folder / "eval.csv",
    }
    paths["model"].write_bytes(pe.export_model(bundle.model, "safetensors"))
    paths["plan"].write_text(pe.PruningPlan(granularity="channel", global_ratio=0.3).to_json())
    pixels = bundle.eval_data.inputs.reshape(len(bundle.eval_data), -1).numpy()
    frame = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(64)])
    frame["digit"] = bundle.eval_data.labels.numpy()
    frame.to_csv(paths["data"], index=False)
    return paths


def test_apply_writes_a_smaller_onnx_model_and_prints_the_figures(files, tmp_path, capsys) -> None:
    out = tmp_path / "pruned.onnx"
    status = main(
        ["apply", "--model", str(files["model"]), "--architecture", "digits_cnn", "--plan", str(files["plan"]),
         "--out", str(out), "--data", str(files["data"]), "--label-column", "digit", "--input-shape", "1,8,8",
         "--json"]
    )  # fmt: skip
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    figures = {row["figure"]: row for row in report["figures"]}
    assert figures["params"]["after"] < figures["params"]["before"]
    assert figures["accuracy"]["before"] > 0.97
    session = onnxruntime.InferenceSession(out.read_bytes())
    inputs = load_sample("digits_cnn").eval_data.inputs[:5].numpy()
    logits = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    assert logits.shape == (5, 10) and np.isfinite(logits).all()


def test_apply_to_safetensors_writes_a_sidecar_that_rebuilds_the_pruned_model(files, tmp_path) -> None:
    out = tmp_path / "pruned.safetensors"
    args = ["apply", "--model", str(files["model"]), "--architecture", "digits_cnn", "--plan", str(files["plan"])]
    assert main([*args, "--out", str(out), "--input-shape", "1,8,8"]) == 0
    sidecar = json.loads((tmp_path / "pruned.architecture.json").read_text())
    rebuilt = pe.load_model(out, architecture="digits_cnn", sidecar=sidecar)
    assert sum(p.numel() for p in rebuilt.parameters()) < 58474
    assert rebuilt(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_inspect_prints_the_layer_table(files, capsys) -> None:
    assert main(["inspect", "--model", str(files["model"]), "--architecture", "digits_cnn", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == ["conv1", "conv2", "conv3", "fc"]


def test_refusals_exit_with_status_1_and_a_sentence(files, tmp_path, capsys) -> None:
    assert main(["inspect", "--model", str(files["model"])]) == 1
    assert "choose the architecture" in capsys.readouterr().err
    bad_plan = tmp_path / "bad.json"
    bad_plan.write_text('{"granularity": "blocks"}')
    args = ["apply", "--model", str(files["model"]), "--architecture", "digits_cnn", "--input-shape", "1,8,8"]
    assert main([*args, "--plan", str(bad_plan), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "Unknown granularity" in capsys.readouterr().err
    assert main([*args, "--plan", str(files["plan"]), "--out", str(tmp_path / "x.zip")]) == 1
    assert "output format" in capsys.readouterr().err
    assert main(["inspect", "--model", str(tmp_path / "missing.pt"), "--architecture", "digits_cnn"]) == 1
    assert "error" in capsys.readouterr().err


def test_malformed_command_lines_exit_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--model", "m.pt"]) == 2
    assert capsys.readouterr().err.startswith("prunescope: error: the following arguments are required")


def test_the_console_script_and_module_entry_point_run() -> None:
    for command in ([str(Path(sys.executable).with_name("prunescope"))], [sys.executable, "-m", "prune_engine"]):
        completed = subprocess.run([*command, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert completed.returncode == 0 and "apply" in completed.stdout


def _apply_recalibrated(files: dict[str, Path], tmp_path: Path, *extra: str) -> list[str]:
    plan = tmp_path / "recalibrated.json"
    plan.write_text(pe.PruningPlan(granularity="channel", global_ratio=0.5, recalibrate_bn=True).to_json())
    return ["apply", "--model", str(files["model"]), "--architecture", "digits_cnn", "--plan", str(plan),
            "--out", str(tmp_path / "pruned.onnx"), "--data", str(files["data"]), "--label-column", "digit",
            "--input-shape", "1,8,8", "--json", *extra]  # fmt: skip


def test_batchnorm_re_estimation_needs_training_examples_never_the_evaluation_data(files, tmp_path, capsys) -> None:
    assert main(_apply_recalibrated(files, tmp_path)) == 1
    error = capsys.readouterr().err
    assert "--calibration-data" in error and "judged on" in error
    assert not (tmp_path / "pruned.onnx").exists()


def test_batchnorm_re_estimated_on_calibration_data_wins_accuracy_back(files, tmp_path, capsys) -> None:
    training = load_sample("digits_cnn").train_data.inputs.reshape(-1, 64).numpy()
    calibration = tmp_path / "train.csv"
    pd.DataFrame(training, columns=[f"pixel{i}" for i in range(64)]).to_csv(calibration, index=False)
    assert main(_apply_recalibrated(files, tmp_path, "--calibration-data", str(calibration))) == 0
    recalibrated = {row["figure"]: row for row in json.loads(capsys.readouterr().out)["figures"]}
    plain = tmp_path / "plain.json"
    plain.write_text(pe.PruningPlan(granularity="channel", global_ratio=0.5).to_json())
    arguments = _apply_recalibrated(files, tmp_path)
    arguments[arguments.index("--plan") + 1] = str(plain)
    assert main(arguments) == 0
    kept_statistics = {row["figure"]: row for row in json.loads(capsys.readouterr().out)["figures"]}
    assert recalibrated["accuracy"]["after"] > kept_statistics["accuracy"]["after"] + 0.02
