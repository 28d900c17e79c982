"""The tiny_gpt sample: a trained causal language model with held-out data, perplexity and continuations."""

from __future__ import annotations

import math

import pytest
import torch

import prune_engine as pe
from prune_engine.blocks import SkippedBlock
from sample_models import load_sample, sample_info
from sample_models.tiny_gpt import CONTEXT, VOCAB, continue_text, corpus, held_out_sequences
from sample_models.train import LanguageRecipe, train_language_model


@pytest.fixture(scope="module")
def tiny_gpt() -> pe.ModelBundle:
    return load_sample("tiny_gpt")


def test_tiny_gpt_loads_as_a_language_model_with_held_out_token_ids(tiny_gpt: pe.ModelBundle) -> None:
    assert tiny_gpt.task == "language_model"
    assert pe.is_language_model(tiny_gpt.model)
    assert not any(module.training for module in tiny_gpt.model.modules())
    assert tiny_gpt.eval_data.inputs.dtype == torch.int64
    assert tiny_gpt.eval_data.inputs.shape == (64, CONTEXT)
    assert len(pe.attention_layers(tiny_gpt.model)) == 4
    assert sum(p.numel() for p in tiny_gpt.model.parameters()) == sample_info("tiny_gpt").params
    assert 2_000_000 < sample_info("tiny_gpt").params < 5_000_000
    with torch.inference_mode():
        assert tiny_gpt.model(tiny_gpt.example_input).shape == (1, CONTEXT, VOCAB)


def test_no_held_out_sequence_occurs_in_the_training_text(tiny_gpt: pe.ModelBundle) -> None:
    train, _ = corpus()
    train_text = bytes(train.tolist())
    assert torch.equal(held_out_sequences(), tiny_gpt.eval_data.inputs)
    assert not any(bytes(sequence.tolist()) in train_text for sequence in tiny_gpt.eval_data.inputs)


def test_perplexity_is_finite_far_better_than_uniform_and_matches_the_recorded_figure(tiny_gpt: pe.ModelBundle) -> None:
    figures = pe.evaluate(tiny_gpt.model, tiny_gpt.eval_data)

    assert math.isfinite(figures["perplexity"])
    assert figures["perplexity"] < VOCAB / 10
    assert figures["perplexity"] == pytest.approx(tiny_gpt.metadata["perplexity"], rel=1e-3)
    assert figures["perplexity"] == pytest.approx(math.exp(figures["loss"]))


def test_pruned_tiny_gpt_reports_agreement_with_the_original_and_loses_perplexity(tiny_gpt: pe.ModelBundle) -> None:
    plan = pe.PruningPlan(global_ratio=0.7)
    pruned = pe.apply_plan(tiny_gpt.model, plan, tiny_gpt.example_input).model
    data = tiny_gpt.eval_data.subset(16)

    figures = pe.evaluate(pruned, data, reference=tiny_gpt.model)
    same = pe.evaluate(tiny_gpt.model, data, reference=tiny_gpt.model)

    assert same["agreement"] == 1.0
    assert figures["agreement"] < 1.0
    assert figures["perplexity"] > same["perplexity"]


def test_continuation_is_greedy_and_deterministic(tiny_gpt: pe.ModelBundle) -> None:
    first = continue_text(tiny_gpt.model, max_new_tokens=8)
    assert first == continue_text(tiny_gpt.model, max_new_tokens=8)
    assert len(first.encode("utf-8")) >= 8 - 3


def test_block_pruning_turns_half_the_transformer_layers_into_the_identity(tiny_gpt: pe.ModelBundle) -> None:
    plan = pe.PruningPlan(granularity="block", criterion="block_influence", global_ratio=0.5)

    result = pe.apply_plan(tiny_gpt.model, plan, tiny_gpt.example_input, data=tiny_gpt.train_data.subset(16))

    skipped = [name for name, module in result.model.named_modules() if isinstance(module, SkippedBlock)]
    assert len(skipped) == 2 and all(name.startswith("blocks.") for name in skipped)
    assert math.isfinite(pe.evaluate(result.model, tiny_gpt.eval_data.subset(16))["perplexity"])


def test_training_the_language_model_is_deterministic() -> None:
    recipe = LanguageRecipe(steps=2, batch_size=2)
    first = train_language_model(recipe=recipe).state_dict()
    second = train_language_model(recipe=recipe).state_dict()

    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not torch.equal(
        first["lm_head.weight"], train_language_model(steps=0, recipe=recipe).state_dict()["lm_head.weight"]
    )
