"""Label-free evaluation of sentence-embedding models.

An embedding model has no classes to be right or wrong about; what matters is whether
the geometry of its vectors survives pruning. Three figures say so:

- `cosine`: mean cosine similarity between each example's pruned and original embedding
  (1 = the same direction);
- `retrieval_agreement`: share of examples whose nearest neighbour among the other
  examples is the same under the pruned model as under the original (what a search
  engine built on the model would notice);
- `paraphrase_accuracy`: with paraphrase group ids as labels, share of examples that have
  a paraphrase in the set and whose nearest neighbour is one of their paraphrases, i.e.
  a paraphrase ranks above every unrelated sentence. This one needs no original model.

A model says it produces embeddings with a class or instance attribute
`prunescope_task = "embedding"` (the `minilm` sample's wrapper has it); pruned copies keep
it, so `evaluate`, the sensitivity scans and the app pick these figures for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import DataError

EMBEDDING_TASK = "embedding"
TASK_ATTRIBUTE = "prunescope_task"


def is_embedding_model(model: nn.Module | object) -> bool:
    """Whether `model` declares that its outputs are embeddings (`prunescope_task = "embedding"`)."""
    return getattr(model, TASK_ATTRIBUTE, None) == EMBEDDING_TASK


def nearest_neighbours(embeddings: torch.Tensor) -> torch.Tensor:
    """For each row, the index of the most cosine-similar other row."""
    if embeddings.dim() != 2 or len(embeddings) < 2:
        raise DataError(
            f"Nearest neighbours need at least two embeddings of shape (examples, dims); got {tuple(embeddings.shape)}."
        )
    unit = F.normalize(embeddings.float(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-float("inf"))
    return similarity.argmax(dim=1)


def mean_cosine(embeddings: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean cosine similarity between matching rows of `embeddings` and `reference`."""
    _check_pair(embeddings, reference)
    return float(F.cosine_similarity(embeddings.float(), reference.float(), dim=1).mean())


def retrieval_agreement(embeddings: torch.Tensor, reference: torch.Tensor) -> float:
    """Share of examples whose nearest neighbour is the same under both sets of embeddings."""
    _check_pair(embeddings, reference)
    return float((nearest_neighbours(embeddings) == nearest_neighbours(reference)).float().mean())


def paraphrase_accuracy(embeddings: torch.Tensor, groups: torch.Tensor) -> float:
    """Share of examples with a paraphrase whose nearest neighbour is a paraphrase (same group id).

    Examples alone in their group (unrelated sentences) are candidates to be wrongly
    retrieved, but are not scored themselves.
    """
    groups = groups.reshape(-1)
    if len(groups) != len(embeddings):
        raise DataError(f"There are {len(embeddings)} embeddings but {len(groups)} paraphrase group ids.")
    partnered = (groups.unsqueeze(0) == groups.unsqueeze(1)).sum(dim=1) > 1
    if not bool(partnered.any()):
        raise DataError("Paraphrase accuracy needs at least one group of two or more paraphrases in the data.")
    hits = groups[nearest_neighbours(embeddings)] == groups
    return float(hits[partnered].float().mean())


def embedding_fidelity(embeddings: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """`cosine` and `retrieval_agreement` of pruned embeddings with the original's."""
    return {
        "cosine": mean_cosine(embeddings, reference),
        "retrieval_agreement": retrieval_agreement(embeddings, reference),
    }


def embedding_metrics(
    embeddings: torch.Tensor, groups: torch.Tensor | None = None, reference: torch.Tensor | None = None
) -> dict[str, float]:
    """The figures available: `paraphrase_accuracy` with group ids, `cosine` and
    `retrieval_agreement` with the original's embeddings."""
    metrics: dict[str, float] = {}
    if groups is not None:
        metrics["paraphrase_accuracy"] = paraphrase_accuracy(embeddings, groups)
    if reference is not None:
        metrics.update(embedding_fidelity(embeddings, reference))
    return metrics


def _check_pair(embeddings: torch.Tensor, reference: torch.Tensor) -> None:
    if embeddings.shape != reference.shape or embeddings.dim() != 2:
        raise DataError(
            f"Embeddings of shape {tuple(embeddings.shape)} cannot be compared with reference embeddings "
            f"of shape {tuple(reference.shape)}."
        )
