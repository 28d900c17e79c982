"""Numbers as people read them: 51 k parameters, 3.6 M FLOPs, 201 KB, 96.7 %."""

from __future__ import annotations

from collections.abc import Callable

MISSING = "—"
"""How a value that was not measured is shown."""

Formatter = Callable[[float | None], str]
"""Writes a value (or None) for people."""

_SI_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BYTE_UNITS = ((1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def count(value: float | None) -> str:
    """A count with an SI prefix: 675,530 → "676 k"; None → "—"."""
    if value is None:
        return MISSING
    for scale, prefix in _SI_PREFIXES:
        if abs(value) >= scale:
            return f"{_three_digits(value / scale)} {prefix}"
    return f"{value:,.0f}"


def size(num_bytes: float | None) -> str:
    """A size in binary units: 2,729,513 → "2.60 MB"; None → "—"."""
    if num_bytes is None:
        return MISSING
    for scale, unit in _BYTE_UNITS:
        if num_bytes >= scale:
            return f"{_three_digits(num_bytes / scale)} {unit}"
    return f"{num_bytes:,.0f} B"


def percent(share: float | None, digits: int = 1) -> str:
    """A share as a percentage: 0.9667 → "96.7 %"; None → "—"."""
    return MISSING if share is None else f"{share * 100:.{digits}f} %"


def duration(milliseconds: float | None) -> str:
    """A time measured in milliseconds, in the unit that reads best: 0.0421 → "42.1 µs", 18.2 → "18.2 ms",
    4070 → "4.07 s"; None → "—"."""
    if milliseconds is None:
        return MISSING
    if milliseconds >= 1000:
        return f"{_three_digits(milliseconds / 1000)} s"
    if milliseconds < 1:
        return f"{_three_digits(milliseconds * 1000)} µs"
    return f"{_three_digits(milliseconds)} ms"


def signed_change(
    before: float | None, after: float | None, show: Formatter, relative: bool = True, step: float | None = None
) -> str | None:
    """`after − before` as Streamlit's metric reads a delta: a leading "-" for a fall; None when unknown or equal
    (at the shown resolution `step`)."""
    if before is None or after is None:
        return None
    if step is not None:
        before, after = round(before / step) * step, round(after / step) * step
    change = after - before
    if abs(change) < (step or 0.0) / 2 or change == 0:
        return None
    text = f"{'-' if change < 0 else '+'}{show(abs(change))}"
    if relative and before:
        text += f" ({change / abs(before) * 100:+.0f} %)"
    return text


def points(value: float | None) -> str:
    """A difference of two shares, in percentage points."""
    return MISSING if value is None else f"{value * 100:.1f} pts"


def rough_duration(seconds: float) -> str:
    """An estimated duration in words, rounded as an estimate deserves ("about 40 s", "about 3 min")."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


def _three_digits(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


_MARKDOWN_SPECIALS = set("\\`*_{}[]()<>#+-.!|~$:")


def literal(text: str) -> str:
    """`text` with Markdown's special characters escaped, so `st.markdown` shows it as typed."""
    return "".join(f"\\{char}" if char in _MARKDOWN_SPECIALS else char for char in text)
