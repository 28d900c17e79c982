"""Large samples for scale tests: a GPT-2-small-shaped language model and a 100 M-parameter MLP.

Neither is trained: both are built in code with seeded random weights (nothing is
downloaded or shipped), so they test whether PruneScope stays fast and bounded in
memory on real-sized models, not what pruning does to a trained one. Their evaluation
data are random inputs with no labels: the app scores a pruned copy by how closely it
follows the original (top-1 agreement, output cosine).

Weights are created on the `meta` device and then materialised once with
`torch.nn.init` under a private generator, so building costs one pass over the
weights (no default init that is then overwritten) and leaves torch's global random
state alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prune_engine import EvalData, ModelBundle

SEED = 0
"""Seed of every large sample's weights and evaluation inputs."""

GPT2_VOCAB = 50257
GPT2_CONTEXT = 1024
GPT2_HIDDEN = 768
GPT2_HEADS = 12
GPT2_LAYERS = 12
GPT2_FFN = 3072
GPT2_INIT_STD = 0.02
"""GPT-2's own initialisation: normal(0, 0.02) for embeddings and projections."""

GPT2_EXAMPLE_TOKENS = 128
"""Length of the example sequence (latency is timed on 8 of them: 8 × 128 tokens)."""
GPT2_EVAL_SEQUENCES = 8
GPT2_EVAL_TOKENS = 32
"""Evaluation sequences are short: the model returns 50,257 logits per token, so 8 × 32 tokens
already give 51 MB of outputs per model to compare."""

MLP_INPUT_SHAPE = (3, 32, 32)
MLP_WIDTH = 4096
MLP_HIDDEN_LAYERS = 6
MLP_CLASSES = 1000
MLP_EVAL_EXAMPLES = 256


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate query, key, value and output projections.

    The head size is read from the projections at every call (`q_proj.out_features //
    num_heads`), so a copy with whole heads removed from `q_proj`, `k_proj`, `v_proj`
    (rows) and `out_proj` (columns) and a smaller `num_heads` keeps working.
    """

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = hidden_states.shape
        head_dim = self.q_proj.out_features // self.num_heads

        def heads(projection: nn.Linear) -> torch.Tensor:
            return projection(hidden_states).view(batch, tokens, self.num_heads, head_dim).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(self.q_proj), heads(self.k_proj), heads(self.v_proj), is_causal=True
        )
        return self.out_proj(attended.transpose(1, 2).reshape(batch, tokens, self.num_heads * head_dim))


class MLPBlock(nn.Module):
    """GPT-2's feed-forward part: expand, GELU (tanh approximation), project back."""

    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.fc = nn.Linear(hidden, inner)
        self.proj = nn.Linear(inner, hidden)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(hidden_states), approximate="tanh"))


class TransformerBlock(nn.Module):
    """A pre-norm GPT-2 block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, hidden: int, num_heads: int, inner: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, num_heads)
        self.ln_2 = nn.LayerNorm(hidden)
        self.mlp = MLPBlock(hidden, inner)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.attn(self.ln_1(hidden_states))
        return hidden_states + self.mlp(self.ln_2(hidden_states))


class GPT2Shaped(nn.Module):
    """A decoder-only language model with GPT-2 small's shape: token ids (batch, tokens) → logits
    (batch, tokens, vocabulary).

    The LM head is tied to the token embedding, as in GPT-2: that is what makes GPT-2
    small 124 M parameters (untied it would be 163 M). `lm_head` is still its own
    `nn.Linear` module, so it is listed as a prunable layer; pruning it zeroes the same
    tensor the embedding reads, and the engine prunes a shared tensor once.
    """

    def __init__(
        self,
        vocab: int = GPT2_VOCAB,
        context: int = GPT2_CONTEXT,
        hidden: int = GPT2_HIDDEN,
        layers: int = GPT2_LAYERS,
        num_heads: int = GPT2_HEADS,
        inner: int = GPT2_FFN,
    ) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(context, hidden)
        self.h = nn.ModuleList(TransformerBlock(hidden, num_heads, inner) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Make the LM head read the token embedding's tensor (again, after `to_empty`)."""
        self.lm_head.weight = self.wte.weight

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        hidden_states = self.wte(token_ids) + self.wpe(positions)
        for block in self.h:
            hidden_states = block(hidden_states)
        return self.lm_head(self.ln_f(hidden_states))


