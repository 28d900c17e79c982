"""Loading evaluation data: tensor files, NumPy arrays and CSV tables, checked against the model."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import safetensors.torch
import torch
from torch import nn

from ..data import EvalData
from ..errors import DataError
from ..metrics import eval_mode
from ..placement import placement
from .files import DEFAULT_MAX_BYTES, Blob, Source, megabytes, read_blob, short

INPUT_KEYS = ("inputs", "x", "X")
LABEL_KEYS = ("labels", "y", "Y")
DATA_EXTENSIONS = (".safetensors", ".pt", ".pth", ".npz", ".npy", ".csv")

MAX_EXPANSION_RATIO = 100
"""A compressed data file (.npz, a deflated .pt) may hold at most this many times its own size..."""
EXPANSION_FLOOR = 64 << 20
"""...or this much (64 MiB), whichever is more: real data compresses far less, a decompression bomb far more."""
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_INT64_MAX = 2**63 - 1


def load_eval_data(
    source: Source,
    *,
    filename: str | None = None,
    label_column: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_expanded_bytes: int | None = None,
) -> EvalData:
    """Evaluation data from a file; its extension (of `filename`, else of the path) decides the format.

    `.safetensors`/`.pt`/`.pth` (tensors `inputs`, optional `labels`; .pt read with
    `weights_only=True`), `.npz` (arrays `inputs`/`labels` or `x`/`y`), `.npy` (inputs
    only) and `.csv` (numeric feature columns; `label_column` names the labels). Float
    inputs become float32; integer labels int64. `input_shape` reshapes each example,
    e.g. (1, 8, 8) for 64 pixel columns. Compressed files are refused before they are
    expanded beyond `max_expanded_bytes` (default `max_bytes`) or beyond
    `MAX_EXPANSION_RATIO` times their own size (at least `EXPANSION_FLOOR`).
    """
    if filename is None:
        if not isinstance(source, (str, os.PathLike)):
            raise DataError("Give the data file's name (filename=...) so its format can be told from its extension.")
        filename = Path(source).name
    extension = Path(filename).suffix.lower()
    if extension not in DATA_EXTENSIONS:
        raise DataError(
            f"{filename!r} has an unsupported extension; evaluation data can be {', '.join(DATA_EXTENSIONS)}."
        )
    blob = read_blob(source, max_bytes, what="data file")
    if extension == ".csv":
        inputs, labels = _read_csv(blob, filename, label_column)
    else:
        if label_column is not None:
            raise DataError("label_column applies to CSV files only; tensor files name their labels 'labels' or 'y'.")
        limit = _expansion_limit(blob, max_bytes if max_expanded_bytes is None else max_expanded_bytes)
        inputs, labels = _read_tensor_file(blob, filename, _content_extension(blob, extension), limit)
    inputs = _as_inputs(inputs, input_shape)
    labels = None if labels is None else _as_labels(labels)
    return EvalData(inputs, labels)


def _expansion_limit(blob: Blob, max_expanded_bytes: int) -> int:
    """The most bytes a data file may expand to: the absolute bound, and a bound relative to its size."""
    return min(max_expanded_bytes, max(EXPANSION_FLOOR, MAX_EXPANSION_RATIO * blob.size))


def _content_extension(blob: Blob, extension: str) -> str:
    """The NumPy format the content has (an .npz named .npy, or the reverse), else `extension`."""
    head = blob.head(8)
    if extension in (".npy", ".npz"):
        if head.startswith(_ZIP_MAGIC):
            return ".npz"
        if head.startswith(_NPY_MAGIC):
            return ".npy"
    return extension


def _check_expansion(blob: Blob, filename: str, extension: str, limit: int) -> None:
    """Refuse, before anything is allocated, a file whose arrays or archive entries would exceed `limit` bytes."""
    head = blob.head(8)
    if head.startswith(_ZIP_MAGIC):
        try:
            with blob.open() as file, zipfile.ZipFile(file) as archive:
                infos = archive.infolist()
                expanded = sum(info.file_size for info in infos)
                _refuse_expansion(filename, expanded, limit)
                if extension == ".npz":
                    for info in infos:
                        with archive.open(info) as entry:
                            _check_npy_header(entry, filename, info.file_size, limit)
        except DataError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as error:
            raise DataError(f"{filename!r} is a corrupt or truncated archive ({short(error)}).") from error
    elif extension == ".npy":
        with blob.open() as file:
            _check_npy_header(file, filename, blob.size, limit)


def _check_npy_header(file: IO[bytes], filename: str, stored: int, limit: int) -> None:
    """An .npy's header names its shape and type: the array must fit in what is stored and in `limit`."""
    try:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(file)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as error:
        raise DataError(f"{filename!r} holds an array whose header cannot be read ({short(error)}).") from error
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    _refuse_expansion(filename, size, limit)
    if dtype.hasobject:
        return  # refused by np.load(allow_pickle=False) with its own sentence
    if size > stored:
        raise DataError(
            f"{filename!r} is truncated or corrupt: an array of shape {tuple(shape)} needs {megabytes(size)}, "
            f"but only {megabytes(stored)} are stored."
        )


