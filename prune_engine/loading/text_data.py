"""Your own text as evaluation data for a model loaded from a transformers folder.

A `.txt` file holds one example a line; a CSV holds a text column (named `text`,
`sentence`, … or the first column that is not numbers) and, optionally, a label column.
The text is tokenized with the folder's own tokenizer:

- a causal language model gets the lines as running text (each line ended by the
  tokenizer's end-of-sequence token) cut into windows of `max_tokens`, with no padding,
  so perplexity counts real tokens only; labels do not apply;
- a classifier or encoder gets one example a line, padded with the pad token to the
  longest (cut at `max_tokens`); labels are class indices or the names in the config's
  `label2id` (for an encoder: paraphrase group ids).

A folder without tokenizer files cannot read text: `random_token_data` gives random
token ids instead, which serve fidelity (does the pruned model follow the original?) and
latency only.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import torch

from ..data import EvalData
from ..errors import DataError
from .files import DEFAULT_MAX_BYTES, Source, read_blob, short
from .hf_model import IMAGE_CLASSIFICATION, LANGUAGE_MODEL, TransformersModel

TEXT_EXTENSIONS = (".txt", ".csv")
TEXT_COLUMN_NAMES = ("text", "sentence", "sentences", "content", "review", "input", "prompt")
"""CSV columns taken as the text, compared in lower case; otherwise the first column that is not numbers."""
MAX_TOKENS = 128
"""Longest example (classifiers, encoders) or window (language models), in tokens; fewer when the
model's context (`CONTEXT_ATTRIBUTES` of its config) is shorter."""
CONTEXT_ATTRIBUTES = ("n_positions", "max_position_embeddings")
MAX_EXAMPLES = 5_000
"""Most examples read from a text file; a larger file is cut, the rest not tokenized."""
RANDOM_EXAMPLES = 64
RANDOM_TOKENS = 32


def text_lines(text: str) -> list[str]:
    """The examples of a .txt file: its non-blank lines, stripped (before the `MAX_EXAMPLES` cap)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_text_data(
    source: Source,
    model: TransformersModel,
    *,
    filename: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_tokens: int = MAX_TOKENS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> EvalData:
    """Token ids (and labels) from a .txt or .csv file, tokenized with `model`'s own tokenizer."""
    if filename is None:
        if not isinstance(source, (str, os.PathLike)):
            raise DataError("Give the text file's name (filename=...) so its format can be told from its extension.")
        filename = Path(source).name
    extension = Path(filename).suffix.lower()
    if extension not in TEXT_EXTENSIONS:
        raise DataError(f"{filename!r} is not a text file; text evaluation data can be {', '.join(TEXT_EXTENSIONS)}.")
    _require_tokenizer(model)
    content = read_blob(source, max_bytes, what="data file").read()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{filename!r} is not UTF-8 text ({short(error)}); save it as UTF-8.") from error
    if extension == ".txt":
        if label_column is not None or text_column is not None:
            raise DataError("Columns apply to CSV files only; a .txt file holds one example a line and no labels.")
        lines, labels = text_lines(text), None
    else:
        lines, labels = _csv_text(text, filename, text_column, label_column)
    if not lines:
        raise DataError(f"{filename!r} holds no text; give one example a line.")
    lines = lines[:MAX_EXAMPLES]
    max_tokens = min(max_tokens, _context(model))
    if model.task == LANGUAGE_MODEL:
        if labels is not None:
            raise DataError("A language model is scored on the text itself (perplexity); leave out the label column.")
        return EvalData(_windows(model, lines, max_tokens))
    ids = _padded(model, lines, max_tokens)
    return EvalData(ids, None if labels is None else _label_ids(model, labels[: len(lines)]))


def random_token_data(model: TransformersModel, count: int = RANDOM_EXAMPLES, tokens: int = RANDOM_TOKENS) -> EvalData:
    """Random inputs the model takes (token ids, never the pad token; pixel values for an image model),
    seeded: for fidelity and latency only, since they are no examples of any task."""
    generator = torch.Generator().manual_seed(0)
    config = model.config
    if model.task == IMAGE_CLASSIFICATION:
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        return EvalData(torch.randn(count, config.num_channels, size, size, generator=generator))
    ids = torch.randint(0, config.vocab_size, (count, tokens), generator=generator)
    if model.pad_token_id is not None:
        ids[ids == model.pad_token_id] = (model.pad_token_id + 1) % config.vocab_size
    return EvalData(ids)


