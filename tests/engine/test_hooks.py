"""Hooks attached to a model other threads run at the same time (the app's shared, read-only models)
act only in the thread that attached them."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

import prune_engine as pe
from prune_engine import heads, latency
from sample_models import load_sample


def _run_alongside(
    model: torch.nn.Module, inputs: torch.Tensor, work: Callable[[], None]
) -> tuple[list[torch.Tensor], list[BaseException]]:
    """Run `model` on `inputs` over and over in another thread while `work()` runs here; that thread's
    outputs and errors."""
    outputs: list[torch.Tensor] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def loop() -> None:
        try:
            with torch.no_grad():
                while not done.is_set():
                    outputs.append(model(inputs))
        except BaseException as error:  # any failure there is what the test looks for
            errors.append(error)

    other = threading.Thread(target=loop)
    other.start()
    try:
        work()
    finally:
        done.set()
        other.join()
    return outputs, errors


def test_a_head_switched_off_to_score_it_does_not_change_another_threads_outputs() -> None:
    bundle = load_sample("tiny_gpt")
    model, inputs = bundle.model.eval(), bundle.eval_data.inputs[:2]
    with torch.no_grad():
        reference = model(inputs)
    layer = pe.attention_layers(model)[0]

    def switch_heads_off() -> None:
        for _ in range(20):
            for group in range(layer.groups):
                with heads._group_switched_off(model, layer, group), torch.no_grad():
                    assert not torch.equal(model(inputs), reference), "here the head is off"

    outputs, errors = _run_alongside(model, inputs, switch_heads_off)
    assert not errors
    assert outputs and all(torch.equal(output, reference) for output in outputs)


def test_profiling_a_model_leaves_another_threads_forward_passes_alone() -> None:
    """The layer clock's hooks once raised KeyError in a latency measurement of the same model."""
    bundle = load_sample("digits_cnn")
    model, inputs = bundle.model.eval(), bundle.eval_data.inputs[:64]
    with torch.no_grad():
        reference = model(inputs)

    def profile() -> None:
        for _ in range(3):
            latency.LatencyPredictor(model, bundle.example_input, batch_size=32)

    outputs, errors = _run_alongside(model, inputs, profile)
    assert not errors
    assert outputs and all(torch.equal(output, reference) for output in outputs)
