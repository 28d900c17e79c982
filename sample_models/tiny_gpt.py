"""The `tiny_gpt` sample: a small causal language model trained here on Python's own documentation.

Text: the documentation topics that ship inside CPython as `pydoc_data.topics` (the texts
`help("if")`, `help("lambda")` … print), under the Python Software Foundation licence, so
it is on every machine and may be redistributed. Topics are sorted by name; every
`HELD_OUT_EVERY`-th topic is held out for evaluation, the rest is training text. Text is
read as UTF-8 bytes (a vocabulary of 256 token ids, no tokenizer to ship), so perplexity
is per byte.

The model is GPT-2-shaped: learned token and position embeddings, pre-norm blocks of causal
self-attention with separate q/k/v/out projections (so `prune_engine.heads` can remove
whole heads) and a GELU MLP, a final LayerNorm and an untied output layer. Its evaluation
data are held-out token ids written next to the weights at training time (`tiny_gpt_eval`),
so the figure does not move when another Python version ships slightly different topics.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from prune_engine import EvalData, ModelBundle
from prune_engine.errors import ModelLoadError
from prune_engine.language import LANGUAGE_MODEL_TASK, generate

from .large import CausalSelfAttention

NAME = "tiny_gpt"
VOCAB = 256
"""Token ids are the bytes of UTF-8 text."""
CONTEXT = 128
HIDDEN = 256
HEADS = 4
LAYERS = 4
FFN = 1024
HELD_OUT_EVERY = 5
"""Every 5th documentation topic (sorted by name) is held out for evaluation."""
EVAL_SEQUENCES = 64
"""Held-out sequences of `CONTEXT` tokens in the shipped evaluation data."""
PROMPT = "The if statement is used for"
"""The prompt the app continues before and after pruning."""

WEIGHTS_DIR = Path(__file__).parent / "weights"
EVAL_PATH = WEIGHTS_DIR / "tiny_gpt_eval.safetensors"

DESCRIPTION = (
    "A small GPT-style language model (4 transformer layers of 4 attention heads, 3.3 M parameters) that "
    "PruneScope trained in a few minutes to continue English text, byte by byte, on Python's own "
    "documentation topics (pydoc_data.topics, shipped with every Python under the PSF licence). It is judged "
    "by perplexity on held-out topics: how many bytes, on average, it hesitates between (lower is better); a "
    "model that guessed uniformly would score 256."
)


class MLP(nn.Module):
    """The feed-forward part of a block: widen, GELU, narrow back."""

    def __init__(self, hidden: int, ffn: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, ffn)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(ffn, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm GPT-2 block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, hidden: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, heads)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = MLP(hidden, ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Token ids (batch, tokens ≤ `CONTEXT`) in, next-token logits (batch, tokens, `VOCAB`) out.

    `prunescope_task = "language_model"` tells the engine to report perplexity for it.
    """

    prunescope_task = LANGUAGE_MODEL_TASK

    def __init__(
        self, vocab: int = VOCAB, context: int = CONTEXT, hidden: int = HIDDEN, heads: int = HEADS, layers: int = LAYERS
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(context, hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads, FFN) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tokens(input_ids) + self.positions(positions)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def encode(text: str) -> torch.Tensor:
    """Token ids of `text`: its UTF-8 bytes, int64."""
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


def decode(ids: torch.Tensor) -> str:
    """Text from token ids; a byte sequence cut inside a character shows as �."""
    return bytes(int(token) for token in ids.reshape(-1)).decode("utf-8", errors="replace")


@functools.cache
def corpus() -> tuple[torch.Tensor, torch.Tensor]:
    """`(train, held_out)` token ids of the documentation topics, split by topic."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    held_out = [topics[name] for index, name in enumerate(names) if index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [topics[name] for index, name in enumerate(names) if index % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return encode("\n\n".join(train)), encode("\n\n".join(held_out))


def held_out_sequences(count: int = EVAL_SEQUENCES, length: int = CONTEXT) -> torch.Tensor:
    """`count` non-overlapping held-out sequences of `length` token ids, spread over the held-out text.

    Topics repeat some passages of others (shared boilerplate, overlapping sections), so a
    window of held-out text that also occurs in the training text is left out."""
    train, held_out = corpus()
    train_text = bytes(train.tolist())
    windows = [held_out[start : start + length] for start in range(0, len(held_out) - length + 1, length)]
    unseen = [window for window in windows if bytes(window.tolist()) not in train_text]
    if len(unseen) < count:
        raise ModelLoadError(f"The held-out documentation has only {len(unseen)} unseen windows of {length} bytes.")
    return torch.stack([unseen[index] for index in torch.linspace(0, len(unseen) - 1, count).round().long().tolist()])


def save_eval_data(path: Path = EVAL_PATH) -> None:
    """Write the held-out sequences (as bytes) that `load_tiny_gpt_sample` evaluates on."""
    save_file({"input_ids": held_out_sequences().to(torch.uint8)}, str(path))


def eval_data() -> EvalData:
    """The shipped held-out token ids (no labels: each sequence is its own target, shifted by one)."""
    if not EVAL_PATH.is_file():
        raise ModelLoadError(
            "The evaluation data of sample 'tiny_gpt' is missing; run `python -m sample_models.train`."
        )
    return EvalData(load_file(str(EVAL_PATH))["input_ids"].long())


def continue_text(model: nn.Module, prompt: str = PROMPT, max_new_tokens: int = 80) -> str:
    """The greedy (deterministic) continuation of `prompt` by `model`, as text, without the prompt."""
    ids = generate(model, encode(prompt).unsqueeze(0), max_new_tokens, context=CONTEXT)
    return decode(ids[0, len(encode(prompt)) :])


def load_tiny_gpt_sample(weights: Path, figures: dict[str, float] | None) -> ModelBundle:
    """The trained `tiny_gpt` in eval mode, its held-out sequences as `eval_data`, the training text
    (cut into sequences) as `train_data`, and one held-out sequence as `example_input`."""
    if not weights.is_file():
        raise ModelLoadError("The weights of sample 'tiny_gpt' are missing; run `python -m sample_models.train`.")
    model = TinyGPT()
    model.load_state_dict(load_file(str(weights)), strict=True)
    model.eval()
    data = eval_data()
    figures = figures or {}
    return ModelBundle(
        name=NAME,
        model=model,
        example_input=data.inputs[:1].clone(),
        eval_data=data,
        train_data=EvalData(train_sequences()),
        task=LANGUAGE_MODEL_TASK,
        description=DESCRIPTION,
        metadata={
            "perplexity": figures.get("perplexity", float("nan")),
            "params": figures.get("params", sum(p.numel() for p in model.parameters())),
            "architecture": NAME,
            "input_shape": ["tokens"],
            "dataset": f"{len(data)} held-out sequences of {CONTEXT} bytes from pydoc_data.topics (PSF licence)",
            "prompt": PROMPT,
        },
    )


def train_sequences(count: int = 512, length: int = CONTEXT) -> torch.Tensor:
    """`count` training sequences of `length` token ids spread evenly over the training text (for
    calibration and recovery; training itself draws random windows)."""
    train, _ = corpus()
    starts = torch.linspace(0, len(train) - length - 1, count).long()
    return torch.stack([train[start : start + length] for start in starts.tolist()])


def language_model_loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of `model` on `ids` (nats per token)."""
    logits = model(ids[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
