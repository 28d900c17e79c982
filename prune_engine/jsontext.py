"""Reading JSON a user gave (plan files, architecture.json, safetensors headers, stored plans) safely.

Python's `json` parser recurses once per nesting level, so `[[[[…]]]]` a few thousand levels
deep escapes as `RecursionError`, and a merely deep result makes every later walk over it
(`dataclasses.asdict`, `json.dumps`) recurse as deep. `loads` counts the nesting first, in
NumPy, and refuses anything deeper than `MAX_JSON_DEPTH` with the caller's error type.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from .errors import PruneScopeError

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects read; PruneScope's own files nest at most 4 levels."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CHUNK = 1 << 20
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def nesting_depth(text: str | bytes) -> int:
    """How deeply arrays and objects nest in JSON `text` (brackets inside strings do not count)."""
    raw = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else bytes(text)
    outside_strings = _STRING.sub(b"", raw)
    depth, deepest = 0, 0
    for start in range(0, len(outside_strings), _CHUNK):
        chunk = np.frombuffer(outside_strings, dtype=np.uint8, count=min(_CHUNK, len(outside_strings) - start),
                              offset=start)  # fmt: skip
        levels = depth + np.cumsum(_OPEN[chunk], dtype=np.int64)
        if len(levels):
            deepest = max(deepest, int(levels.max()))
            depth = int(levels[-1])
    return deepest


def loads(text: str | bytes, what: str, error: type[PruneScopeError], max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads(text)`, or `error` with a sentence naming `what` when it is not UTF-8, not JSON or too deep."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as cause:
            raise error(
                f"{what} is not UTF-8 text (byte {cause.start} cannot be read); save it as UTF-8 JSON."
            ) from cause
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{what} nests {depth} levels deep; PruneScope reads JSON nested at most {max_depth} levels.")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as cause:
        raise error(f"{what} is not valid JSON ({_first_line(cause)}).") from cause


def _first_line(cause: Exception) -> str:
    text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return text[:200]
