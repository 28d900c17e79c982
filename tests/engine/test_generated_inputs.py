"""Generated inputs for every entry point a user's file or text reaches: each case ends in a result or a
`PruneScopeError` subclass, never another exception, and the process's peak memory stays bounded.

Deterministic (`derandomize=True`), about 2,400 cases in all; the fuzzing of model files' bytes lives in
`test_loading_fuzz.py`.
"""

from __future__ import annotations

import io
import json
import resource
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prune_engine as pe
from prune_engine.cli import EXIT_FAILED, main
from prune_engine.data import EvalData
from prune_engine.errors import PruneScopeError
from prune_engine.experiments import ExperimentStore

PEAK_GROWTH_MB = 256
"""Most the process's peak resident memory may grow over one generated test."""


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(autouse=True)
def bounded_memory() -> Iterator[None]:
    before = _peak_mb()
    yield
    assert _peak_mb() - before < PEAK_GROWTH_MB, "a generated input made the process grow beyond the bound"


def _result_or_refusal(call: Callable[[], object]) -> object | None:
    try:
        return call()
    except PruneScopeError:
        return None


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
PLAN_KEYS = ["granularity", "criterion", "scope", "ratios", "global_ratio", "n", "m", "min_ratio", "max_ratio",
             "ignored_layers", "round_to", "seed", "recalibrate_bn", "version"]  # fmt: skip
PLAN_LIKE = st.dictionaries(
    st.one_of(st.sampled_from(PLAN_KEYS), st.text(max_size=6)),
    st.one_of(
        JSON_VALUES,
        st.sampled_from(["unstructured", "channel", "n:m", "head", "l1", "taylor", "layer", "global", "fc1"]),
        st.floats(0, 1),
        st.dictionaries(st.sampled_from(["fc1", "fc2", ""]), st.one_of(st.floats(-1, 2), JSON_SCALARS), max_size=3),
    ),
    max_size=8,
)


def _json_text(value: object) -> str:
    return json.dumps(value, allow_nan=True)


NESTING = st.builds(lambda opener, depth, tail: opener * depth + tail, st.sampled_from(["[", '{"a":', "[{\"b\":"]),
                    st.integers(1, 5000), st.sampled_from(["", "1", "]" * 3, "}"]))  # fmt: skip


@_settings(600)
@given(text=st.one_of(PLAN_LIKE.map(_json_text), JSON_VALUES.map(_json_text), NESTING, st.text(max_size=40)))
def test_plan_from_json_gives_a_plan_or_an_invalid_plan_error(text: str) -> None:
    plan = _result_or_refusal(lambda: pe.PruningPlan.from_json(text))
    if plan is not None:
        assert pe.PruningPlan.from_json(plan.to_json()) == plan


@_settings(200)
@given(raw=st.binary(max_size=64))
def test_plan_from_bytes_gives_a_plan_or_an_invalid_plan_error(raw: bytes) -> None:
    _result_or_refusal(lambda: pe.PruningPlan.from_json(raw))


CSV_CELLS = st.one_of(
    st.integers(-5, 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "a", "1e30", "9223372036854775808", "18446744073709551615", '"1,2"', "=1+2", "\r"]),
)
CSV_TEXT = st.lists(st.lists(CSV_CELLS, min_size=1, max_size=5).map(",".join), min_size=1, max_size=8).map(
    lambda rows: "\n".join(["a,b,label", *rows]) if rows[0][:1].isdigit() else "\n".join(rows)
)


@_settings(500)
@given(text=CSV_TEXT, label=st.sampled_from([None, "label", "a", "0", "missing"]))
def test_csv_data_loads_or_raises_a_data_error(text: str, label: str | None) -> None:
    data = _result_or_refusal(lambda: pe.load_eval_data(text.encode(), filename="d.csv", label_column=label))
    if data is not None:
        assert isinstance(data, EvalData)
        assert torch.isfinite(data.inputs).all()
        if data.labels is not None and not data.labels.is_floating_point():
            assert data.labels.dtype == torch.int64


ARRAYS = st.one_of(
    st.builds(
        lambda shape, kind: np.ones(shape, dtype=kind),
        st.lists(st.integers(0, 4), min_size=0, max_size=3),
        st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.uint64, np.complex64, np.bool_]),
    ),
    st.just(np.array([2**64 - 1], dtype=np.uint64)),
    st.just(np.array(["a", "b"])),
)