def _context(model: TransformersModel) -> int:
    """The most tokens the model reads at once (its position embeddings), if its config says."""
    for attribute in CONTEXT_ATTRIBUTES:
        value = getattr(model.config, attribute, None)
        if isinstance(value, int) and value > 1:
            return value
    return MAX_TOKENS


def _require_tokenizer(model: TransformersModel) -> None:
    if not isinstance(model, TransformersModel):
        raise DataError("Text evaluation data need a model loaded from a transformers folder (with its tokenizer).")
    if model.task == IMAGE_CLASSIFICATION:
        raise DataError(
            "This is an image classifier: give pixel values as a tensor file (.pt, .npz, .safetensors) of shape "
            "(examples, channels, height, width), or random inputs."
        )
    if model.tokenizer is None:
        raise DataError(
            "This model folder has no tokenizer files (tokenizer.json, vocab.txt, …), so text cannot be turned into "
            "token ids. Add the tokenizer files to the folder, or choose random inputs: they serve fidelity and "
            "latency only."
        )


def _csv_text(
    text: str, filename: str, text_column: str | None, label_column: str | None
) -> tuple[list[str], list[object] | None]:
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise DataError(f"{filename!r} cannot be read as CSV ({short(error)}).") from error
    columns = [str(column) for column in frame.columns]
    if text_column is None:
        text_column = next((name for name in columns if name.lower() in TEXT_COLUMN_NAMES), None)
        text_column = text_column or next(
            (name for name in columns if name != label_column and not _numbers(frame[name])), None
        )
    if text_column not in columns:
        raise DataError(f"{filename!r} has no text column {text_column!r}; its columns are {', '.join(columns)}.")
    if label_column is not None and label_column not in columns:
        raise DataError(f"{filename!r} has no label column {label_column!r}; its columns are {', '.join(columns)}.")
    kept = frame[frame[text_column].str.strip() != ""]
    labels = None if label_column is None else kept[label_column].str.strip().tolist()
    return kept[text_column].str.strip().tolist(), labels


def _numbers(column: pd.Series) -> bool:
    return bool(pd.to_numeric(column, errors="coerce").notna().all())


def _windows(model: TransformersModel, lines: list[str], length: int) -> torch.Tensor:
    """The lines as running text cut into windows of `length` tokens (the last partial window dropped,
    unless it is the only one)."""
    tokenizer = model.tokenizer
    end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids = [token for line in lines for token in [*tokenizer.encode(line, add_special_tokens=False), *end]]
    if len(ids) < 2:
        raise DataError("The text gives fewer than two tokens; a language model needs at least two to be scored.")
    if len(ids) < length:
        return torch.tensor([ids], dtype=torch.long)
    windows = len(ids) // length
    return torch.tensor(ids[: windows * length], dtype=torch.long).reshape(windows, length)


def _padded(model: TransformersModel, lines: list[str], length: int) -> torch.Tensor:
    encoded = model.tokenizer(lines, truncation=True, max_length=length)["input_ids"]
    pad = model.pad_token_id if model.pad_token_id is not None else 0
    ids = torch.full((len(encoded), max(len(tokens) for tokens in encoded)), pad, dtype=torch.long)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return ids


def _label_ids(model: TransformersModel, labels: list[object]) -> torch.Tensor:
    """Class indices from a label column: whole numbers as they are, names through the config's labels
    (`id2label`, `label2id`)."""
    config = model.config
    names = {str(name): int(index) for index, name in (getattr(config, "id2label", None) or {}).items()}
    names |= {str(name): int(index) for name, index in (getattr(config, "label2id", None) or {}).items()}
    values = []
    for label in labels:
        text = str(label)
        if text.lstrip("-").isdigit():
            values.append(int(text))
        elif text in names:
            values.append(names[text])
        else:
            known = ", ".join(list(names)[:10]) or "none"
            raise DataError(f"Label {text!r} is neither a class index nor one of the model's labels ({known}).")
    return torch.tensor(values, dtype=torch.long)
