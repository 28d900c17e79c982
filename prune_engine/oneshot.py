"""One-shot pruning from calibration data: Wanda and SparseGPT.

Both look at what each layer actually receives on a few calibration examples (the inputs
given to `apply_plan(data=...)`), which magnitude pruning never sees: in a transformer a
few input features are much larger than the rest, and a small weight reading one of them
matters more than a large weight reading a quiet one.

- **Wanda** (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language
  Models") scores weight W_ij by |W_ij| · ‖X_j‖₂, the norm of input feature j over every
  calibration token (for a convolution, of input channel j over every position), and
  compares weights within each output row. No weight changes.
- **SparseGPT** (Frantar & Alistarh 2023) prunes a layer and updates the weights it keeps
  so that the layer's outputs on the calibration inputs change as little as possible: the
  optimal-brain-surgeon update from the inverse of the inputs' Hessian H = 2XXᵀ/n (dampened
  by 1 % of its mean diagonal), column block by column block, choosing the mask of each
  block of 128 columns as it goes (`sparsegpt_solve` follows the reference code,
  github.com/IST-DASLab/sparsegpt, `fasterprune`). Layers are pruned in the order the
  model runs them, each from inputs computed by the already-pruned layers before it; layers
  that read the same tensor (query, key and value) are pruned together.

Both count real tokens only: for a model that pads its token ids (it names a `pad_token_id`)
the padded positions are left out of the norms and Hessians, as the model leaves them out of
attention and pooling. Wanda measures every layer in one pass of the unpruned model; the
reference code measures each transformer block from the already-pruned blocks before it,
which on minilm and tiny_gpt changed the result by less than the spread between calibration
sets (cosine +0.00–0.01, perplexity ±0.01), so the one pass stays.

Linear and Conv2d layers are supported (a convolution's inputs are unfolded into patches,
as the reference code does); SparseGPT refuses grouped convolutions and Conv1d/3d.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .data import EvalData
from .errors import CriterionError
from .hooks import own_thread
from .layers import get_layer
from .placement import placement
from .tokens import real_tokens, token_rows

if TYPE_CHECKING:
    from .importance import ScoringContext

CALIBRATION_EXAMPLES = 128
"""Calibration examples Wanda and SparseGPT look at (spread over the data), unless fewer are asked for."""
BATCH_SIZE = 32
BLOCK_SIZE = 128
"""Columns SparseGPT prunes and updates together (the reference code's default)."""
DAMPENING = 0.01
"""Added to H's diagonal, as a fraction of its mean diagonal (the reference code's `percdamp`)."""

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class NM:
    """N:M sparsity: `n` of every `m` consecutive input weights kept."""

    n: int
    m: int


# ---------------------------------------------------------------- calibration inputs


def calibration_inputs(data: EvalData, max_examples: int = CALIBRATION_EXAMPLES) -> torch.Tensor:
    """Up to `max_examples` inputs of `data`, spread evenly over it."""
    count = min(max_examples, CALIBRATION_EXAMPLES, len(data))
    if count >= len(data):
        return data.inputs
    return data.inputs[torch.linspace(0, len(data) - 1, count).round().long()]


def _rows(module: nn.Module, inputs: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's inputs as rows of what one weight row reads: real (unpadded) tokens × features
    for a Linear, unfolded patches × (channels·kernel) for a Conv2d."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(inputs, module.kernel_size, module.dilation, module.padding, module.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return token_rows(inputs, real)


@dataclass
class _Batch:
    """Which positions of the calibration batch running now are real tokens (None: all of them)."""

    real: torch.Tensor | None = None


class _StopForward(Exception):
    """Raised by a hook once every layer of interest has seen its input, to cut a forward pass short."""


@contextmanager
def _hooked(model: nn.Module, layers: list[str], observe: Callable[[str, nn.Module, torch.Tensor], None]):
    handles = []
    for name in layers:
        module = get_layer(model, name)

        def hook(module: nn.Module, args: tuple, name: str = name) -> None:
            observe(name, module, args[0])

        handles.append(module.register_forward_pre_hook(own_thread(hook)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _run_batches(model: nn.Module, inputs: torch.Tensor, batch: _Batch | None = None) -> None:
    """Run the calibration inputs through `model` batch by batch, placed on its device and in its dtype;
    `batch` is told which positions of each are real tokens before it runs.

    Padded token ids run shortest first, each batch cut after its last real token: the statistics
    gathered are sums over real tokens, which neither the order nor the trailing padding changes."""
    place = placement(model)
    real = real_tokens(model, inputs)
    if real is not None:
        inputs = inputs[real.sum(dim=1).argsort(stable=True)]
    with torch.no_grad():
        for start in range(0, len(inputs), BATCH_SIZE):
            chunk = inputs[start : start + BATCH_SIZE]
            chunk_real = real_tokens(model, chunk)
            if chunk_real is not None and bool(chunk_real.any()):
                width = int(chunk_real.any(dim=0).nonzero().max()) + 1
                chunk, chunk_real = chunk[:, :width], chunk_real[:, :width]
            if batch is not None:
                batch.real = chunk_real
            with suppress(_StopForward):
                model(place.inputs(chunk))


def _private_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy to put hooks on, so the caller's (possibly shared) model never carries any."""
    return copy.deepcopy(model).eval()


# ---------------------------------------------------------------- Wanda


def input_norms(model: nn.Module, layers: list[str], inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ of each input feature (Linear) or input channel (Conv) of each layer over `inputs`
    (every real token of every input: padding is left out, as the model leaves it out)."""
    sums: dict[str, torch.Tensor] = {}
    batch = _Batch()

    def observe(name: str, module: nn.Module, x: torch.Tensor) -> None:
        x = x.detach().float()
        if isinstance(module, nn.Linear):
            squares = token_rows(x, batch.real).square().sum(dim=0)
        else:
            squares = x.square().sum(dim=[dim for dim in range(x.dim()) if dim != 1])
        sums[name] = sums[name] + squares if name in sums else squares

    private = _private_copy(model)
    with _hooked(private, layers, observe):
        _run_batches(private, inputs, batch)
    _require_all_ran(layers, sums)
    return {name: sums[name].sqrt().cpu() for name in layers}


def _require_all_ran(layers: list[str], seen: dict[str, object]) -> None:
    silent = [name for name in layers if name not in seen]
    if silent:
        raise CriterionError(
            f"Layers {', '.join(map(repr, silent))} never ran on the calibration data, so their inputs are "
            "unknown; leave them out of the plan or choose a criterion that needs no data."
        )


def _norms_per_weight(module: nn.Module, norms: torch.Tensor) -> torch.Tensor:
    """The input norm each weight multiplies, shaped to broadcast against the weight."""
    weight = module.weight
    if isinstance(module, nn.Linear):
        return norms.reshape(1, -1)
    groups = int(getattr(module, "groups", 1))
    out_channels, per_group = weight.shape[0], weight.shape[1]
    index = (torch.arange(out_channels) // (out_channels // groups)).unsqueeze(1) * per_group + torch.arange(per_group)
    return norms[index].reshape(out_channels, per_group, *([1] * (weight.dim() - 2)))


def wanda_weight_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    """|W_ij| · ‖X_j‖₂ for every weight of the context's layers."""
    assert context.data is not None
    context.report(0.0, f"wanda: measuring the inputs of {len(context.layers)} layer(s)")
    norms = input_norms(context.model, list(context.layers), calibration_inputs(context.data, context.max_examples))
    context.report(1.0, "wanda: done")
    scores = {}
    for name in context.layers:
        module = get_layer(context.model, name)
        weight = module.weight.detach().float().cpu()
        scores[name] = weight.abs() * _norms_per_weight(module, norms[name])
    return scores


def wanda_channel_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    """An output channel's Wanda score: the sum of its weights' scores."""
    return {
        name: scores.reshape(scores.shape[0], -1).sum(dim=1) for name, scores in wanda_weight_scores(context).items()
    }


# ---------------------------------------------------------------- SparseGPT


def _check_supported(model: nn.Module, layers: list[str]) -> None:
    unsupported = [
        name
        for name in layers
        if not isinstance(get_layer(model, name), (nn.Linear, nn.Conv2d))
        or getattr(get_layer(model, name), "groups", 1) != 1
    ]
    if unsupported:
        raise CriterionError(
            f"SparseGPT updates Linear and ungrouped Conv2d layers only; {', '.join(map(repr, unsupported))} "
            "are not. Leave them out of the plan, or choose wanda."
        )


def hessians(
    model: nn.Module, layers: list[str], inputs: torch.Tensor, stop_early: bool = False
) -> dict[str, torch.Tensor]:
    """H = 2XᵀX/n of each layer's inputs X (rows as `_rows` forms them, padding left out), float32
    on the model's device.

    With `stop_early` each forward pass ends as soon as every layer in `layers` has run."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    fired: set[str] = set()
    batch = _Batch()

    def observe(name: str, module: nn.Module, x: torch.Tensor) -> None:
        rows = _rows(module, x.detach().float(), batch.real)
        product = rows.T @ rows
        sums[name] = sums[name] + product if name in sums else product
        counts[name] = counts.get(name, 0) + len(rows)
        fired.add(name)
        if stop_early and len(fired) == len(layers):
            fired.clear()
            raise _StopForward

    with _hooked(model, layers, observe):
        _run_batches(model, inputs, batch)
    _require_all_ran(layers, sums)
    return {name: 2.0 * sums[name] / max(counts[name], 1) for name in layers}


def _inverse_cholesky(hessian: torch.Tensor, dampening: float) -> torch.Tensor:
    """The upper Cholesky factor of H⁻¹ after dampening; more dampening if H is not positive definite."""
    size = hessian.shape[0]
    mean_diagonal = float(torch.diag(hessian).mean()) or 1.0
    for attempt in range(6):
        damped = hessian + (dampening * 10**attempt) * mean_diagonal * torch.eye(size, device=hessian.device)
        factor, info = torch.linalg.cholesky_ex(damped)
        if int(info) == 0:
            inverse = torch.cholesky_inverse(factor)
            upper, info = torch.linalg.cholesky_ex(inverse, upper=True)
            if int(info) == 0:
                return upper
    raise CriterionError("SparseGPT could not invert the inputs' Hessian of a layer; give more calibration examples.")


def sparsegpt_solve(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    ratio: float = 0.0,
    nm: NM | None = None,
    block_size: int = BLOCK_SIZE,
    dampening: float = DAMPENING,
) -> torch.Tensor:
    """The pruned and updated 2-D weight (rows × columns) for inputs whose Hessian is `hessian`.

    Unstructured: `ratio` of each block's weights are removed (chosen by w²/[H⁻¹]_jj² within the
    block of `block_size` columns, so the count per layer is exact up to rounding per block). N:M:
    in every `m` consecutive columns of a row, the `m − n` of lowest w²/[H⁻¹]_jj² go. After each
    column the error it leaves is spread over the columns not yet processed.
    """
    W = weight.detach().float().clone()
    H = hessian.float().clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    Hinv = _inverse_cholesky(H, dampening)
    pruned_per_group = 0 if nm is None else nm.m - nm.n
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        diagonal = torch.diag(Hinv1)
        if nm is None:
            saliency = W1.square() / diagonal.reshape(1, -1).square()
            remove = round(ratio * saliency.numel())
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
            if remove > 0:  # a full sort: topk with k near half the block is ~20× slower on a CPU
                mask1.view(-1)[torch.sort(saliency.reshape(-1), stable=True).indices[:remove]] = True
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            w = W1[:, i]
            d = Hinv1[i, i]
            if nm is not None and i % nm.m == 0:
                group = W1[:, i : i + nm.m].square() / diagonal[i : i + nm.m].reshape(1, -1).square()
                mask1.scatter_(1, i + torch.topk(group, pruned_per_group, dim=1, largest=False).indices, True)
            q = w.clone()
            q[mask1[:, i]] = 0.0
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W.to(weight.dtype)


def _column_order(module: nn.Module) -> torch.Tensor | None:
    """For a Conv2d under N:M: the order of the unfolded columns that puts input channels next to
    each other at each kernel position (the groups `masks.nm_mask` uses); None otherwise."""
    if not isinstance(module, nn.Conv2d):
        return None
    channels, height, width = module.weight.shape[1:]
    return torch.arange(channels * height * width).reshape(channels, height, width).permute(1, 2, 0).reshape(-1)


def _prune_layer(module: nn.Module, hessian: torch.Tensor, ratio: float, nm: NM | None) -> None:
    weight = module.weight
    flat = weight.detach().reshape(weight.shape[0], -1)
    order = _column_order(module) if nm is not None else None
    if order is not None:
        order = order.to(flat.device)
        solved = sparsegpt_solve(flat[:, order], hessian[order][:, order], ratio, nm)
        restored = torch.empty_like(solved)
        restored[:, order] = solved
        solved = restored
    else:
        solved = sparsegpt_solve(flat, hessian, ratio, nm)
    with torch.no_grad():
        weight.copy_(solved.reshape(weight.shape).to(weight.dtype))


def _waves(model: nn.Module, layers: list[str], inputs: torch.Tensor) -> list[list[str]]:
    """`layers` in the order the model runs them, grouped where consecutive layers read the same tensor."""
    order: list[tuple[str, torch.Tensor]] = []  # holding the tensors keeps their memory from being reused

    def observe(name: str, module: nn.Module, x: torch.Tensor) -> None:
        if all(name != seen for seen, _ in order):
            order.append((name, x))
        if len(order) == len(layers):
            raise _StopForward

    with _hooked(model, layers, observe):
        _run_batches(model, inputs[:1])
    _require_all_ran(layers, dict(order))
    waves: list[list[str]] = []
    previous = None
    for name, tensor in order:
        if waves and tensor is previous:
            waves[-1].append(name)
        else:
            waves.append([name])
        previous = tensor
    return waves


def sparsegpt_prune(
    model: nn.Module,
    ratios: dict[str, float],
    data: EvalData,
    nm: NM | None = None,
    max_examples: int = CALIBRATION_EXAMPLES,
    progress: ProgressFn | None = None,
) -> None:
    """Prune the layers in `ratios` (to N:M when `nm` is given) of `model` in place with SparseGPT,
    layer after layer in running order, each from the inputs the already-pruned model gives it."""
    layers = [name for name, ratio in ratios.items() if ratio > 0 or nm is not None]
    if not layers:
        return
    _check_supported(model, layers)
    inputs = calibration_inputs(data, max_examples)
    was_training = model.training
    model.eval()
    try:
        waves = _waves(model, layers, inputs)
        for index, wave in enumerate(waves):
            if progress is not None:
                progress(index / len(waves), f"sparsegpt: pruning {', '.join(wave)}")
            found = hessians(model, wave, inputs, stop_early=True)
            for name in wave:
                _prune_layer(get_layer(model, name), found[name], ratios[name], nm)
    finally:
        model.train(was_training)
    if progress is not None:
        progress(1.0, "sparsegpt: done")


def sparsegpt_weight_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    """The saliency SparseGPT first ranks weights by, w² / [H⁻¹]_jj², from the unpruned model's inputs
    (its later choices also depend on the updates it makes as it goes)."""
    assert context.data is not None
    layers = list(context.layers)
    _check_supported(context.model, layers)
    context.report(0.0, f"sparsegpt: measuring the inputs of {len(layers)} layer(s)")
    private = _private_copy(context.model)
    found = hessians(private, layers, calibration_inputs(context.data, context.max_examples))
    scores = {}
    for name in layers:
        module = get_layer(context.model, name)
        H = found[name]
        dead = torch.diag(H) == 0
        H[dead, dead] = 1.0
        diagonal = torch.diag(_inverse_cholesky(H, DAMPENING))
        weight = module.weight.detach().float().reshape(module.weight.shape[0], -1).to(diagonal.device)
        scores[name] = (weight.square() / diagonal.reshape(1, -1).square()).reshape(module.weight.shape).cpu()
    context.report(1.0, "sparsegpt: done")
    return scores


def sparsegpt_channel_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    """An output channel's SparseGPT saliency: the sum of its weights'."""
    scores = sparsegpt_weight_scores(context)
    return {name: values.reshape(values.shape[0], -1).sum(dim=1) for name, values in scores.items()}
