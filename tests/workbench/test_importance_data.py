"""The numbers behind the importance views: ranks with ties, Spearman's ρ, model-wide places, heatmap rows."""

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from workbench import importance_data as data

TIED = np.array([0.0, 0.5, 0.5, 0.0, 1.0, 0.5, 0.25, 0.0])
"""Scores with ties, as APoZ gives: many channels share a share of active outputs."""


def test_average_ranks_share_ties_like_scipy() -> None:
    assert np.array_equal(data.average_ranks(TIED), rankdata(TIED) - 1)


@pytest.mark.parametrize("seed", range(3))
def test_spearman_matches_scipy_on_tied_and_untied_scores(seed: int) -> None:
    generator = np.random.default_rng(seed)
    first = generator.normal(size=50)
    second = np.round(first + generator.normal(size=50), 0)
    assert data.spearman(first, second) == pytest.approx(spearmanr(first, second).statistic)


def test_spearman_has_no_value_when_a_criterion_ties_every_channel() -> None:
    assert data.spearman(TIED, np.full(len(TIED), 0.3)) is None


def test_model_percentiles_rank_every_channel_of_every_layer_together() -> None:
    places = data.model_percentiles({"small": np.array([1.0, 2.0]), "large": np.array([10.0, 20.0, 30.0])})
    assert places["small"].tolist() == [0.0, 0.25]
    assert places["large"].tolist() == [0.5, 0.75, 1.0]


@pytest.mark.parametrize("channels", [1, 10, 64, 1000])
def test_heatmap_rows_have_one_width_and_cover_every_channel_once(channels: int) -> None:
    bounds = data.column_bounds(channels)
    assert len(bounds) == data.HEATMAP_WIDTH
    covered = np.zeros(channels, dtype=int)
    for start, stop in bounds:
        covered[start:stop] += 1
    assert covered.min() >= 1
    if channels >= data.HEATMAP_WIDTH:
        assert covered.max() == 1, "wider layers average channels, each in one column"
    row = data.sorted_row(np.random.default_rng(0).random(channels))
    assert row.shape == (data.HEATMAP_WIDTH,)
    assert (np.diff(row) >= 0).all()


def test_lowest_overlap_counts_the_channels_both_would_prune_first() -> None:
    first = np.arange(10.0)
    assert data.lowest_overlap(first, first, 0.3) == (3, 3)
    assert data.lowest_overlap(first, -first, 0.3) == (0, 3)
