"""Reading a model or data file safely: type, existence and size are checked before any read.

A `Blob` is a file path or an in-memory byte string, size-checked once, and read only as
far as each format needs (a header, then the whole file).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import DataError, ModelLoadError

DEFAULT_MAX_BYTES = 1 << 30
"""Largest model or data file read by default (1 GiB); pass `max_bytes` to change it."""

Source = str | os.PathLike | bytes | bytearray | memoryview


@dataclass(frozen=True)
class Blob:
    """A file or an in-memory byte string, size-checked, read only as far as needed."""

    path: Path | None
    data: bytes | None
    size: int

    def head(self, count: int) -> bytes:
        if self.data is not None:
            return self.data[:count]
        with open(self.path, "rb") as file:
            return file.read(count)

    def open(self) -> IO[bytes]:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        return self.path.read_bytes()


def read_blob(source: Source, max_bytes: int, what: str = "file") -> Blob:
    """Check type, existence and size of `source` before anything reads it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        blob = Blob(None, data, len(data))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise error_for(what, f"There is no {what} at {str(path)!r}.")
        if not path.is_file():
            raise error_for(what, f"{str(path)!r} is a folder, not a {what}.")
        blob = Blob(path, None, os.path.getsize(path))
    else:
        raise error_for(what, f"Give a file path or bytes, not {type(source).__name__}.")
    if blob.size > max_bytes:
        raise error_for(
            what, f"The {what} is {megabytes(blob.size)}; the limit is {megabytes(max_bytes)}. Use a smaller {what}."
        )
    if blob.size == 0:
        raise error_for(what, f"The {what} is empty (0 bytes); it may not have finished uploading.")
    return blob


def error_for(what: str, message: str) -> ModelLoadError | DataError:
    """The error for a model "file" (ModelLoadError) or any data file (DataError)."""
    return ModelLoadError(message) if what == "file" else DataError(message)


def megabytes(size: int) -> str:
    """A byte count in MB for a sentence, with as many decimals as make it readable."""
    value = size / 1e6
    return f"{value:.{1 if value >= 10 else 2 if value >= 1 else 3}f} MB"


def short(error: Exception, limit: int = 200) -> str:
    """A library's error message on one line, cut at `limit` characters for a user's sentence."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
