"""Speed-up intervals: a paired bootstrap over interleaved rounds, added to until precise or out of budget.

The statistics are tested on known times (a pure function, and `measure_latency` with a fake
clock), so no test depends on how busy the machine is; one test runs real models for the columns.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prune_engine.errors import PruneScopeError
from prune_engine.metrics import compare_latency, measure_latency, speedup_interval


def noisy_times(median_ms: float, rounds: int, spread: float, seed: int) -> np.ndarray:
    """Block times around `median_ms` with log-normal noise of relative size `spread`."""
    return median_ms * np.exp(np.random.default_rng(seed).normal(0.0, spread, rounds))


def test_identical_distributions_give_an_interval_containing_one_that_is_not_significant() -> None:
    interval = speedup_interval(noisy_times(18.0, 30, 0.3, seed=1), noisy_times(18.0, 30, 0.3, seed=2))
    assert interval.low < 1.0 < interval.high
    assert not interval.significant


def test_identical_distributions_are_rarely_flagged_across_many_runs() -> None:
    flagged = sum(
        speedup_interval(noisy_times(18.0, 20, 0.3, seed), noisy_times(18.0, 20, 0.3, seed + 1000)).significant
        for seed in range(60)
    )
    assert flagged <= 6, "a 95 % interval should exclude 1 in about 5 % of runs of identical models"


def test_a_clear_two_fold_difference_is_significant_with_an_interval_around_two() -> None:
    interval = speedup_interval(noisy_times(20.0, 20, 0.05, seed=3), noisy_times(10.0, 20, 0.05, seed=4))
    assert interval.significant
    assert 1.8 < interval.low <= interval.speedup <= interval.high < 2.2
    assert interval.relative_half_width < 0.1


def test_a_clear_slow_down_is_significant_below_one() -> None:
    interval = speedup_interval(noisy_times(10.0, 20, 0.05, seed=5), noisy_times(20.0, 20, 0.05, seed=6))
    assert interval.significant and interval.high < 1.0


def test_a_precise_change_of_two_percent_is_no_measurable_change() -> None:
    baseline, model = noisy_times(10.2, 40, 0.005, seed=10), noisy_times(10.0, 40, 0.005, seed=11)
    interval = speedup_interval(baseline, model)
    assert interval.low > 1.0, "the interval excludes 1 ..."
    assert not interval.significant, "... but lies within the ±5 % two copies of one model can differ by"
    assert speedup_interval(baseline, model, margin=0.0).significant


def test_the_interval_is_reproducible_for_a_seed() -> None:
    baseline, model = noisy_times(18.0, 25, 0.2, seed=7), noisy_times(15.0, 25, 0.2, seed=8)
    assert speedup_interval(baseline, model, seed=3) == speedup_interval(baseline, model, seed=3)


def test_pairing_removes_a_slow_spell_that_hit_both_models() -> None:
    spell = np.where(np.arange(30) % 3 == 0, 4.0, 1.0)
    paired = speedup_interval(10.0 * spell, 5.0 * spell * np.exp(np.random.default_rng(9).normal(0, 0.01, 30)))
    assert paired.significant and 1.9 < paired.low <= paired.high < 2.1


def test_speedup_interval_refuses_unpaired_rounds() -> None:
    with pytest.raises(PruneScopeError, match="same number of rounds"):
        speedup_interval([1.0, 2.0], [1.0])


class FakeClock:
    """A block timer that returns seeded noisy times per model instead of running it."""

    def __init__(self, medians_ms: dict[nn.Module, float], spread: float) -> None:
        self.medians_ms, self.spread = medians_ms, spread
        self.rng = np.random.default_rng(0)

    def __call__(self, model: nn.Module, inputs: torch.Tensor, number: int, threads: int, device: str) -> np.ndarray:
        return np.full(number, self.medians_ms[model] * float(np.exp(self.rng.normal(0.0, self.spread))) / 1e3)


def test_measurement_stops_at_the_first_rounds_when_the_interval_is_already_precise() -> None:
    original, pruned = nn.Linear(4, 4), nn.Linear(4, 4)
    clock = FakeClock({original: 20.0, pruned: 10.0}, spread=0.02)
    result = measure_latency({"original": original, "pruned": pruned}, torch.randn(1, 4), rounds=8, timer=clock)
    table = result.table.set_index("model")
    assert result.precise
    assert int(table.loc["pruned", "rounds"]) == 8
    assert bool(table.loc["pruned", "significant"])
    assert 1.8 < table.loc["pruned", "speedup_low"] <= table.loc["pruned", "speedup_high"] < 2.2


def test_noisy_identical_models_get_more_rounds_and_no_verdict() -> None:
    original, pruned = nn.Linear(4, 4), nn.Linear(4, 4)
    clock = FakeClock({original: 18.0, pruned: 18.0}, spread=0.6)
    result = measure_latency(
        {"original": original, "pruned": pruned}, torch.randn(1, 4), rounds=5, max_rounds=40, timer=clock
    )
    table = result.table.set_index("model")
    assert int(table.loc["pruned", "rounds"]) > 5, "rounds are added while the interval is wide"
    assert int(table.loc["pruned", "rounds"]) <= 40
    assert not bool(table.loc["pruned", "significant"])
    assert table.loc["pruned", "speedup_low"] < 1.0 < table.loc["pruned", "speedup_high"]


def test_the_time_budget_ends_the_added_rounds() -> None:
    original, pruned = nn.Linear(4, 4), nn.Linear(4, 4)
    clock = FakeClock({original: 100.0, pruned: 100.0}, spread=0.6)
    result = measure_latency(
        {"original": original, "pruned": pruned}, torch.randn(1, 4), rounds=3, max_seconds=2.0, timer=clock
    )
    rounds = int(result.table["rounds"].iloc[0])
    assert not result.precise
    assert 3 < rounds <= 15, "a round costs about 0.2 timed seconds, so a 2 s budget allows about 10"


def test_compare_latency_table_has_interval_columns_on_real_models() -> None:
    big = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))
    small = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64))
    table = compare_latency({"original": big, "pruned": small}, torch.randn(1, 64), rounds=3, max_seconds=1.0)
    for column in ("median_ms", "iqr_ms", "speedup", "speedup_low", "speedup_high", "significant", "rounds"):
        assert column in table.columns
    original, pruned = table.set_index("model").loc["original"], table.set_index("model").loc["pruned"]
    assert original["speedup"] == original["speedup_low"] == original["speedup_high"] == 1.0
    assert not bool(original["significant"])
    assert pruned["speedup_low"] <= pruned["speedup"] <= pruned["speedup_high"]
    assert table["significant"].dtype == bool


def test_a_pre_empted_call_in_every_block_does_not_change_the_verdict() -> None:
    original, pruned = nn.Linear(4, 4), nn.Linear(4, 4)

    def clock(model: nn.Module, inputs: torch.Tensor, number: int, threads: int, device: str) -> np.ndarray:
        calls = np.full(number, 1e-3)
        if model is pruned and number > 2:
            calls[number // 2] = 20e-3  # another process took the core for one call
        return calls

    table = measure_latency({"original": original, "pruned": pruned}, torch.randn(1, 4), timer=clock).table
    row = table.set_index("model").loc["pruned"]
    assert row["speedup"] == pytest.approx(1.0)
    assert not bool(row["significant"])
