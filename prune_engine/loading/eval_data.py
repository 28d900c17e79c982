"""Loading evaluation data: tensor files, NumPy arrays and CSV tables, checked against the model."""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch
import torch
from torch import nn

from ..data import EvalData
from ..errors import DataError
from ..metrics import eval_mode
from ..placement import placement
from .files import DEFAULT_MAX_BYTES, Blob, Source, read_blob, short

INPUT_KEYS = ("inputs", "x", "X")
LABEL_KEYS = ("labels", "y", "Y")
DATA_EXTENSIONS = (".safetensors", ".pt", ".pth", ".npz", ".npy", ".csv")


def load_eval_data(
    source: Source,
    *,
    filename: str | None = None,
    label_column: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> EvalData:
    """Evaluation data from a file; its extension (of `filename`, else of the path) decides the format.

    `.safetensors`/`.pt`/`.pth` (tensors `inputs`, optional `labels`; .pt read with
    `weights_only=True`), `.npz` (arrays `inputs`/`labels` or `x`/`y`), `.npy` (inputs
    only) and `.csv` (numeric feature columns; `label_column` names the labels). Float
    inputs become float32; integer labels int64. `input_shape` reshapes each example,
    e.g. (1, 8, 8) for 64 pixel columns.
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
        inputs, labels = _read_tensor_file(blob, filename, extension)
    inputs = _as_inputs(inputs, input_shape)
    labels = None if labels is None else _as_labels(labels)
    return EvalData(inputs, labels)


def _read_tensor_file(blob: Blob, filename: str, extension: str) -> tuple[Any, Any]:
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
    try:
        with blob.open() as file:
            frame = pd.read_csv(file)
        if len(frame.columns) and all(_is_number(column) for column in frame.columns):
            with blob.open() as file:  # no header row: the first line is data
                frame = pd.read_csv(file, header=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{filename!r} could not be read as CSV ({short(error)}).") from error
    frame.columns = [str(column) for column in frame.columns]
    header_lines = 0 if all(_is_number(column) for column in frame.columns) else 1
    if frame.empty:
        raise DataError(f"{filename!r} has no data rows.")
    labels = None
    if label_column is not None:
        if label_column not in frame.columns:
            shown = ", ".join(frame.columns[:10]) + (" …" if len(frame.columns) > 10 else "")
            raise DataError(f"{filename!r} has no column {label_column!r}; its columns are: {shown}.")
        labels = _numeric_column(frame[label_column], label_column, header_lines)
        frame = frame.drop(columns=[label_column])
    if frame.shape[1] == 0:
        raise DataError(f"{filename!r} has no feature columns besides the label column.")
    features = np.stack(
        [_numeric_column(frame[column], column, header_lines) for column in frame.columns], axis=1
    ).astype(np.float32)
    if labels is not None:
        integral = np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
        labels = labels.astype(np.int64) if integral else labels.astype(np.float32)
    return features, labels


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
            f"Column {name!r}, row {row + 1} (line {row + 1 + header_lines} of the file) {what}; "
            "every feature and label cell must be a number."
        )
    return numeric.to_numpy(dtype=np.float64)


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise DataError(f"The {what} are of type {value.dtype}; they must be numbers.")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise DataError(f"The {what} must be a tensor or an array, not {type(value).__name__}.")


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
) -> EvalData:
    """Random normal inputs without labels, for latency and fidelity when no data was given."""
    if not dtype.is_floating_point:
        raise DataError(f"Random evaluation data must be floating point, not {dtype}; give real data instead.")
    if count < 1 or any(int(size) < 1 for size in input_shape):
        raise DataError(f"Cannot make {count} random examples of shape {tuple(input_shape)}; use positive sizes.")
    generator = torch.Generator().manual_seed(seed)
    return EvalData(torch.randn((count, *input_shape), generator=generator, dtype=dtype))
