"""Export a pruned transformers model as a Hugging Face folder that transformers loads back.

A transformers config has one head count and one feed-forward width for every layer, so
the export writes the widest layer's and pads the others with zeros, which compute
exactly what the pruned model computes:

- **feed-forward (FFN) pruning** shrinks the config's `intermediate_size` (GPT-2:
  `n_inner`) to the widest layer's; a layer that kept fewer neurons gets zero neurons
  (zero rows in the expanding layers, zero columns in the projection back), which add
  nothing, since GELU(0) = SiLU(0) = ReLU(0) = 0;
- **head pruning** shrinks `num_attention_heads` (and `num_key_value_heads`) where the
  model reads its head size from the config's `head_dim` (Llama, Mistral, Qwen2, ViT, …:
  the export sets `head_dim`). BERT and GPT-2 derive the head size from
  `hidden_size / num_attention_heads`, and transformers 5 dropped `pruned_heads`, so
  there removed heads come back as zero heads: zero query/key/value rows and zero
  output-projection columns, which add nothing to the output, at the original head count.

Padding goes at the end of each dimension: a pruned model keeps its heads and neurons in
their original order, and under grouped-query attention kept query groups stay matched
with their key/value heads. GPT-2's `Conv1D` layers, loaded as `nn.Linear`, are
transposed back, and its fused query/key/value projection is padded part by part. Every
export is loaded back with transformers and must give the pruned model's outputs (within
`EXPORT_TOLERANCE`), or it is refused.

`export_transformers` writes `config.json` + `model.safetensors`, the tokenizer and other
files of the loaded folder (or of `files_from`, e.g. the minilm sample's folder), and
returns the folder as a zip.
"""

from __future__ import annotations

import copy
import io
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from .errors import PruneScopeError
from .heads import FUSED_FORM, AttentionLayer, attention_layers
from .loading.hf_model import EMBEDDING, IMAGE_CLASSIFICATION, TransformersModel

WEIGHT_FILES = {"config.json", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"}
"""Files of `files_from` not copied: the export writes its own."""
FFN_ATTRIBUTES = ("intermediate_size", "n_inner")
"""Config attributes that give the feed-forward width (GPT-2's `n_inner` may be None: 4 × width)."""
EXPORT_TOLERANCE = 1e-5
"""Largest difference allowed between the exported and the pruned model's outputs (relative to their scale)."""
CHECK_TOKENS = 12
"""Length of the token sequences the round trip is checked on."""


class TransformersExportError(PruneScopeError, ValueError):
    """The model cannot be written as a Hugging Face transformers folder."""


def find_encoder(model: nn.Module) -> nn.Module:
    """The transformers BERT-family model inside `model` (itself, or its first such submodule)."""
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel) and hasattr(module, "encoder") and hasattr(module.config, "hidden_size"):
            return module
    raise TransformersExportError(
        "This model was not loaded from a transformers folder and holds no transformers encoder, so it cannot be "
        "written as a Hugging Face folder; export a state_dict, safetensors or ONNX instead."
    )


def as_transformers_model(model: nn.Module) -> TransformersModel:
    """`model` itself when loaded from a transformers folder, else a wrapper of the transformers
    encoder inside it (e.g. the minilm sample's), evaluated as an embedding model."""
    if isinstance(model, TransformersModel):
        return model
    encoder = find_encoder(model)
    return TransformersModel(encoder, EMBEDDING, pad_token_id=getattr(model, "pad_token_id", None)).train(
        model.training
    )


def export_transformers(model: nn.Module, files_from: Path | None = None) -> bytes:
    """The pruned model as a zip of a Hugging Face folder (see `write_transformers_folder`)."""
    with tempfile.TemporaryDirectory(prefix="prunescope-export-") as directory:
        folder = write_transformers_folder(model, Path(directory) / "model", files_from)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
        return buffer.getvalue()


