"""Padding in calibration inputs: which token positions are real.

A model that pads its token ids (it names a `pad_token_id`, as `SentenceEmbedder` and the
wrappers of Hugging Face models do) still computes hidden states at the padded positions;
it only hides them from attention and pooling. Statistics gathered from a layer's inputs
(Wanda's input norms, SparseGPT's Hessian, block influence) would count those positions
as if they were text, so they are left out, as the model itself leaves them out.
"""

from __future__ import annotations

import torch
from torch import nn


def real_tokens(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor | None:
    """(batch, tokens) bool, True where `inputs` holds a real token rather than `model.pad_token_id`;
    None when every position counts (the model names no pad id, or the inputs are not token ids)."""
    pad = getattr(model, "pad_token_id", None)
    if pad is None or inputs.dim() != 2 or inputs.dtype.is_floating_point or inputs.dtype == torch.bool:
        return None
    return inputs != pad


def token_rows(activations: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """`activations` (…, features) as rows of features, without the padded positions when the
    activations are laid out (batch, tokens, features) like the mask `real`."""
    if real is not None and activations.dim() == 3 and activations.shape[:2] == real.shape:
        return activations[real.to(activations.device)]
    return activations.reshape(-1, activations.shape[-1])