def _npz(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _pt(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


TENSORS = st.one_of(
    st.builds(lambda shape: torch.ones(shape), st.lists(st.integers(0, 3), max_size=3)),
    st.just(torch.ones(3, 2).to_sparse()),
    st.just(torch.ones(3, 2, device="meta")),
    st.just(torch.ones(3, 2, dtype=torch.complex64)),
    st.just(torch.tensor([float("nan"), 1.0])),
    st.just(torch.tensor([2**64 - 1], dtype=torch.uint64)),
)
TENSOR_FILES = st.one_of(
    st.builds(
        lambda arrays, compressed: _npz(arrays, compressed),
        st.dictionaries(st.sampled_from(["inputs", "labels", "x", "y", "other"]), ARRAYS, max_size=3),
        st.booleans(),
    ),
    ARRAYS.map(_npy),
    st.dictionaries(st.sampled_from(["inputs", "labels", "x"]), TENSORS, max_size=2).map(_pt),
    TENSORS.map(_pt),
)


@_settings(500)
@given(content=TENSOR_FILES, name=st.sampled_from(["d.npz", "d.npy", "d.pt", "d.pth", "d.safetensors"]))
def test_tensor_data_files_load_or_raise_a_data_error_whatever_their_name(content: bytes, name: str) -> None:
    data = _result_or_refusal(lambda: pe.load_eval_data(content, filename=name))
    if data is not None:
        assert isinstance(data, EvalData) and len(data) > 0


HEADERS = st.one_of(JSON_VALUES.map(_json_text), NESTING, st.dictionaries(
    st.text(max_size=6), st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "C64", "X"]),
                                               "shape": st.lists(st.integers(-1, 5), max_size=3),
                                               "data_offsets": st.lists(st.integers(-1, 64), max_size=3)}),
    max_size=3).map(_json_text))  # fmt: skip


@_settings(300)
@given(header=HEADERS, body=st.binary(max_size=64))
def test_safetensors_headers_load_or_raise_a_model_load_error(header: str, body: bytes) -> None:
    raw = header.encode()
    _result_or_refusal(lambda: pe.load_model(len(raw).to_bytes(8, "little") + raw + body, architecture="digits_mlp"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ExperimentStore:
    return ExperimentStore(tmp_path_factory.mktemp("generated") / "experiments.db")


TEXTS = st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["=1+2", "ok\r=1+1", "\ud800", "@SUM(A1)"]))
METRICS = st.dictionaries(
    st.one_of(st.sampled_from(["accuracy", "params", "id", "latency_median_ms", "x"]), st.text(max_size=5)),
    st.one_of(JSON_SCALARS, st.integers(min_value=-(2**80), max_value=2**80), st.just(10**5000)),
    max_size=4,
)


@_settings(300)
@given(name=TEXTS, plan=st.one_of(PLAN_LIKE.map(_json_text), NESTING, st.text(max_size=10)), metrics=METRICS,
       notes=TEXTS)  # fmt: skip
def test_experiment_store_adds_a_run_or_raises_its_error(store, name, plan, metrics, notes) -> None:
    run_id = _result_or_refusal(lambda: store.add(name, plan, metrics, model_name="m", notes=notes))
    if run_id is not None:
        run = store.get(run_id)
        assert run.name == name and run.plan_json == plan
        assert store.to_csv([run_id]).count("\n") >= 2


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli_generated")
    from sample_models import load_sample

    files = {
        "model": folder / "m.safetensors",
        "plan": folder / "plan.json",
        "deep": folder / "deep.json",
        "binary": folder / "binary.json",
        "npz_as_npy": folder / "x.npy",
    }
    files["model"].write_bytes(pe.export_model(load_sample("digits_mlp").model, "safetensors"))
    files["plan"].write_text(pe.PruningPlan(global_ratio=0.3).to_json())
    files["deep"].write_text("[" * 20_000)
    files["binary"].write_bytes(b"\xff\xfe\x00{")
    files["npz_as_npy"].write_bytes(_npz({"inputs": np.ones((4, 64), np.float32)}, compressed=True))
    return files


@_settings(200)
@given(
    command=st.sampled_from(["apply", "inspect", "bogus"]),
    model=st.sampled_from(["model", "deep", "binary", "missing"]),
    plan=st.sampled_from(["plan", "deep", "binary", "model", "missing"]),
    sidecar=st.sampled_from([None, "deep", "binary", "plan"]),
    shape=st.sampled_from([None, "64", "100000,100000", "0", "x", "1," * 20 + "1", "-1"]),
    data=st.sampled_from([None, "npz_as_npy", "plan"]),
    out=st.sampled_from(["out.onnx", "out.txt", "missing/out.pt"]),
)
def test_the_cli_answers_every_bad_argument_with_one_error_line(
    cli_files, tmp_path_factory, capsys, command, model, plan, sidecar, shape, data, out
) -> None:
    folder = cli_files["model"].parent

    def path(name: str) -> str:
        return str(cli_files.get(name, folder / name))

    argv = [command, "--model", path(model), "--architecture", "digits_mlp"]
    if command == "apply":
        argv += ["--plan", path(plan), "--out", str(tmp_path_factory.mktemp("out") / out)]
        argv += ["--data", path(data)] if data else []
    argv += ["--sidecar", path(sidecar)] if sidecar else []
    argv += ["--input-shape", shape] if shape else []
    status = main(argv)
    error = capsys.readouterr().err
    assert status != EXIT_FAILED, error
    if status:
        lines = [line for line in error.splitlines() if line.startswith("prunescope: error:")]
        assert len(lines) == 1, error
        assert "Traceback" not in error
    assert sys.getrecursionlimit() >= 1000