def _refuse_expansion(filename: str, expanded: int, limit: int) -> None:
    if expanded > limit:
        raise DataError(
            f"{filename!r} expands to {megabytes(expanded)} of data; the limit for this file is {megabytes(limit)} "
            f"(at most {MAX_EXPANSION_RATIO}× its size, and at most the configured maximum). "
            "Save the data uncompressed or use a smaller evaluation set."
        )


def _read_tensor_file(blob: Blob, filename: str, extension: str, limit: int) -> tuple[Any, Any]:
    _check_expansion(blob, filename, extension, limit)
    try:
        if extension == ".safetensors":
            loaded = safetensors.torch.load(blob.read())
        elif extension in (".pt", ".pth"):
            with blob.open() as file:
                loaded = torch.load(file, map_location="cpu", weights_only=True)
        elif extension == ".npz":
            with blob.open() as file, np.load(file, allow_pickle=False) as archive:
                loaded = {key: archive[key] for key in archive.files}
        else:
            with blob.open() as file:
                loaded = np.load(file, allow_pickle=False)
    except pickle.UnpicklingError as error:
        raise DataError(
            f"{filename!r} holds Python objects other than tensors, which are not loaded for safety; save a dict "
            "of tensors: torch.save({'inputs': x, 'labels': y}, path)."
        ) from error
    except Exception as error:  # corrupt files fail in many ways inside the libraries
        raise DataError(
            f"{filename!r} could not be read as {extension}: it is corrupt or not a {extension} file ({short(error)})."
        ) from error
    if isinstance(loaded, (torch.Tensor, np.ndarray)):
        return loaded, None
    if isinstance(loaded, (tuple, list)) and len(loaded) in (1, 2):
        return loaded[0], loaded[1] if len(loaded) == 2 else None
    if not isinstance(loaded, Mapping):
        raise DataError(f"{filename!r} holds a {type(loaded).__name__}; save a dict with 'inputs' and 'labels'.")
    inputs_key = next((key for key in INPUT_KEYS if key in loaded), None)
    if inputs_key is None:
        found = ", ".join(map(str, list(loaded)[:10])) or "nothing"
        raise DataError(f"{filename!r} has no 'inputs' (or 'x') entry; it holds: {found}.")
    labels_key = next((key for key in LABEL_KEYS if key in loaded), None)
    return loaded[inputs_key], None if labels_key is None else loaded[labels_key]


