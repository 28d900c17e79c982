"""Export a pruned BERT-family encoder as a Hugging Face folder that transformers and
sentence-transformers load back.

A BERT config has one head count and one feed-forward width for every layer, and derives
the head size from `hidden_size / num_attention_heads`. So:

- **feed-forward (FFN) pruning** really shrinks the export: `intermediate_size` becomes the
  widest layer's; a layer that kept fewer neurons is padded with zero neurons (zero rows in
  `intermediate.dense`, zero columns in `output.dense`), which give exactly what the pruned
  model gives, since GELU(0) = 0;
- **head pruning** cannot be written with fewer heads (transformers 5 dropped `pruned_heads`,
  and fewer heads would change the head size), so removed heads come back as zero heads:
  zero query/key/value rows and zero output-projection columns, which add nothing to the
  output. The exported model computes what the pruned one does, at the original size.

`export_transformers` writes `config.json` + `model.safetensors` (via `save_pretrained`),
copies the tokenizer and sentence-transformers files of `files_from` (e.g. the original
model's folder), and returns the folder as a zip.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import PruneScopeError
from .heads import attention_layers

WEIGHT_FILES = {"config.json", "model.safetensors", "pytorch_model.bin"}
"""Files of `files_from` not copied: the export writes its own."""


class TransformersExportError(PruneScopeError, ValueError):
    """The model holds no BERT-family transformers encoder that can be written as a Hugging Face folder."""


def find_encoder(model: nn.Module) -> nn.Module:
    """The transformers BERT-family model inside `model` (itself, or its first such submodule)."""
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel) and hasattr(module, "encoder") and hasattr(module.config, "hidden_size"):
            return module
    raise TransformersExportError(
        "This model holds no transformers BERT-style encoder, so it cannot be written as a Hugging Face folder; "
        "export a state_dict, safetensors or ONNX instead."
    )


def padded_encoder(model: nn.Module) -> nn.Module:
    """A fresh encoder of the config's layout holding the pruned weights, removed heads and FFN
    neurons padded back as zeros; its config's `intermediate_size` is the widest layer's."""
    encoder = find_encoder(model)
    config = encoder.config.__class__.from_dict(encoder.config.to_dict())
    layers = list(encoder.encoder.layer)
    config.intermediate_size = max(layer.intermediate.dense.out_features for layer in layers)
    config._attn_implementation = encoder.config._attn_implementation
    fresh = encoder.__class__(config, add_pooling_layer=getattr(encoder, "pooler", None) is not None)
    state = {key: value.detach().clone() for key, value in encoder.state_dict().items()}
    head_size = config.hidden_size // config.num_attention_heads
    for attention in attention_layers(encoder):
        kept = attention.heads
        if kept == config.num_attention_heads:
            continue
        prefix = f"{attention.name}."
        for part in ("query", "key", "value"):
            _pad_rows(state, f"{prefix}self.{part}", config.num_attention_heads * head_size)
        _pad_columns(state, f"{prefix}output.dense", config.num_attention_heads * head_size)
    for index in range(len(layers)):
        prefix = f"encoder.layer.{index}."
        _pad_rows(state, f"{prefix}intermediate.dense", config.intermediate_size)
        _pad_columns(state, f"{prefix}output.dense", config.intermediate_size)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    leftover = [key for key in [*missing, *unexpected] if not key.endswith("position_ids")]
    if leftover:
        raise TransformersExportError(f"The pruned encoder does not fit its config after padding: {leftover[:5]}.")
    return fresh.eval()


def _pad_rows(state: dict[str, torch.Tensor], layer: str, rows: int) -> None:
    """Pad the weight (and bias) of `layer` with zero output rows up to `rows`. A pruned model
    keeps its heads and neurons in their original order, so padding at the end keeps the function."""
    weight = state[f"{layer}.weight"]
    if weight.shape[0] < rows:
        state[f"{layer}.weight"] = torch.cat([weight, weight.new_zeros(rows - weight.shape[0], weight.shape[1])])
        bias = state.get(f"{layer}.bias")
        if bias is not None:
            state[f"{layer}.bias"] = torch.cat([bias, bias.new_zeros(rows - bias.shape[0])])


def _pad_columns(state: dict[str, torch.Tensor], layer: str, columns: int) -> None:
    weight = state[f"{layer}.weight"]
    if weight.shape[1] < columns:
        state[f"{layer}.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], columns - weight.shape[1])], 1)


def write_transformers_folder(model: nn.Module, folder: Path, files_from: Path | None = None) -> Path:
    """Write the pruned encoder of `model` to `folder` (`save_pretrained`), plus the tokenizer and
    sentence-transformers files found in `files_from`."""
    folder.mkdir(parents=True, exist_ok=True)
    if files_from is not None:
        for path in Path(files_from).iterdir():
            if path.name in WEIGHT_FILES or path.name.startswith("."):
                continue
            target = folder / path.name
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copy2(path, target)
    padded_encoder(model).save_pretrained(str(folder))
    return folder


def export_transformers(model: nn.Module, files_from: Path | None = None) -> bytes:
    """The pruned encoder as a zip of a Hugging Face folder (see `write_transformers_folder`)."""
    with tempfile.TemporaryDirectory() as directory:
        folder = write_transformers_folder(model, Path(directory) / "model", files_from)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
        return buffer.getvalue()
