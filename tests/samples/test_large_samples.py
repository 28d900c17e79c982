"""The large scale-test samples: hidden by default, built in code with seeded random weights,
GPT-2 small's exact size and layout, and label-free evaluation data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import prune_engine as pe
from prune_engine.data import model_fingerprint
from sample_models import list_samples, load_sample, sample_info
from sample_models.large import (
    LARGE_SAMPLES,
    GPT2Shaped,
    WideMLP,
    init_gpt2,
    init_mlp,
    large_sample_params,
    materialise,
)

GPT2_SMALL_PARAMS = 124_439_808
"""GPT-2 small with its LM head tied to the token embedding (Hugging Face's `gpt2`)."""


def tiny_gpt2() -> nn.Module:
    return materialise(lambda: GPT2Shaped(vocab=97, context=16, hidden=32, layers=2, num_heads=4, inner=64), init_gpt2)


@pytest.fixture(scope="module")
def gpt2() -> pe.ModelBundle:
    return load_sample("gpt2_shaped")


def test_large_samples_are_listed_only_on_request_smallest_first() -> None:
    assert not set(LARGE_SAMPLES) & set(list_samples())
    assert list_samples(include_large=True) == [*list_samples(), "mlp_100m", "gpt2_shaped"]
    assert large_sample_params("mlp_100m") < large_sample_params("gpt2_shaped")


def test_gpt2_shaped_has_gpt2_small_size_layout_and_tied_head(gpt2: pe.ModelBundle) -> None:
    model = gpt2.model
    assert sum(parameter.numel() for parameter in model.parameters()) == GPT2_SMALL_PARAMS
    assert gpt2.metadata["params"] == sample_info("gpt2_shaped").params == GPT2_SMALL_PARAMS
    assert model.lm_head.weight is model.wte.weight
    layers = pe.prunable_layers(model)
    assert len(layers) == 12 * 6 + 1
    assert layers[0].name == "h.0.attn.q_proj" and layers[-1].name == "lm_head"
    attention = model.h[0].attn
    assert attention.num_heads == 12
    assert all(isinstance(getattr(attention, part), nn.Linear) for part in ("q_proj", "k_proj", "v_proj", "out_proj"))
    assert not any(module.training for module in model.modules())


def test_gpt2_shaped_reads_token_ids_and_has_label_free_eval_data(gpt2: pe.ModelBundle) -> None:
    assert gpt2.example_input.shape == (1, 128) and gpt2.example_input.dtype == torch.int64
    assert gpt2.eval_data.labels is None
    assert gpt2.eval_data.inputs.shape == (8, 32)
    assert "random" in gpt2.description and "scale test" in gpt2.description
    with torch.inference_mode():
        logits = gpt2.model(gpt2.eval_data.inputs[:2])
    assert logits.shape == (2, 32, 50257)
    assert torch.isfinite(logits).all() and float(logits.std()) > 0.1


def test_weights_are_seeded_and_leave_the_global_random_state_alone() -> None:
    state = torch.random.get_rng_state()
    first, second = tiny_gpt2(), tiny_gpt2()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model_fingerprint(first) == model_fingerprint(second)
    assert first.lm_head.weight is first.wte.weight
    assert float(first.h[0].attn.q_proj.weight.detach().std()) == pytest.approx(0.02, rel=0.1)


def test_attention_runs_with_whole_heads_removed() -> None:
    """The layout head pruning relies on: drop a head's rows from q/k/v and its columns from out_proj."""
    model = tiny_gpt2()
    tokens = torch.randint(97, (2, 16))
    attention = model.h[0].attn
    head_dim = attention.q_proj.out_features // attention.num_heads
    keep = torch.cat([torch.arange(head_dim), torch.arange(2 * head_dim, 4 * head_dim)])
    with torch.no_grad():
        for part in ("q_proj", "k_proj", "v_proj"):
            old = getattr(attention, part)
            new = nn.Linear(old.in_features, len(keep))
            new.weight.copy_(old.weight[keep])
            new.bias.copy_(old.bias[keep])
            setattr(attention, part, new)
        old = attention.out_proj
        attention.out_proj = nn.Linear(len(keep), old.out_features)
        attention.out_proj.weight.copy_(old.weight[:, keep])
        attention.out_proj.bias.copy_(old.bias)
    attention.num_heads = 3
    with torch.inference_mode():
        assert model(tokens).shape == (2, 16, 97)


def test_mlp_100m_is_a_hundred_million_parameters_with_finite_outputs() -> None:
    bundle = load_sample("mlp_100m")
    assert sum(parameter.numel() for parameter in bundle.model.parameters()) == 100_590_568
    assert bundle.example_input.shape == (1, 3, 32, 32)
    assert bundle.eval_data.labels is None
    assert math.isnan(sample_info("mlp_100m").accuracy)
    with torch.inference_mode():
        outputs = bundle.model(bundle.eval_data.inputs[:4])
    assert outputs.shape == (4, 1000) and torch.isfinite(outputs).all()
    assert 0.1 < float(outputs.std()) < 100, "He init keeps the activations' scale through seven layers"


def test_tiny_mlp_from_the_same_builder_is_seeded() -> None:
    def build() -> nn.Module:
        return WideMLP(input_shape=(4,), width=8, hidden_layers=2, classes=3)

    assert model_fingerprint(materialise(build, init_mlp)) == model_fingerprint(materialise(build, init_mlp))
