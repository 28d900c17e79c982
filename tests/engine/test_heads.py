"""Attention-head pruning: whole heads leave q/k/v and the output projection, shapes stay consistent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prune_engine as pe
from prune_engine.data import model_fingerprint
from prune_engine.heads import ablation_scores
from sample_models import load_sample
from sample_models.large import CausalSelfAttention

WIDTH, HEADS, CLASSES = 48, 6, 5


class PlainAttention(nn.Module):
    """The plain form of the head protocol: num_heads and q_proj/k_proj/v_proj/out_proj."""

    def __init__(self, width: int = WIDTH, heads: int = HEADS) -> None:
        super().__init__()
        self.num_heads, self.head_dim = heads, width // heads
        self.q_proj, self.k_proj, self.v_proj = (
            nn.Linear(width, width),
            nn.Linear(width, width),
            nn.Linear(width, width),
        )
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape

        def split(projection: nn.Linear) -> torch.Tensor:
            return projection(x).view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)

        heads = F.scaled_dot_product_attention(split(self.q_proj), split(self.k_proj), split(self.v_proj))
        return self.out_proj(heads.transpose(1, 2).reshape(batch, tokens, -1))


class TinyTransformer(nn.Module):
    """Two pre-norm blocks of plain attention + MLP and a classifier on the mean token."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "norm": nn.LayerNorm(WIDTH),
                    "attn": PlainAttention(),
                    "fc1": nn.Linear(WIDTH, 4 * WIDTH),
                    "fc2": nn.Linear(4 * WIDTH, WIDTH),
                }
            )
            for _ in range(2)
        )
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block["attn"](block["norm"](x))
            x = x + block["fc2"](F.gelu(block["fc1"](x)))
        return self.head(x.mean(dim=1))


