"""Masks for unstructured and N:M pruning, computed from importance scores.

Per-layer masks remove the same count as `torch.nn.utils.prune.l1_unstructured` (the
`round(ratio × size)` lowest scores) but find them with one `kthvalue` threshold instead
of a `topk` of that many entries, which was 3× slower and 4× larger in memory on 100 M+
weights; the zero pattern is the same unless scores tie at the threshold (then the
first ties in index order go). Global masks rank all scores the same way, as
`prune.global_unstructured` does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .lazy import map_layers


def layer_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep-mask (bool) zeroing the `round(ratio × size)` lowest-scoring entries of one layer."""
    return count_mask(scores, round(float(ratio) * scores.numel()))


def count_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Keep-mask (bool) zeroing exactly the `count` lowest-scoring entries.

    Everything below the count-th lowest score goes, then as many of the scores equal to
    it as the count still needs, first in index order.
    """
    count = min(max(int(count), 0), scores.numel())
    if count == 0:
        return torch.ones_like(scores, dtype=torch.bool)
    threshold = scores.reshape(-1).kthvalue(count).values
    keep = (scores > threshold).contiguous()
    ties_kept = int(torch.count_nonzero(scores <= threshold)) - count
    if ties_kept > 0:
        ties = (scores == threshold).reshape(-1).nonzero().reshape(-1)[-ties_kept:]
        keep.view(-1)[ties] = True
    return keep


def global_masks(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Keep-masks (bool) from ranking all layers' scores together, as `prune.global_unstructured` does."""
    flat = torch.cat([layer_scores.reshape(-1) for layer_scores in scores.values()])
    mask = count_mask(flat, round(float(ratio) * flat.numel()))
    result, start = {}, 0
    for name, layer_scores in scores.items():
        result[name] = mask[start : start + layer_scores.numel()].reshape(layer_scores.shape)
        start += layer_scores.numel()
    return result


STREAM_ABOVE = 1 << 25
"""Above this many scores in total, the global threshold is found by streaming over the
layers (histogram refinement) instead of concatenating every score into one tensor."""


def streamed_global_masks(
    scores: Mapping[str, torch.Tensor],
    ratio: float,
    bins: int = 4096,
    exact_limit: int = 1 << 22,
) -> Mapping[str, torch.Tensor]:
    """Keep-masks (bool) of a global ranking found without concatenating the scores.

    The same weights as `global_masks` are removed: the lowest `round(ratio × total)`
    scores, and of the scores equal to the last one removed, the first in layer and index
    order. The k-th lowest score is found by histogram refinement — each pass narrows
    the window that holds it — until the window holds at most `exact_limit` scores,
    which are then sorted. Each pass reads every layer's scores in turn; for `LazyTensors`
    scores the masks are `LazyTensors` too, computed from a layer's scores when read, so
    memory stays at one layer's scores and temporaries plus the window.
    """
    low, high, total = _value_range(scores)
    remove = round(ratio * total)
    if remove == 0:
        return map_layers(scores, lambda name, layer_scores: torch.ones_like(layer_scores, dtype=torch.bool))
    threshold = _kth_lowest(scores, remove, bins, exact_limit, (low, high, total))
    kept = sum(int(torch.count_nonzero(layer_scores >= threshold)) for layer_scores in scores.values())
    ties_left = remove - (total - kept)
    ties_removed = dict.fromkeys(scores, 0)
    for name in scores:
        if ties_left <= 0:
            break
        ties_removed[name] = min(int(torch.count_nonzero(scores[name] == threshold)), ties_left)
        ties_left -= ties_removed[name]
    return map_layers(scores, lambda name, layer_scores: threshold_mask(layer_scores, threshold, ties_removed[name]))


def threshold_mask(scores: torch.Tensor, threshold: torch.Tensor, ties_removed: int) -> torch.Tensor:
    """Keep-mask (bool) zeroing the scores below `threshold` and the first `ties_removed` equal to it."""
    keep = scores >= threshold
    if ties_removed > 0:
        ties = (scores == threshold).reshape(-1).nonzero().reshape(-1)[:ties_removed]
        keep.view(-1)[ties] = False
    return keep


def _value_range(scores: Mapping[str, torch.Tensor]) -> tuple[float, float, int]:
    """The lowest and highest score over all layers and how many there are, reading each layer once."""
    low, high, total = float("inf"), float("-inf"), 0
    for values in scores.values():
        if values.numel():
            smallest, largest = torch.aminmax(values)
            low, high = min(low, float(smallest)), max(high, float(largest))
        total += values.numel()
    return low, high, total