def _read_csv(blob: Blob, filename: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    header: list[str] = []
    try:
        with blob.open() as file:
            header = [str(column) for column in pd.read_csv(file, nrows=0).columns]
        has_header = not all(_is_number(column) for column in header)
        with blob.open() as file:  # without a header row the first line is data
            frame = pd.read_csv(file, header=None, skiprows=1 if has_header else 0)
    except pd.errors.ParserError as error:  # a row with more fields than the first: the message names its line
        detail = short(error).removeprefix("Error tokenizing data. C error: ")
        raise DataError(
            f"{filename!r} has rows of different lengths: {detail}; every row needs one value per column."
        ) from error
    except (pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        if isinstance(error, pd.errors.EmptyDataError) and header:
            raise DataError(f"{filename!r} has no data rows.") from error
        raise DataError(f"{filename!r} could not be read as CSV ({short(error)}).") from error
    header_lines = 1 if has_header else 0
    if has_header and frame.shape[1] != len(header):
        raise DataError(
            f"{filename!r}: line 2 has {frame.shape[1]} fields but the header (line 1) names {len(header)} columns; "
            "every row needs one value per column."
        )
    frame.columns = header if has_header else [str(index) for index in range(frame.shape[1])]
    if frame.empty:
        raise DataError(f"{filename!r} has no data rows.")
    labels = None
    if label_column is not None:
        if label_column not in frame.columns:
            shown = ", ".join(frame.columns[:10]) + (" …" if len(frame.columns) > 10 else "")
            raise DataError(f"{filename!r} has no column {label_column[:80]!r}; its columns are: {shown[:400]}.")
        labels = _csv_labels(frame[label_column], label_column, header_lines)
        frame = frame.drop(columns=[label_column])
    if frame.shape[1] == 0:
        raise DataError(f"{filename!r} has no feature columns besides the label column.")
    features = np.stack(
        [_numeric_column(frame[column], column, header_lines) for column in frame.columns], axis=1
    ).astype(np.float32)
    return features, labels


def _csv_labels(column: pd.Series, name: str, header_lines: int) -> np.ndarray:
    """Class indices (int64) when every label is a whole number, else real-valued targets (float32).

    A whole number beyond the int64 range is refused with the value as written in the file.
    """
    labels = _numeric_column(column, name, header_lines)
    if not (np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))):
        return labels.astype(np.float32)
    too_large = np.abs(labels) >= 2.0**63
    if too_large.any():
        row = int(np.argmax(too_large))
        raise DataError(
            f"Column {name[:80]!r}, row {row + 1} (line {row + 1 + header_lines} of the file) is "
            f"{str(column.iloc[row]).strip()[:40]}, too large for a class index; labels must be class indices "
            "0, 1, 2, … the model can predict."
        )
    return labels.astype(np.int64)


