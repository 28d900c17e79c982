"""Helpers shared by the benchmarks: timing, peak memory and table printing."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed:` … `elapsed()` gives seconds since entering."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def print_table(title: str, rows: list[dict[str, object]], float_format: str = "{:.3f}") -> pd.DataFrame:
    """Print `rows` as an aligned table under `title` and return them as a DataFrame."""
    table = pd.DataFrame(rows)
    print(f"\n## {title}\n")
    print(table.to_string(index=False, float_format=lambda value: float_format.format(value)))
    return table
