"""Masks for unstructured and N:M pruning, computed from importance scores.

Masks come from `torch.nn.utils.prune` (its `L1Unstructured.compute_mask`, fed with the
criterion's scores as `importance_scores` would be), so for the l1 criterion the zero
pattern is exactly what `prune.l1_unstructured` / `prune.global_unstructured` give.
"""

from __future__ import annotations

import torch
from torch.nn.utils import prune


def layer_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep-mask zeroing the `round(ratio × size)` lowest-scoring entries of one layer."""
    return prune.L1Unstructured(amount=float(ratio)).compute_mask(scores, torch.ones_like(scores))


def count_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Keep-mask zeroing exactly the `count` lowest-scoring entries."""
    return prune.L1Unstructured(amount=int(count)).compute_mask(scores, torch.ones_like(scores))


def global_masks(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Keep-masks from ranking all layers' scores together, as `prune.global_unstructured` does."""
    flat = torch.cat([layer_scores.reshape(-1) for layer_scores in scores.values()])
    mask = prune.L1Unstructured(amount=float(ratio)).compute_mask(flat, torch.ones_like(flat))
    result, start = {}, 0
    for name, layer_scores in scores.items():
        result[name] = mask[start : start + layer_scores.numel()].reshape(layer_scores.shape)
        start += layer_scores.numel()
    return result


def bounded_counts(
    scores: dict[str, torch.Tensor],
    total: int,
    low: dict[str, int],
    high: dict[str, int],
) -> dict[str, int]:
    """How many entries each layer loses when `total` are removed by global ranking,
    each layer losing at least `low[name]` and at most `high[name]`.

    Every layer first loses its `low` lowest entries; the remaining budget goes to the
    lowest-scoring entries among those each layer may still lose (up to `high`).
    """
    counts = {name: min(low[name], high[name]) for name in scores}
    budget = total - sum(counts.values())
    if budget <= 0:
        return counts
    candidates, owners = [], []
    for index, (name, layer_scores) in enumerate(scores.items()):
        ordered = torch.sort(layer_scores.reshape(-1).float()).values[counts[name] : high[name]]
        candidates.append(ordered)
        owners.append(torch.full((len(ordered),), index, dtype=torch.long))
    pool = torch.cat(candidates)
    if budget >= len(pool):
        return {name: max(counts[name], high[name]) for name in scores}
    chosen = torch.topk(pool, budget, largest=False).indices
    taken = torch.bincount(torch.cat(owners)[chosen], minlength=len(scores))
    return {name: counts[name] + int(taken[index]) for index, name in enumerate(scores)}


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask with the `n` highest scores kept in every `m` consecutive input weights.

    For a convolution the groups run along input channels at each kernel position (the
    layout sparse tensor cores use), i.e. over dim 1 of the weight.
    """
    moved = scores.movedim(1, -1) if scores.dim() > 2 else scores
    groups = moved.reshape(-1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, n, dim=1).indices, True)
    keep = keep.reshape(moved.shape)
    return (keep.movedim(-1, 1) if scores.dim() > 2 else keep).to(scores.dtype)
