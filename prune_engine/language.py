"""Causal language models: perplexity, fidelity per token, and greedy continuations.

A model says it is a causal language model with `prunescope_task = "language_model"`
(the `tiny_gpt` sample has it; pruned copies keep it). It takes token ids of shape
(examples, tokens) and returns next-token logits of shape (examples, tokens, vocabulary).
Its evaluation data need no labels: each sequence is its own target, shifted by one token.

- `perplexity`: exp of the mean next-token cross-entropy (`loss`, nats per token); a model
  that guessed uniformly over V tokens scores V.
- with the original's logits: `agreement` (share of positions whose most likely next token
  is unchanged) and `cosine` (mean cosine similarity of the logit vectors per position).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import DataError

LANGUAGE_MODEL_TASK = "language_model"
TASK_ATTRIBUTE = "prunescope_task"


def is_language_model(model: nn.Module | object) -> bool:
    """Whether `model` declares that it predicts next tokens (`prunescope_task = "language_model"`)."""
    return getattr(model, TASK_ATTRIBUTE, None) == LANGUAGE_MODEL_TASK


def language_model_metrics(
    logits: torch.Tensor, input_ids: torch.Tensor, reference: torch.Tensor | None = None
) -> dict[str, float]:
    """`perplexity` and `loss` of next-token `logits` on `input_ids`; with `reference` logits also
    `agreement` and `cosine` per position."""
    if logits.dim() != 3 or logits.shape[:2] != input_ids.shape or input_ids.shape[1] < 2:
        raise DataError(
            f"A language model needs token ids of shape (examples, tokens ≥ 2) and gives logits of shape "
            f"(examples, tokens, vocabulary); got ids {tuple(input_ids.shape)} and logits {tuple(logits.shape)}."
        )
    targets = input_ids[:, 1:].to(logits.device).long()
    loss = float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)))
    metrics = {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}
    if reference is not None:
        if reference.shape != logits.shape:
            raise DataError(
                f"Logits of shape {tuple(logits.shape)} cannot be compared with reference logits "
                f"of shape {tuple(reference.shape)}."
            )
        reference = reference.to(logits.device)
        metrics["agreement"] = float((logits.argmax(dim=-1) == reference.argmax(dim=-1)).float().mean())
        metrics["cosine"] = float(F.cosine_similarity(logits.float(), reference.float(), dim=-1).mean())
    return metrics


@torch.inference_mode()
def generate(
    model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, context: int | None = None
) -> torch.Tensor:
    """`input_ids` (1 × tokens) followed by `max_new_tokens` greedily chosen tokens (always the most
    likely next one, so the same model gives the same text); the model sees at most `context` tokens."""
    device = next((parameter.device for parameter in model.parameters()), input_ids.device)
    ids = input_ids.to(device)
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            window = ids if context is None else ids[:, -context:]
            next_token = model(window)[:, -1].argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, next_token], dim=1)
    finally:
        model.train(was_training)
    return ids.to(input_ids.device)
