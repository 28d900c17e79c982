"""Fuzzing the loaders: broken files either load or raise PruneScopeError, never anything else, never hang.

Deterministic (`derandomize=True`): the same cases run every time. Mutations aim at the
parts that carry structure (the start of a file, where safetensors keep their JSON header
and torch archives their pickle, and the end, where a zip keeps its directory), plus
anywhere in the tensor data.
"""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from prune_engine.architectures import build_architecture
from prune_engine.data import EvalData
from prune_engine.errors import PruneScopeError
from prune_engine.export import export_model
from prune_engine.loading import load_eval_data, load_model

CASE_SECONDS = 5.0
"""A hang check, not a speed target: a healthy case takes milliseconds."""

ARCHITECTURE = "digits_mlp"


def _fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,  # timed by `_loads_or_refuses` instead, with a bound that tolerates a busy machine
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _original(fmt: str) -> bytes:
    torch.manual_seed(0)
    return export_model(build_architecture(ARCHITECTURE), fmt)


ORIGINALS = {fmt: _original(fmt) for fmt in ("state_dict", "safetensors")}


@st.composite
def _mutated(draw: st.DrawFn, original: bytes) -> bytes:
    size = len(original)
    position = st.one_of(
        st.integers(0, min(size - 1, 4096)),
        st.integers(max(0, size - 2048), size - 1),
        st.integers(0, size - 1),
    )
    data = bytearray(original)
    operation = draw(st.sampled_from(["truncate", "flip", "overwrite", "truncate_and_flip"]))
    if operation in ("flip", "truncate_and_flip"):
        for index, xor in draw(st.lists(st.tuples(position, st.integers(1, 255)), min_size=1, max_size=8)):
            data[index] ^= xor
    if operation == "overwrite":
        start = draw(position)
        patch = draw(st.binary(min_size=1, max_size=32))
        data[start : start + len(patch)] = patch
    if operation in ("truncate", "truncate_and_flip"):
        data = data[: draw(st.one_of(st.integers(0, 4096), st.integers(0, size - 1)))]
    return bytes(data)


def _loads_or_refuses(data: bytes) -> None:
    started = time.perf_counter()
    try:
        model = load_model(data, architecture=ARCHITECTURE)
    except PruneScopeError:
        pass
    else:
        assert isinstance(model, nn.Module)
    elapsed = time.perf_counter() - started
    assert elapsed < CASE_SECONDS, f"one case took {elapsed:.1f} s"


@_fuzz_settings(250)
@given(data=_mutated(ORIGINALS["state_dict"]))
def test_mutated_state_dicts_load_or_raise_prunescope_errors(data):
    _loads_or_refuses(data)


@_fuzz_settings(250)
@given(data=_mutated(ORIGINALS["safetensors"]))
def test_mutated_safetensors_load_or_raise_prunescope_errors(data):
    _loads_or_refuses(data)


MAGIC_PREFIXES = [
    b"",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x80\x02",
    b"\x80\x04\x95",
    b"\x08\x08\x12",
    b"\x40\x00\x00\x00\x00\x00\x00\x00{",
    b"\x93NUMPY",
]


@_fuzz_settings(150)
@given(prefix=st.sampled_from(MAGIC_PREFIXES), body=st.binary(max_size=2048))
def test_random_bytes_behind_magic_numbers_raise_prunescope_errors(prefix, body):
    _loads_or_refuses(prefix + body)


@_fuzz_settings(100)
@given(
    filename=st.sampled_from(["d.csv", "d.npz", "d.npy", "d.pt", "d.safetensors"]),
    body=st.one_of(
        st.binary(min_size=1, max_size=512),
        st.text(alphabet="0123456789.,-e\nabn ", min_size=1, max_size=200).map(str.encode),
    ),
)
def test_random_eval_data_files_load_or_raise_prunescope_errors(filename, body):
    try:
        data = load_eval_data(body, filename=filename)
    except PruneScopeError:
        return
    assert isinstance(data, EvalData)


def test_the_fuzz_originals_load():
    for data in ORIGINALS.values():
        assert isinstance(load_model(data, architecture=ARCHITECTURE), nn.Module)


@pytest.mark.parametrize("fmt", list(ORIGINALS))
def test_every_truncation_point_in_the_header_region_is_handled(fmt):
    original = ORIGINALS[fmt]
    for end in range(0, min(len(original), 1200), 7):
        _loads_or_refuses(original[:end])