def csv_columns(content: bytes) -> list[str]:
    """The names `load_eval_data` gives a CSV's columns (a `label_column` is one of them).

    The header's names, or "0", "1", … when the first line is data; empty when it is no CSV.
    """
    try:
        header = pd.read_csv(io.BytesIO(content), nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return []
    if all(_is_number(name) for name in header):
        return [str(index) for index in range(len(header))]
    return [str(name) for name in header]


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _numeric_column(column: pd.Series, name: str, header_lines: int) -> np.ndarray:
    """A column as float64, or a DataError naming the first cell that is empty or not a number."""
    numeric = pd.to_numeric(column, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        value = column.iloc[row]
        what = "is empty" if pd.isna(value) else f"is {str(value)[:40]!r}, not a number"
        raise DataError(
            f"Column {name[:80]!r}, row {row + 1} (line {row + 1 + header_lines} of the file) {what}; "
            "every feature and label cell must be a number."
        )
    return numeric.to_numpy(dtype=np.float64)


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            raise DataError(f"The {what} are a meta tensor, which has a shape but no values; save the real tensor.")
        if value.is_nested or value.is_quantized or value.layout != torch.strided:
            raise DataError(
                f"The {what} are a {'nested' if value.is_nested else 'quantized' if value.is_quantized else 'sparse'} "
                "tensor; save a plain dense tensor (e.g. x.to_dense() or x.dequantize())."
            )
        return _in_int64(value.detach().cpu(), what)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise DataError(f"The {what} are of type {value.dtype}; they must be numbers.")
        if value.dtype.kind == "u" and value.size and int(value.max()) > _INT64_MAX:
            raise DataError(f"The {what} hold the value {int(value.max())}, too large for a 64-bit integer.")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise DataError(f"The {what} must be a tensor or an array, not {type(value).__name__}.")


def _in_int64(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """`tensor`, with unsigned 16–64-bit integers (few torch kernels take them) checked and read through NumPy."""
    if tensor.dtype in (torch.uint16, torch.uint32, torch.uint64):
        return _as_tensor(tensor.numpy(), what)
    return tensor


def _as_inputs(value: Any, input_shape: tuple[int, ...] | None) -> torch.Tensor:
    inputs = _as_tensor(value, "inputs")
    if inputs.dim() == 0 or inputs.shape[0] == 0:
        raise DataError("The evaluation data holds no examples; give at least one.")
    if inputs.is_floating_point() or inputs.dtype == torch.bool:
        inputs = inputs.float()
        if not torch.isfinite(inputs).all():
            count = int((~torch.isfinite(inputs)).sum())
            raise DataError(f"The inputs contain {count} NaN or infinite values; remove or fill them.")
    elif inputs.is_complex():
        raise DataError("The inputs are complex numbers; give real-valued inputs.")
    else:
        inputs = inputs.long()
    if input_shape is not None:
        per_example = int(np.prod(inputs.shape[1:]))
        if per_example != int(np.prod(input_shape)):
            raise DataError(
                f"Each example has {per_example} values, which cannot be reshaped to {tuple(input_shape)} "
                f"({int(np.prod(input_shape))} values)."
            )
        inputs = inputs.reshape(inputs.shape[0], *input_shape)
    return inputs.contiguous()


def _as_labels(value: Any) -> torch.Tensor:
    labels = _as_tensor(value, "labels")
    if labels.is_complex():
        raise DataError("The labels are complex numbers; give class indices or real-valued targets.")
    if labels.is_floating_point():
        if not torch.isfinite(labels).all():
            raise DataError("The labels contain NaN or infinite values; remove or fill them.")
        return labels.float()
    return labels.long()


def check_data_fits(model: nn.Module, data: EvalData, batch_size: int = 8) -> None:
    """Run the model on a few examples; a DataError with the shapes if it cannot take them.

    Also checks that integer labels are class indices within the model's outputs.
    """
    batch = data.inputs[:batch_size]
    try:
        with eval_mode(model), torch.inference_mode():
            output = model(placement(model).inputs(batch))
    except Exception as error:  # a shape or dtype mismatch raised anywhere inside the model
        raise DataError(
            f"The model cannot take inputs of shape {tuple(batch.shape)} ({batch.dtype}): {short(error)}. "
            "Check the data's input shape (input_shape=... reshapes each example)."
        ) from error
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise DataError(f"The model returned {type(output).__name__}, not a tensor; PruneScope needs tensor outputs.")
    if output.dim() == 0 or output.shape[0] != batch.shape[0]:
        raise DataError(
            f"The model returned shape {tuple(output.shape)} for {batch.shape[0]} examples; "
            "its first output dimension must index the examples."
        )
    labels = data.labels
    if labels is None or labels.is_floating_point() or output.dim() < 2:
        return
    classes = int(output.shape[-1])
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise DataError(
            f"The labels range from {low} to {high}, but the model has {classes} outputs (classes 0–{classes - 1}); "
            "labels must be class indices the model can predict."
        )


def random_eval_data(
    input_shape: tuple[int, ...],
    count: int = 64,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> EvalData:
    """Random normal inputs without labels, for latency and fidelity when no data was given.

    Refused before allocating when they would take more than `max_bytes`.
    """
    if not dtype.is_floating_point:
        raise DataError(f"Random evaluation data must be floating point, not {dtype}; give real data instead.")
    if count < 1 or any(int(size) < 1 for size in input_shape):
        raise DataError(f"Cannot make {count} random examples of shape {tuple(input_shape)}; use positive sizes.")
    size = count * int(np.prod(input_shape, dtype=object)) * dtype.itemsize
    if size > max_bytes:
        raise DataError(
            f"{count} random examples of shape {tuple(input_shape)} would take {megabytes(size)}; the limit is "
            f"{megabytes(max_bytes)}. Check the shape of one example."
        )
    generator = torch.Generator().manual_seed(seed)
    return EvalData(torch.randn((count, *input_shape), generator=generator, dtype=dtype))
