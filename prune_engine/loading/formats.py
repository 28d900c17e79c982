"""Telling a model file's format from its content, never from its name."""

from __future__ import annotations

import io
import pickletools
import zipfile

from ..errors import ModelLoadError
from .files import DEFAULT_MAX_BYTES, Blob, Source, megabytes, read_blob
from .hf_folder import is_model_folder, zip_holds_model_folder

FORMAT_NAMES = {
    "safetensors": "safetensors file",
    "torch_save": "PyTorch checkpoint (torch.save)",
    "torch_legacy": "legacy PyTorch checkpoint (torch.save, pre-1.6 format)",
    "torchscript": "TorchScript archive",
    "torch_export": "torch.export program (.pt2)",
    "pickle": "Python pickle",
    "onnx": "ONNX model",
    "zip": "zip archive",
    "transformers": "Hugging Face transformers model folder",
    "hdf5": "HDF5 file",
    "numpy": "NumPy array file",
    "gguf": "GGUF file",
    "text": "text file",
    "unknown": "file of unknown format",
}
"""Format name (as returned by `detect_format`) → what to call it in a sentence."""

_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_SAFETENSORS_MAX_HEADER = 100_000_000
HEADER_SCAN_BYTES = 4096
"""How much of a file format detection reads."""
_ONNX_SECOND_FIELD_TAGS = (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)


def detect_format(source: Source, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The format of a model file, from its content: a key of `FORMAT_NAMES` ("transformers" also for a
    local directory holding a config.json)."""
    if is_model_folder(source):
        return "transformers"
    return detect(read_blob(source, max_bytes), max_bytes)


def detect(blob: Blob, max_bytes: int) -> str:
    """`detect_format` for a blob already read."""
    head = blob.head(HEADER_SCAN_BYTES)
    if _looks_like_safetensors(head):
        return "safetensors"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(blob, max_bytes)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch_legacy" if _is_legacy_torch(head) else "pickle"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if head.startswith(b"GGUF"):
        return "gguf"
    if _looks_like_onnx(head):
        return "onnx"
    if _looks_like_text(head):
        return "text"
    return "unknown"


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    header_size = int.from_bytes(head[:8], "little")
    return 2 <= header_size <= _SAFETENSORS_MAX_HEADER and head[8:9] == b"{"


def _zip_kind(blob: Blob, max_bytes: int) -> str:
    try:
        with blob.open() as file, zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ModelLoadError(
            "The file starts like a zip archive (as PyTorch checkpoints do) but the archive is corrupt or "
            "truncated; it may not have finished uploading. Save or upload it again."
        ) from error
    expanded = sum(info.file_size for info in infos)
    if expanded > max_bytes:
        raise ModelLoadError(
            f"The archive expands to {megabytes(expanded)}; the limit is {megabytes(max_bytes)}. Use a smaller file."
        )
    entries = {info.filename.split("/", 1)[1] if "/" in info.filename else info.filename for info in infos}
    if "constants.pkl" in entries or any(entry.startswith("code/") for entry in entries):
        return "torchscript"
    if "archive_format" in entries or any(entry.startswith("models/") for entry in entries):
        return "torch_export"
    if "data.pkl" in entries:
        return "torch_save"
    if zip_holds_model_folder([info.filename for info in infos]):
        return "transformers"
    return "zip"


def _is_legacy_torch(head: bytes) -> bool:
    """Whether a pickle stream starts with the magic number of torch's pre-1.6 format (parsed, not run)."""
    try:
        for opcode, argument, _ in pickletools.genops(io.BytesIO(head)):
            if opcode.name in ("PROTO", "FRAME"):
                continue
            return opcode.name in ("LONG1", "LONG4") and argument == _LEGACY_TORCH_MAGIC
    except (ValueError, EOFError):
        return False
    return False


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto starts with ir_version (field 1, varint), then another known field."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 0x20 and head[2] in _ONNX_SECOND_FIELD_TAGS


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if len(head) < HEADER_SCAN_BYTES or error.start < len(head) - 4:
            return False
        text = head[: error.start].decode("utf-8")  # a multi-byte character cut at the end of the sample
    return bool(text) and all(character.isprintable() or character in "\t\r\n\f" for character in text)


def text_kind(head: bytes) -> str:
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if text.startswith(("{", "[")):
        return "a JSON text file"
    first_line = text.split("\n", 1)[0]
    if "," in first_line or "\t" in first_line or ";" in first_line:
        return "a CSV/text table"
    return "a text file"
