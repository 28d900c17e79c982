"""Finished scans, kept in this process by content (model, data and settings)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import pandas as pd

SCAN_CACHE_SIZE = 16

_SCAN_CACHE: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_SCAN_CACHE_LOCK = threading.Lock()


def cached_scan(key: tuple) -> pd.DataFrame | None:
    """A copy of the scan stored under `key`, or None."""
    with _SCAN_CACHE_LOCK:
        if key not in _SCAN_CACHE:
            return None
        _SCAN_CACHE.move_to_end(key)
        return _SCAN_CACHE[key].copy()


def store_scan(key: tuple, table: pd.DataFrame) -> None:
    """Keep a copy of `table` under `key`, dropping the least recently used beyond the size."""
    with _SCAN_CACHE_LOCK:
        _SCAN_CACHE[key] = table.copy()
        while len(_SCAN_CACHE) > SCAN_CACHE_SIZE:
            _SCAN_CACHE.popitem(last=False)


def clear_scan_cache() -> None:
    """Forget every cached scan (they are keyed by content, so this is rarely needed)."""
    with _SCAN_CACHE_LOCK:
        _SCAN_CACHE.clear()