def _params(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(scope="module")
def minilm() -> pe.ModelBundle:
    return load_sample("minilm")


def test_head_pruning_minilm_keeps_shapes_consistent_and_outputs_finite(minilm: pe.ModelBundle) -> None:
    before = model_fingerprint(minilm.model)
    layers = pe.attention_layers(minilm.model)
    plan = pe.PruningPlan(granularity="head", global_ratio=0.25)

    result = pe.apply_plan(minilm.model, plan, minilm.example_input)

    assert model_fingerprint(minilm.model) == before, "the loaded model is never changed"
    pruned_layers = pe.attention_layers(result.model)
    assert [layer.heads for layer in pruned_layers] == [9] * 6
    for layer in pruned_layers:
        attention = result.model.get_submodule(layer.name)
        assert attention.self.num_attention_heads == 9 and attention.self.all_head_size == 9 * 32
        for name in (layer.query, layer.key, layer.value):
            assert result.model.get_submodule(name).weight.shape == (9 * 32, 384)
        assert result.model.get_submodule(layer.output).weight.shape == (384, 9 * 32)
    assert _params(minilm.model) - _params(result.model) == 6 * 3 * layers[0].head_params
    assert set(result.report.loc[result.report["assigned_ratio"] > 0, "achieved_ratio"].round(6)) == {0.25}
    with torch.inference_mode():
        embeddings = result.model(minilm.eval_data.inputs[:32])
    assert embeddings.shape == (32, 384)
    assert bool(torch.isfinite(embeddings).all())


def test_head_pruning_a_plain_attention_model_removes_the_lowest_scoring_heads() -> None:
    model = TinyTransformer().eval()
    first = model.blocks[0]["attn"]
    with torch.no_grad():
        for head in (1, 4):
            span = slice(head * first.head_dim, (head + 1) * first.head_dim)
            for projection in (first.q_proj, first.k_proj, first.v_proj):
                projection.weight[span] *= 1e-3
            first.out_proj.weight[:, span] *= 1e-3
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    example = torch.randn(3, 7, WIDTH)
    plan = pe.PruningPlan(granularity="head", ratios={"blocks.0.attn": 1 / 3, "blocks.1.attn": 0.5})

    result = pe.apply_plan(model, plan, example)

    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    pruned_first, pruned_second = result.model.blocks[0]["attn"], result.model.blocks[1]["attn"]
    assert (pruned_first.num_heads, pruned_second.num_heads) == (4, 3)
    kept = [head for head in range(HEADS) if head not in (1, 4)]
    rows = torch.cat([torch.arange(h * first.head_dim, (h + 1) * first.head_dim) for h in kept])
    assert torch.equal(pruned_first.q_proj.weight, first.q_proj.weight[rows])
    assert torch.equal(pruned_first.out_proj.weight, first.out_proj.weight[:, rows])
    assert torch.equal(pruned_first.out_proj.bias, first.out_proj.bias)
    head_params = pe.attention_layers(model)[0].head_params
    assert head_params == 8 * (3 * WIDTH + WIDTH + 3)
    assert _params(model) - _params(result.model) == (2 + 3) * head_params
    output = result.model(example)
    assert output.shape == (3, CLASSES) and bool(torch.isfinite(output).all())


def test_global_head_ranking_keeps_one_head_per_layer_and_removes_the_asked_share() -> None:
    model = TinyTransformer().eval()
    plan = pe.PruningPlan(granularity="head", scope="global", global_ratio=0.5, criterion="l2")

    result = pe.apply_plan(model, plan, torch.randn(2, 5, WIDTH))

    heads = [layer.heads for layer in pe.attention_layers(result.model)]
    assert sum(heads) == HEADS and min(heads) >= 1


def test_ablation_scores_a_switched_off_head_as_unimportant() -> None:
    model = TinyTransformer().eval()
    attention = model.blocks[1]["attn"]
    with torch.no_grad():
        attention.out_proj.weight[:, 2 * attention.head_dim : 3 * attention.head_dim] = 0
    data = pe.EvalData(torch.randn(16, 5, WIDTH))

    scores = ablation_scores(model, pe.attention_layers(model), data)

    assert scores["blocks.1.attn"][2] == 0
    assert bool((scores["blocks.1.attn"][[0, 1, 3, 4, 5]] > 0).all())
    pruned = pe.apply_plan(
        model,
        pe.PruningPlan(granularity="head", criterion="ablation", ratios={"blocks.1.attn": 0.2}),
        data.inputs,
        data,
    )
    assert pruned.model.blocks[1]["attn"].num_heads == 5
    assert torch.allclose(pruned.model(data.inputs), model(data.inputs), atol=1e-5), "only the silent head went"


def test_head_pruning_refuses_models_without_attention_and_plans_naming_other_layers() -> None:
    digits = load_sample("digits_mlp")
    with pytest.raises(pe.UnsupportedModelError, match="attention layers"):
        pe.apply_plan(digits.model, pe.PruningPlan(granularity="head", global_ratio=0.25), digits.example_input)
    model = TinyTransformer().eval()
    with pytest.raises(pe.InvalidPlanError, match=r"blocks\.0\.fc1"):
        pe.apply_plan(model, pe.PruningPlan(granularity="head", ratios={"blocks.0.fc1": 0.5}), torch.randn(1, 4, WIDTH))


def test_channel_pruning_minilm_shrinks_ffn_layers_and_refuses_attention_projections(minilm: pe.ModelBundle) -> None:
    ffn = [layer.name for layer in pe.prunable_layers(minilm.model) if layer.name.endswith("intermediate.dense")]

    result = pe.apply_plan(
        minilm.model, pe.PruningPlan(granularity="channel", ratios=dict.fromkeys(ffn, 0.25)), minilm.example_input
    )

    assert all(result.model.get_submodule(name).out_features == 1152 for name in ffn)
    with torch.inference_mode():
        assert bool(torch.isfinite(result.model(minilm.eval_data.inputs[:8])).all())
    query = pe.attention_layers(minilm.model)[0].query
    with pytest.raises(pe.PruneScopeError, match="granularity 'head'"):
        pe.apply_plan(minilm.model, pe.PruningPlan(granularity="channel", ratios={query: 0.25}), minilm.example_input)


def test_nm_pruning_minilm_gives_the_pattern_and_finite_embeddings(minilm: pe.ModelBundle) -> None:
    result = pe.apply_plan(minilm.model, pe.PruningPlan(granularity="n:m", n=2, m=4), minilm.example_input)

    weight = result.model.get_submodule(ffn_name := "bert.encoder.layer.0.intermediate.dense").weight
    assert bool(((weight.reshape(weight.shape[0], -1, 4) != 0).sum(dim=2) <= 2).all()), ffn_name
    with torch.inference_mode():
        assert bool(torch.isfinite(result.model(minilm.eval_data.inputs[:8])).all())


def test_ablation_refuses_layers_outside_attention_with_a_sentence() -> None:
    digits = load_sample("digits_mlp")

    with pytest.raises(pe.CriterionError, match="scores attention heads"):
        pe.importance(digits.model, "ablation", digits.eval_data.subset(8))


def test_the_gpt2_shaped_sample_attention_follows_the_plain_protocol() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(CausalSelfAttention(64, 8), nn.Linear(64, 3)).eval()
    example = torch.randn(2, 6, 64)

    result = pe.apply_plan(model, pe.PruningPlan(granularity="head", global_ratio=0.25), example)

    assert [layer.heads for layer in pe.attention_layers(result.model)] == [6]
    assert result.model(example).shape == (2, 6, 3)


def test_taylor_refuses_an_embedding_model_with_a_sentence(minilm: pe.ModelBundle) -> None:
    """Group ids are not classes of a 384-dimensional embedding: no loss to differentiate, so a clear refusal."""
    sample = pe.EvalData(minilm.eval_data.inputs[:4], minilm.eval_data.labels[:4])
    with pytest.raises(pe.CriterionError, match="embedding model"):
        pe.importance(minilm.model, "taylor", sample)
