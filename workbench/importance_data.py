"""The numbers behind the Inspect page's importance views: ranks, rank correlation, heatmap rows, histograms.

Plain numpy on per-channel scores (a few thousand numbers), no Streamlit. The views work on
ranks rather than raw scores: criteria score on scales that differ by orders of magnitude
(a weight norm, a gradient, a share of zeros), and ranks put them all on one scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

HEATMAP_WIDTH = 64
"""Columns of the layers × channels heatmap: every layer is resampled to this many."""
SCATTER_LIMIT = 2048
"""Layers with more channels than this compare two criteria as a grid of counts, not one dot per channel."""
GRID_BINS = 40
"""Cells per side of that grid (2.5 % of the ranks each)."""
DENSITY_POINTS = 41
"""Points at which each layer's density of ranks is drawn."""
DENSITY_BANDWIDTH = 0.04
"""Width of the smoothing kernel, as a share of the ranking: 4 %, so that small layers still show a shape."""


@dataclass(frozen=True)
class CriterionScores:
    """One criterion's channel scores for every layer it could score; `unscored` names the others, `why` says why."""

    criterion: str
    scores: Mapping[str, np.ndarray]
    unscored: tuple[str, ...]
    why: str
    examples: int | None
    seconds: float


def average_ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks of `values`, tied values sharing the mean of their ranks (as Spearman's ρ needs)."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2)[inverse.reshape(-1)]


def percentiles(values: np.ndarray) -> np.ndarray:
    """Each value's place among `values`, from 0 (lowest) to 1 (highest); ties share a place."""
    return average_ranks(values) / max(len(values) - 1, 1)


def model_percentiles(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each channel's place in one ranking of every channel of every layer: 0 least important, 1 most."""
    names = list(scores)
    places = percentiles(np.concatenate([np.asarray(scores[name], dtype=float).ravel() for name in names]))
    ends = np.cumsum([np.asarray(scores[name]).size for name in names])
    return dict(zip(names, np.split(places, ends[:-1]), strict=True))


def column_bounds(channels: int, width: int = HEATMAP_WIDTH) -> list[tuple[int, int]]:
    """The channels (start, stop) each of `width` columns covers, when `channels` are spread over them.

    Wider layers average several channels per column; narrower ones repeat a channel over columns.
    """
    bounds = []
    for column in range(width):
        start = min(column * channels // width, channels - 1)
        bounds.append((start, max((column + 1) * channels // width, start + 1)))
    return bounds


def sorted_row(places: np.ndarray, width: int = HEATMAP_WIDTH) -> np.ndarray:
    """One heatmap row: a layer's channel places sorted from least to most important, resampled to `width`."""
    ordered = np.sort(np.asarray(places, dtype=float))
    return np.array([ordered[start:stop].mean() for start, stop in column_bounds(len(ordered), width)])


def rank_density(places: np.ndarray, points: int = DENSITY_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(where, density): a smoothed density of a layer's places, peak 1, over their range and a kernel width beyond.

    A Gaussian kernel density estimate, the shape a violin plot draws, reduced to `points` numbers.
    """
    places = np.asarray(places, dtype=float)
    low, high = max(places.min() - DENSITY_BANDWIDTH, 0.0), min(places.max() + DENSITY_BANDWIDTH, 1.0)
    where = np.linspace(low, high, points)
    density = np.exp(-0.5 * ((where[:, None] - places[None, :]) / DENSITY_BANDWIDTH) ** 2).sum(axis=1)
    return where, density / density.max()


def spearman(first: np.ndarray, second: np.ndarray) -> float | None:
    """Spearman's rank correlation of two score vectors; None when either gives every channel the same score."""
    ranks = [average_ranks(first), average_ranks(second)]
    centred = [rank - rank.mean() for rank in ranks]
    spread = float(np.sqrt((centred[0] ** 2).sum() * (centred[1] ** 2).sum()))
    if spread == 0.0:
        return None
    return float((centred[0] * centred[1]).sum() / spread)


def lowest_overlap(first: np.ndarray, second: np.ndarray, share: float) -> tuple[int, int]:
    """(shared, count): how many of the `count` channels each criterion ranks lowest are the same channels."""
    count = max(round(share * len(first)), 1)
    lowest = [set(np.argsort(np.asarray(scores, dtype=float), kind="stable")[:count]) for scores in (first, second)]
    return len(lowest[0] & lowest[1]), count


def rank_grid(first: np.ndarray, second: np.ndarray, bins: int = GRID_BINS) -> np.ndarray:
    """How many channels fall in each cell of a `bins` × `bins` grid of their places under two criteria.

    Rows follow the second criterion, columns the first, both from 0 (least important) up.
    """
    counts, _, _ = np.histogram2d(second, first, bins=bins, range=[[0.0, 1.0], [0.0, 1.0]])
    return counts.astype(int)


PASSES_PER_EXAMPLE = {
    "taylor": 3.0,
    "activation": 1.0,
    "apoz": 1.0,
    "grad_x_activation": 3.0,
    "conductance": 3.0 * 17,
    "ablation": 1.0,
}
"""Forward-pass equivalents a data criterion costs per example (a backward pass counts as two forwards):
Captum's conductance takes 16 steps plus the input, DeepLift one forward and backward pass per layer
(`PASSES_PER_LAYER`), head ablation one forward pass per head (`PASSES_PER_HEAD`)."""
PASSES_PER_LAYER = {"deeplift": 3.0}
PASSES_PER_HEAD = {"ablation": 1.0}
DEFAULT_PASSES = 3.0
"""For a data criterion not listed: a forward and a backward pass."""


def estimated_seconds(criterion: str, forward_seconds: float, layers: int, heads: int) -> float:
    """About how long `criterion` takes, from the time of one forward pass over the examples it looks at."""
    passes = PASSES_PER_EXAMPLE.get(criterion, DEFAULT_PASSES)
    passes += PASSES_PER_LAYER.get(criterion, 0.0) * layers + PASSES_PER_HEAD.get(criterion, 0.0) * heads
    return passes * forward_seconds
