"""Numbers as people read them: 51 k parameters, 3.6 M FLOPs, 201 KB, 96.7 %."""

from __future__ import annotations

_SI_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BYTE_UNITS = ((1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def count(value: float | None) -> str:
    """A count with an SI prefix: 675,530 → "676 k"; None → "n/a"."""
    if value is None:
        return "n/a"
    for scale, prefix in _SI_PREFIXES:
        if abs(value) >= scale:
            return f"{_three_digits(value / scale)} {prefix}"
    return f"{value:,.0f}"


def size(num_bytes: float | None) -> str:
    """A size in binary units: 2,729,513 → "2.60 MB"; None → "n/a"."""
    if num_bytes is None:
        return "n/a"
    for scale, unit in _BYTE_UNITS:
        if num_bytes >= scale:
            return f"{_three_digits(num_bytes / scale)} {unit}"
    return f"{num_bytes:,.0f} B"


def percent(share: float | None, digits: int = 1) -> str:
    """A share as a percentage: 0.9667 → "96.7 %"; None → "n/a"."""
    return "n/a" if share is None else f"{share * 100:.{digits}f} %"


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
