"""Numbers as the app writes them: times in their best unit, changes as the eye subtracts the shown values."""

from __future__ import annotations

import pytest

from workbench import fmt


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [(0.0421, "42.1 µs"), (0.5, "500 µs"), (18.24, "18.2 ms"), (999.0, "999 ms"), (4070.0, "4.07 s"), (None, "—")],
)
def test_a_duration_is_written_in_the_unit_that_reads_best(milliseconds: float | None, text: str) -> None:
    assert fmt.duration(milliseconds) == text


def test_a_change_of_shares_is_the_difference_of_the_shown_values() -> None:
    before, after = 0.98333, 0.97778
    assert (fmt.percent(before), fmt.percent(after)) == ("98.3 %", "97.8 %")
    unrounded = fmt.signed_change(before, after, fmt.points, relative=False)
    assert unrounded == "-0.6 pts", "the difference of the unrounded values, which the eye cannot check"
    assert fmt.signed_change(before, after, fmt.points, relative=False, step=0.001) == "-0.5 pts"


def test_a_change_too_small_to_show_is_no_change() -> None:
    assert fmt.signed_change(0.98331, 0.98329, fmt.points, relative=False, step=0.001) is None
    assert fmt.signed_change(10.0, 10.0, fmt.count) is None
    assert fmt.signed_change(None, 1.0, fmt.count) is None


def test_a_relative_change_follows_the_absolute_one() -> None:
    assert fmt.signed_change(1000.0, 500.0, fmt.count) == "-500 (-50 %)"
    assert fmt.signed_change(500.0, 1000.0, fmt.count) == "+500 (+100 %)"
