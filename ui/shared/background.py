"""Long work (a scan, a training run) on a worker thread, with a progress bar and a Cancel button.

How a Cancel really works in Streamlit 1.67: a click on any widget while the script runs asks
for a rerun, and Streamlit delivers that request as an exception in the script thread at the
next element the script draws; the click's callback runs only at the start of the new run. So
the work runs on a worker thread and the script thread redraws the progress bar every
`POLL_S`: the click lands there within a fraction of a second, the interrupted run sets the
work's cancel event, and the work stops at its next progress report (after the scan job or the
training epoch in hand). The new run then calls the button's callback, which records that the
user cancelled, and the page says so. Nothing the work had computed is kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx

import prune_engine as pe
from prune_engine.importance import ProgressFn
from ui.shared import keys
from workbench import fmt

T = TypeVar("T")
Work = Callable[[ProgressFn, threading.Event], T]

POLL_S = 0.25
"""How often the progress bar is redrawn, and so how soon a click on Cancel is noticed."""
STOP_WAIT_S = 2.0
"""How long an interrupted run waits for the work to stop before the page goes on; work that is
still busy then (a long job, worker processes still starting) stops on its own at its next report."""


class WorkCancelled(Exception):
    """Raised inside the work, at a progress report, once the user has cancelled it."""


@dataclass
class _Shared(Generic[T]):
    """What the worker thread and the script thread share (single assignments, safe under the GIL)."""

    done: float = 0.0
    message: str = "Starting…"
    result: T | None = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)


def _on_cancel(key: str, what: str) -> None:
    st.session_state[keys.notice(key)] = f"{what} was cancelled; nothing from it was kept."


def show_notice(key: str) -> None:
    """Say once that the work behind `key` was cancelled or interrupted (call where its results go)."""
    message = st.session_state.pop(keys.notice(key), None)
    if message:
        st.warning(message, icon=":material/cancel:")


def run(
    work: Work[T], key: str, what: str, label: str, hint: Callable[[pe.PruneScopeError], str | None] | None = None
) -> T | None:
    """Run `work(progress, cancel)` on a worker thread inside an `st.status` with a progress bar
    and a Cancel button (widget key `key`); the result, or None when it failed (the error is shown,
    followed by `hint(error)` when that says what to do in the app).

    `work` must not call Streamlit: it reports through `progress(fraction, message)`, which
    raises `WorkCancelled` once `cancel` is set, and may also hand `cancel` to the engine.
    `what` names the work in sentences ("The scan").
    """
    shared: _Shared[T] = _Shared()
    cancel = threading.Event()

    def progress(done: float, message: str) -> None:
        shared.done, shared.message = done, message
        if cancel.is_set():
            raise WorkCancelled

    def target() -> None:
        try:
            shared.result = work(progress, cancel)
        except BaseException as error:  # handed to the script thread, which decides what to show
            shared.error = error
        finally:
            shared.finished.set()

    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")
        stop = st.empty()
        stop.button("Cancel", key=key, on_click=_on_cancel, args=(key, what), icon=":material/cancel:")
        st.session_state[keys.notice(key)] = f"{what} stopped because the page changed while it ran; run it again."
        worker = add_script_run_ctx(threading.Thread(target=target, name=f"prunescope-{key}", daemon=True))
        started = time.monotonic()
        worker.start()
        try:
            while not shared.finished.wait(POLL_S):
                text = f"{fmt.literal(shared.message)} · {time.monotonic() - started:.0f} s"
                bar.progress(min(max(shared.done, 0.0), 1.0), text=text)
        finally:
            if not shared.finished.is_set():
                cancel.set()
                shared.finished.wait(STOP_WAIT_S)
        st.session_state.pop(keys.notice(key), None)
        stop.empty()
        if isinstance(shared.error, pe.PruneScopeError):
            status.update(label=f"{what} failed", state="error", expanded=True)
            bar.empty()
            st.error(fmt.literal(str(shared.error)), icon=":material/error:")
            advice = hint(shared.error) if hint is not None else None
            if advice:
                st.caption(advice)
            return None
        if shared.error is not None:
            raise shared.error
        seconds = time.monotonic() - started
        bar.progress(1.0, text=f"Done in {seconds:.1f} s")
        status.update(label=f"{what} finished in {seconds:.1f} s", state="complete", expanded=False)
    return shared.result
