"""A transformers model behind the engine's contract: one tensor in, one tensor out.

The engine calls `model(inputs)` with one tensor and reads one tensor back; a transformers
model takes keyword arguments and returns a `ModelOutput`. `TransformersModel` adapts it
without renaming anything: the transformers model's own children are registered as the
wrapper's children, so layer names, reports and `state_dict()` keys are the model's own
(`bert.encoder.layer.0.attention.self.query`, `transformer.h.0.attn.c_attn`, …), and the
transformers model itself is kept beside them, not as a submodule.

What `forward` returns depends on the task the loader found in the config's `architectures`:

- `language_model` (…ForCausalLM, GPT2LMHeadModel): token ids → next-token logits
  (examples, tokens, vocabulary); the engine reports perplexity;
- `classification` (…ForSequenceClassification) and `image_classification`
  (…ForImageClassification): token ids or pixel values → class logits; accuracy with labels;
- `embedding` (a base model such as BertModel): token ids → mean-pooled, L2-normalised
  vectors, as sentence-transformers computes them; embedding fidelity.

Padding (the tokenizer's pad id) is masked out of attention for classifiers and encoders;
language-model evaluation data are unpadded windows of running text.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..embedding import EMBEDDING_TASK
from ..language import LANGUAGE_MODEL_TASK

LANGUAGE_MODEL = "language_model"
CLASSIFICATION = "classification"
IMAGE_CLASSIFICATION = "image_classification"
EMBEDDING = "embedding"
TASKS = (LANGUAGE_MODEL, CLASSIFICATION, IMAGE_CLASSIFICATION, EMBEDDING)
ENGINE_TASKS = {LANGUAGE_MODEL: LANGUAGE_MODEL_TASK, EMBEDDING: EMBEDDING_TASK}
"""Task → the `prunescope_task` that makes `evaluate` report perplexity or embedding figures."""


class TransformersModel(nn.Module):
    """A loaded transformers model: the engine's one-tensor contract, the model's own layer names.

    `transformers_model`: the model (its children are this module's children); `task`: one
    of `TASKS`; `pad_token_id`: masked out of attention (None: nothing is); `tokenizer`: the
    folder's tokenizer or None; `folder_files`: the folder's other files (tokenizer, generation
    config, …) by name, written back by the transformers export. Copies share the tokenizer
    and the files (read-only), never the weights.
    """

    def __init__(
        self,
        model: nn.Module,
        task: str,
        pad_token_id: int | None = None,
        tokenizer: Any = None,
        folder_files: dict[str, bytes] | None = None,
    ) -> None:
        super().__init__()
        object.__setattr__(self, "transformers_model", model)  # not a submodule: its children are ours
        for name, child in model.named_children():
            self.add_module(name, child)
        for name, parameter in model.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        for name, buffer in model.named_buffers(recurse=False):
            self.register_buffer(name, buffer, persistent=name not in model._non_persistent_buffers_set)
        self.task = task
        self.prunescope_task = ENGINE_TASKS.get(task)
        self.pad_token_id = pad_token_id
        self.tokenizer = tokenizer
        self.folder_files = dict(folder_files or {})

    @property
    def config(self) -> Any:
        return self.transformers_model.config

    def synced(self) -> nn.Module:
        """The transformers model, holding the children this wrapper holds now (the engine may have
        replaced one, e.g. a sliced projection) and in this wrapper's train/eval mode."""
        model = self.transformers_model
        model._modules.update(self._modules)
        model.training = self.training
        return model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        model = self.synced()
        if self.task == IMAGE_CLASSIFICATION:
            return model(pixel_values=inputs).logits
        if self.task == LANGUAGE_MODEL:
            return model(input_ids=inputs, use_cache=False).logits
        mask = None if self.pad_token_id is None else (inputs != self.pad_token_id).long()
        if self.task == CLASSIFICATION:
            return model(input_ids=inputs, attention_mask=mask).logits
        hidden = model(input_ids=inputs, attention_mask=mask).last_hidden_state
        weights = torch.ones_like(inputs) if mask is None else mask
        weights = weights.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)

    def __deepcopy__(self, memo: dict[int, Any]) -> TransformersModel:
        memo[id(self.tokenizer)] = self.tokenizer
        memo[id(self.folder_files)] = self.folder_files
        copied = self.__class__.__new__(self.__class__)
        memo[id(self)] = copied
        for key, value in self.__dict__.items():
            object.__setattr__(copied, key, copy.deepcopy(value, memo))
        return copied


def is_transformers_model(model: nn.Module | object) -> bool:
    """Whether `model` was loaded from a transformers folder (and can be written back as one)."""
    return isinstance(model, TransformersModel)