def write_transformers_folder(model: nn.Module, folder: Path, files_from: Path | None = None) -> Path:
    """Write the pruned model to `folder`: config.json with the pruned sizes, model.safetensors, and
    the loaded folder's tokenizer files (or those of `files_from`); checked by loading it back."""
    wrapper = as_transformers_model(model)
    transformers_model = wrapper.synced()
    layers = attention_layers(wrapper)
    config, targets = pruned_config(wrapper, layers)
    state = _folder_state(wrapper, layers, targets)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in wrapper.folder_files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    if files_from is not None:
        _copy_files(Path(files_from), folder)
    config.save_pretrained(str(folder))
    safetensors.torch.save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _check_round_trip(wrapper, folder, type(transformers_model).__name__)
    return folder


def pruned_config(wrapper: TransformersModel, layers: list[AttentionLayer]) -> tuple[Any, dict[str, tuple]]:
    """The config with the pruned model's feed-forward width and head counts (see the module notes),
    and the tensor shapes a model of that config has, in the wrapper's layout."""
    original = wrapper.config
    config = original.__class__.from_dict(original.to_dict())
    config.architectures = [type(wrapper.transformers_model).__name__]
    state = wrapper.state_dict()
    input_embeddings, output_embeddings = _embeddings(wrapper.transformers_model)
    if getattr(config, "tie_word_embeddings", False) and input_embeddings is not output_embeddings:
        config.tie_word_embeddings = False  # pruning untied them: each is written as it is
    for attribute in FFN_ATTRIBUTES:
        if hasattr(config, attribute):
            _shrink_ffn(wrapper, config, attribute, state)
            break
    if layers and len({(layer.head_dim, layer.group_size) for layer in layers}) == 1:
        head_dim, group_size = layers[0].head_dim, layers[0].group_size
        groups = max(layer.groups for layer in layers)
        changes = {"head_dim": head_dim, "num_attention_heads": groups * group_size}
        if hasattr(config, "num_key_value_heads"):
            changes["num_key_value_heads"] = groups
        try:
            fewer = config.__class__.from_dict(config.to_dict() | changes)
            targets = target_shapes(wrapper, fewer)
        except Exception:  # a config class that refuses the head count (e.g. it must divide the hidden size)
            targets = {}
        if targets and all(
            targets.get(f"{layer.query}.weight", (0,))[0] == _query_rows(layer, groups) for layer in layers
        ):
            return fewer, targets
    return config, target_shapes(wrapper, config)


def _query_rows(layer: AttentionLayer, groups: int) -> int:
    rows = groups * layer.group_size * layer.head_dim
    return 3 * rows if layer.form == FUSED_FORM else rows


def _embeddings(model: nn.Module) -> tuple[Any, Any]:
    inputs = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    outputs = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return getattr(inputs, "weight", None), getattr(outputs, "weight", None)


