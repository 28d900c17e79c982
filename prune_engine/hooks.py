"""Hooks that act only in the thread that attached them.

The app shares a loaded model between sessions, read-only, and scoring, profiling and calibration
attach hooks to it for a moment. A hook registered on a module runs in every thread's forward pass:
a head switched off to score it would change what another session's evaluation computes at the same
time, and a layer clock's bookkeeping broke another session's latency measurement (a KeyError on
Compare). Wrapped by `own_thread`, a hook lets every other thread's pass through untouched.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any


def own_thread(hook: Callable[..., Any]) -> Callable[..., Any]:
    """`hook`, acting only when called from the thread that wraps it; elsewhere it returns None, which
    tells PyTorch to leave the inputs or output as they are."""
    owner = threading.get_ident()

    @functools.wraps(hook)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        return hook(*args, **kwargs) if threading.get_ident() == owner else None

    return guarded