class WideMLP(nn.Module):
    """A deep, wide fully connected classifier: a 3×32×32 image flattened (3,072 values) →
    six hidden layers of 4,096 ReLU units → 1,000 classes; 100.6 M parameters."""

    def __init__(
        self,
        input_shape: tuple[int, ...] = MLP_INPUT_SHAPE,
        width: int = MLP_WIDTH,
        hidden_layers: int = MLP_HIDDEN_LAYERS,
        classes: int = MLP_CLASSES,
    ) -> None:
        super().__init__()
        features = math.prod(input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for index in range(hidden_layers):
            layers += [nn.Linear(features if index == 0 else width, width), nn.ReLU()]
        layers.append(nn.Linear(width, classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def materialise(build: Callable[[], nn.Module], init: Callable[[nn.Module, torch.Generator], None]) -> nn.Module:
    """Build a model on the meta device, allocate its tensors once and fill them with `init`.

    `to_empty` gives every parameter its own tensor, so a model with a `tie_weights` method
    is re-tied before `init`. Torch's global random state is not touched: `init` draws
    from its own seeded generator.
    """
    with torch.device("meta"):
        model = build()
    model = model.to_empty(device="cpu")
    if callable(getattr(model, "tie_weights", None)):
        model.tie_weights()
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        init(model, generator)
    return model.eval()


def init_gpt2(model: nn.Module, generator: torch.Generator) -> None:
    """GPT-2's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorms; the
    projections back into the residual stream scaled by 1/√(2 × layers)."""
    layers = sum(isinstance(module, TransformerBlock) for module in model.modules())
    residual_std = GPT2_INIT_STD / math.sqrt(2 * max(layers, 1))
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            if module is getattr(model, "lm_head", None):
                continue  # tied to the token embedding, initialised there
            std = residual_std if name.endswith(("out_proj", "mlp.proj")) else GPT2_INIT_STD
            nn.init.normal_(module.weight, 0.0, std, generator=generator)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def init_mlp(model: nn.Module, generator: torch.Generator) -> None:
    """He (Kaiming) normal weights for ReLU layers, so activations keep their scale through
    all seven layers; zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class LargeSample:
    """How to build one large sample and its random evaluation data."""

    description: str
    build: Callable[[], nn.Module]
    init: Callable[[nn.Module, torch.Generator], None]
    inputs: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    """(example_input, eval inputs) drawn from the generator."""
    metadata: dict[str, object]


def _gpt2_inputs(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    example = torch.randint(GPT2_VOCAB, (1, GPT2_EXAMPLE_TOKENS), generator=generator)
    inputs = torch.randint(GPT2_VOCAB, (GPT2_EVAL_SEQUENCES, GPT2_EVAL_TOKENS), generator=generator)
    return example, inputs


def _mlp_inputs(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = torch.randn((MLP_EVAL_EXAMPLES, *MLP_INPUT_SHAPE), generator=generator)
    return inputs[:1].clone(), inputs


SCALE_NOTE = (
    "Its weights are random (seeded, built in code, nothing downloaded): it is a scale test of speed and memory, "
    "not a trained model, so its outputs mean nothing and it is scored only by how closely a pruned copy follows "
    "the original (agreement and cosine on random inputs, no labels)."
)

LARGE_SAMPLES: dict[str, LargeSample] = {
    "mlp_100m": LargeSample(
        description=(
            "A wide fully connected classifier of 100.6 M parameters: a 3×32×32 image flattened to 3,072 values, six "
            f"hidden layers of 4,096 neurons and 1,000 outputs. {SCALE_NOTE}"
        ),
        build=WideMLP,
        init=init_mlp,
        inputs=_mlp_inputs,
        metadata={
            "architecture": "mlp_100m",
            "input_shape": list(MLP_INPUT_SHAPE),
            "dataset": f"{MLP_EVAL_EXAMPLES} random images (no labels)",
            "random_weights": True,
        },
    ),
    "gpt2_shaped": LargeSample(
        description=(
            "A language model with the shape of GPT-2 small: 124 M parameters, 12 transformer blocks of 12 attention "
            "heads, hidden size 768, feed-forward 3,072, a 50,257-token vocabulary with the output layer tied to the "
            f"token embedding. It reads sequences of token ids. {SCALE_NOTE}"
        ),
        build=GPT2Shaped,
        init=init_gpt2,
        inputs=_gpt2_inputs,
        metadata={
            "architecture": "gpt2_shaped",
            "input_shape": [GPT2_EXAMPLE_TOKENS],
            "input_kind": "token ids",
            "dataset": f"{GPT2_EVAL_SEQUENCES} random token sequences of {GPT2_EVAL_TOKENS} tokens (no labels)",
            "random_weights": True,
        },
    ),
}
"""Large sample name → how to build it; also sets their order in the sample list (smallest first)."""


def load_large_sample(name: str) -> ModelBundle:
    """Large sample `name`: a new model with seeded random weights, in eval mode, and its random eval inputs.

    Every call builds the same weights and inputs afresh (about a second for 124 M parameters).
    """
    sample = LARGE_SAMPLES[name]
    model = materialise(sample.build, sample.init)
    example, inputs = sample.inputs(torch.Generator().manual_seed(SEED + 1))
    params = sum(parameter.numel() for parameter in model.parameters())
    return ModelBundle(
        name=name,
        model=model,
        example_input=example,
        eval_data=EvalData(inputs),
        task="classification",
        description=sample.description,
        metadata={**sample.metadata, "params": params},
    )


def large_sample_params(name: str) -> int:
    """Parameters of large sample `name`, counted on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = LARGE_SAMPLES[name].build()
    return sum(parameter.numel() for parameter in model.parameters())