def target_shapes(wrapper: TransformersModel, config: Any) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape in a fresh model of `config` (built on the meta device, no memory), with
    `Conv1D` weights transposed to the `nn.Linear` layout the loaded model has."""
    from transformers.pytorch_utils import Conv1D

    with torch.device("meta"):
        fresh = type(wrapper.transformers_model)(config)
    shapes = {key: tuple(value.shape) for key, value in fresh.state_dict().items()}
    for name, module in fresh.named_modules():
        if isinstance(module, Conv1D):
            shapes[f"{name}.weight"] = shapes[f"{name}.weight"][::-1]
    return shapes


def _shrink_ffn(wrapper: TransformersModel, config: Any, attribute: str, state: dict[str, torch.Tensor]) -> None:
    """Set the config's feed-forward width to the widest layer's: tensors whose size follows the
    attribute are found by building the model at two widths and seeing which dimensions change."""
    width = getattr(config, attribute) or 4 * config.hidden_size
    setattr(config, attribute, width)
    wider = copy.deepcopy(config)
    setattr(wider, attribute, width + 1)
    base, changed = target_shapes(wrapper, config), target_shapes(wrapper, wider)
    kept = [
        state[key].shape[dim]
        for key, shape in base.items()
        if key in state and changed.get(key) != shape
        for dim in range(len(shape))
        if shape[dim] == width and changed[key][dim] == width + 1
    ]
    if kept:
        setattr(config, attribute, max(kept))


def _folder_state(
    wrapper: TransformersModel, layers: list[AttentionLayer], targets: dict[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """The pruned tensors padded with zeros to the config's shapes, in transformers' own layout;
    a tensor tied to an earlier one is left out (transformers ties it again on loading)."""
    from transformers.pytorch_utils import Conv1D

    fused = {f"{layer.query}.{part}" for layer in layers if layer.form == FUSED_FORM for part in ("weight", "bias")}
    with torch.device("meta"):
        skeleton = type(wrapper.transformers_model)(wrapper.config)
    conv1d = {f"{name}.weight" for name, module in skeleton.named_modules() if isinstance(module, Conv1D)}
    result, seen = {}, set()
    for key, tensor in wrapper.state_dict().items():
        if key not in targets:
            if key.endswith("position_ids"):
                continue
            raise TransformersExportError(f"The pruned model holds {key!r}, which its transformers class does not.")
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        tensor = tensor.detach().cpu()
        padded = _pad_fused(tensor, targets[key]) if key in fused else _pad(tensor, targets[key], key)
        if key in conv1d:
            padded = padded.T
        result[key] = padded.contiguous().clone()
    return result


def _pad(tensor: torch.Tensor, shape: tuple[int, ...], key: str) -> torch.Tensor:
    """`tensor` with zeros appended along each dimension up to `shape`."""
    if tensor.dim() != len(shape) or any(have > want for have, want in zip(tensor.shape, shape, strict=True)):
        raise TransformersExportError(
            f"{key} is {tuple(tensor.shape)} in the pruned model but at most {shape} fits its config; "
            "it cannot be written as a transformers folder."
        )
    padding = [
        amount for have, want in reversed(list(zip(tensor.shape, shape, strict=True))) for amount in (0, want - have)
    ]
    return F.pad(tensor, padding) if any(padding) else tensor


def _pad_fused(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """GPT-2's fused query/key/value rows padded part by part, so each part stays in its third."""
    parts = tensor.chunk(3, dim=0)
    part_shape = (shape[0] // 3, *shape[1:])
    return torch.cat([_pad(part, part_shape, "c_attn") for part in parts])


def _copy_files(source: Path, folder: Path) -> None:
    for path in source.iterdir():
        if path.name in WEIGHT_FILES or path.name.startswith("."):
            continue
        target = folder / path.name
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)


def _check_round_trip(wrapper: TransformersModel, folder: Path, class_name: str) -> None:
    """Load the written folder with transformers and compare its outputs with the pruned model's."""
    from .loading.hf_folder import load_transformers_folder

    loaded = load_transformers_folder(folder)
    if type(loaded.transformers_model).__name__ != class_name:
        raise TransformersExportError(f"The written folder loads as {type(loaded.transformers_model).__name__}.")
    loaded.pad_token_id = wrapper.pad_token_id
    loaded.task = wrapper.task
    inputs = check_inputs(wrapper)
    parameter = next(wrapper.parameters())
    was_training = wrapper.training
    wrapper.eval()
    try:
        with torch.inference_mode():
            expected = wrapper(inputs.to(parameter.device)).float().cpu()
            written = loaded(inputs).float()
    finally:
        wrapper.train(was_training)
    difference = float((written - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    if difference > EXPORT_TOLERANCE * scale:
        raise TransformersExportError(
            f"The written folder computes outputs up to {difference:.2g} away from the pruned model's, so it is "
            "not offered; export safetensors or ONNX instead."
        )


def check_inputs(wrapper: TransformersModel, count: int = 2) -> torch.Tensor:
    """A few random inputs the model takes: pixel values for an image model, else token ids (never padding)."""
    generator = torch.Generator().manual_seed(0)
    config = wrapper.config
    if wrapper.task == IMAGE_CLASSIFICATION:
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        return torch.randn(count, config.num_channels, size, size, generator=generator)
    ids = torch.randint(0, config.vocab_size, (count, CHECK_TOKENS), generator=generator)
    if wrapper.pad_token_id is not None:
        ids[ids == wrapper.pad_token_id] = (wrapper.pad_token_id + 1) % config.vocab_size
    return ids
