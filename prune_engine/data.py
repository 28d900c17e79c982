"""Evaluation data, model bundles and content fingerprints.

`EvalData` is the one container for examples the engine evaluates, scores and
fine-tunes on; `ModelBundle` is a model together with everything needed to use it.
Fingerprints identify a model or a data set by content, so caches never confuse two
models that share a name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import DataError

TASKS = ("classification", "embedding", "regression", "language_model")


@dataclass(frozen=True)
class EvalData:
    """Examples as tensors: `inputs` (first dimension = examples) and optional `labels`.

    Without labels the engine compares a pruned model with its original by fidelity
    (top-1 agreement and output cosine similarity) instead of accuracy.
    """

    inputs: torch.Tensor
    labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, torch.Tensor):
            raise DataError(f"Inputs must be a tensor, got {type(self.inputs).__name__}.")
        if self.inputs.dim() == 0 or self.inputs.shape[0] == 0:
            raise DataError("The evaluation data holds no examples; give at least one.")
        if self.labels is not None:
            if not isinstance(self.labels, torch.Tensor):
                raise DataError(f"Labels must be a tensor, got {type(self.labels).__name__}.")
            if self.labels.shape[0] != self.inputs.shape[0]:
                raise DataError(
                    f"There are {self.inputs.shape[0]} inputs but {self.labels.shape[0]} labels; "
                    "give one label per example."
                )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Yield `(inputs, labels)` slices in order; labels are `None` when absent."""
        if batch_size < 1:
            raise DataError(f"Batch size must be at least 1, got {batch_size}.")
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            labels = None if self.labels is None else self.labels[start:stop]
            yield self.inputs[start:stop], labels

    def subset(self, count: int) -> EvalData:
        """The first `count` examples (all of them if there are fewer)."""
        count = max(1, min(count, len(self)))
        labels = None if self.labels is None else self.labels[:count]
        return EvalData(self.inputs[:count], labels)

    def fingerprint(self) -> str:
        """A short content hash of inputs and labels."""
        digest = hashlib.sha256()
        _update_with_tensor(digest, self.inputs)
        if self.labels is not None:
            _update_with_tensor(digest, self.labels)
        return digest.hexdigest()[:16]


@dataclass
class ModelBundle:
    """A model and what it needs to be inspected, pruned and evaluated.

    The model in a bundle may be shared between users of the app: treat it as
    read-only; pruning and training always work on copies.
    """

    name: str
    model: nn.Module
    example_input: torch.Tensor
    eval_data: EvalData | None = None
    train_data: EvalData | None = None
    task: str = "classification"
    description: str = ""
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"Unknown task {self.task!r}; use one of {', '.join(TASKS)}.")


def model_fingerprint(model: nn.Module) -> str:
    """A short content hash of a model's class, parameter/buffer names, shapes and values."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        _update_with_tensor(digest, tensor)
    return digest.hexdigest()[:16]


def _update_with_tensor(digest: hashlib._Hash, tensor: torch.Tensor) -> None:
    tensor = tensor.detach()
    digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
    if tensor.is_sparse or tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    tensor = tensor.cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    digest.update(memoryview(tensor.reshape(-1).numpy()).cast("B"))