def _counts(scores: Mapping[str, torch.Tensor], *windows: tuple[float, float, bool]) -> list[int]:
    """How many scores lie in each `(low, high, high_included)` window, reading each layer's scores once."""
    totals = [0] * len(windows)
    for values in scores.values():
        for index, (low, high, high_included) in enumerate(windows):
            inside = (values >= low) & (values <= high if high_included else values < high)
            totals[index] += int(torch.count_nonzero(inside))
    return totals


def _kth_lowest(
    scores: Mapping[str, torch.Tensor], k: int, bins: int, exact_limit: int, value_range: tuple[float, float, int]
) -> torch.Tensor:
    """The k-th lowest score over all layers (1-based), by narrowing a value window.

    Invariant: the answer lies in [low, high] and `below` counts the scores under `low`
    exactly. A histogram proposes a narrower window (padded by a bin on each side, as
    floating-point bin edges are approximate); exact counts confirm it, or the window is
    halved instead. `inside` (the scores in the window) is carried over when a pass's
    exact counts already give it, and a pass's counts share one read of each layer's scores,
    so each pass sweeps the scores as few times as it can (`LazyTensors` compute them per read).
    `value_range`: the lowest and highest score and their count (`_value_range`).
    """
    low, high, inside = value_range
    below = 0
    while low < high:
        if inside is None:
            (inside,) = _counts(scores, (low, high, True))
        if inside <= exact_limit:
            window = [values[(values >= low) & (values <= high)].float() for values in scores.values()]
            return torch.sort(torch.cat(window)).values[k - below - 1]
        counts = sum(torch.histc(values.float(), bins=bins, min=low, max=high) for values in scores.values())
        rank = torch.tensor(float(k - below), device=counts.device)
        index = int(torch.searchsorted(torch.cumsum(counts, 0), rank))
        width = (high - low) / bins
        proposal = (max(low, low + (index - 1) * width), min(high, low + (index + 2) * width))
        new_low, new_high = proposal if proposal != (low, high) else (low, low + (high - low) / 2)
        if new_low == low:
            skipped, (within,) = 0, _counts(scores, (new_low, new_high, True))
        else:
            skipped, within = _counts(scores, (low, new_low, False), (new_low, new_high, True))
        new_below = below + skipped
        up_to_high = new_below + within
        inside = None
        if new_below < k <= up_to_high:
            low, high, below, inside = new_low, new_high, new_below, up_to_high - new_below
        elif k <= new_below:
            high = new_low
        else:
            below = up_to_high
            low = float(torch.nextafter(torch.tensor(new_high), torch.tensor(float("inf"))))
            if low > high:
                low = high
    return torch.tensor(low)


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
        owners.append(torch.full((len(ordered),), index, dtype=torch.long, device=ordered.device))
    pool = torch.cat(candidates)
    if budget >= len(pool):
        return {name: max(counts[name], high[name]) for name in scores}
    chosen = torch.topk(pool, budget, largest=False).indices
    taken = torch.bincount(torch.cat(owners)[chosen], minlength=len(scores))
    return {name: counts[name] + int(taken[index]) for index, name in enumerate(scores)}


MASK_BLOCK = 1 << 20
"""Weights multiplied by their mask at once in `apply_mask`, which bounds its temporaries to a few MiB."""


def apply_mask(weight: torch.Tensor, keep: torch.Tensor) -> None:
    """Multiply `weight` in place by the keep-mask, as `torch.nn.utils.prune` does (a NaN stays NaN).

    A block of output rows at a time: multiplying by a whole bool mask first converts all of it to
    the weight's dtype (147 MiB for GPT-2's 38.6 M-weight head).
    """
    rows = max(1, MASK_BLOCK * max(1, weight.shape[0]) // max(1, weight.numel()))
    for weight_rows, keep_rows in zip(weight.split(rows), keep.split(rows), strict=True):
        weight_rows.mul_(keep_rows.to(dtype=weight.dtype, device=weight.device))


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


def removed_share(shape: torch.Size, ratio: float, by_row: bool) -> float:
    """The share of a layer's weights that `layer_mask` (or, `by_row`, `row_mask`) removes at `ratio`,
    without computing the mask: the counts they remove are rounded the same way."""
    size = shape.numel()
    if size == 0:
        return 0.0
    if by_row:
        columns = size // shape[0]
        return min(max(round(float(ratio) * columns), 0), columns) / columns if columns else 0.0
    return min(max(round(float(ratio) * size), 0), size) / size


def row_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep-mask (bool) zeroing the `round(ratio × row size)` lowest scores of every output row
    (dim 0), so each output loses the same share of its inputs (Wanda compares weights this way)."""
    rows = scores.reshape(scores.shape[0], -1)
    count = min(round(float(ratio) * rows.shape[1]), rows.shape[1])
    keep = torch.ones_like(rows, dtype=torch.bool)
    if count > 0:
        keep.scatter_(1, torch.topk(rows, count, dim=1, largest=False).indices, False)
    return keep.reshape(scores.shape)
