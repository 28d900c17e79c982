"""Attention-head pruning: remove whole heads from a transformer's attention layers.

A head is one slice of `head_dim` outputs of the query, key and value projections and
the matching `head_dim` inputs of the output projection. Removing it shrinks all four
matrices, so the model really does less work: fewer rows in q/k/v, fewer columns in the
output projection, and one attention map fewer to compute.

Supported modules (the protocol)
--------------------------------
An attention layer is found by its shape, not its class, in one of two forms:

1. **HF BERT-style** (`transformers` BertAttention and relatives): a module with a child
   `self` that has `nn.Linear` children `query`, `key`, `value` and integer attributes
   `num_attention_heads` and `attention_head_size` (and `all_head_size`), and a child
   `output` with an `nn.Linear` child `dense`. The layer is named by the outer module's
   path (e.g. `bert.encoder.layer.0.attention`).
2. **Plain**: a module with an integer attribute `num_heads` and `nn.Linear` children
   `q_proj`, `k_proj`, `v_proj` (each `num_heads × head_dim` outputs, head `h` in
   outputs `h·head_dim … (h+1)·head_dim − 1`) and `out_proj` (that many inputs). Its
   `forward` must split heads with `self.num_heads` (or `-1`) and a head size that does
   not change (`self.head_dim`, if it keeps one, is left as it is): after pruning,
   `num_heads` is lowered and the projections shrink, while `out_proj`'s outputs (the
   model width) stay the same. `nn.MultiheadAttention` (fused `in_proj_weight`) is not
   of this form.

In both forms query, key and value must have the same number of heads (no grouped or
multi-query attention). Transformers 5 no longer ships a `prune_heads` method, so the
projections are sliced here; in BERT's attention the head count is the only attribute
its `forward` reads besides the head size, and it is updated with the slices.

A ratio is the fraction of a layer's heads removed; at least one head always stays.
Head scores come from any criterion's weight-level scores (l1, l2, random, taylor, …):
a head's score is the sum of its scores over its q/k/v rows and output-projection columns.
The `ablation` criterion (scored here, listed with the others in `importance.CRITERIA`)
scores heads directly: how much the model's outputs change when that one head is switched
off, measured on data. Its scores mean the same in every layer, so a global ranking
compares them as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .data import EvalData
from .errors import CriterionError, UnsupportedModelError
from .placement import placement

if TYPE_CHECKING:
    from .importance import ScoringContext

BERT_FORM = "bert"
PLAIN_FORM = "plain"


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer whose heads can be removed.

    `name`: the module path plans use as the layer's key; `query`/`key`/`value`/`output`:
    module paths of its four projections; `heads` and `head_dim` as the module has them
    now; `width`: inputs of q/k/v; `out_width`: outputs of the output projection;
    `qkv_biases`: how many of q/k/v have a bias.
    """

    name: str
    form: str
    heads: int
    head_dim: int
    query: str
    key: str
    value: str
    output: str
    width: int
    out_width: int
    qkv_biases: int

    @property
    def projections(self) -> tuple[str, str, str, str]:
        return (self.query, self.key, self.value, self.output)

    @property
    def head_params(self) -> int:
        """Parameters one head holds: its q/k/v rows (weights and biases) and its output-projection columns."""
        return self.head_dim * (3 * self.width + self.out_width + self.qkv_biases)


def attention_layers(model: nn.Module) -> list[AttentionLayer]:
    """Every attention layer of `model` in one of the supported forms, in module order."""
    layers = []
    for name, module in model.named_modules():
        found = _bert_form(name, module) or _plain_form(name, module)
        if found is not None:
            layers.append(found)
    return layers


def attention_layer(model: nn.Module, name: str) -> AttentionLayer:
    """The attention layer at module path `name`, or UnsupportedModelError saying why not."""
    for layer in attention_layers(model):
        if layer.name == name:
            return layer
    raise UnsupportedModelError(
        f"{name!r} is not an attention layer whose heads PruneScope can remove "
        "(a BERT-style attention, or a module with num_heads and q_proj/k_proj/v_proj/out_proj)."
    )


def require_attention_layers(model: nn.Module) -> list[AttentionLayer]:
    """`attention_layers(model)`, or UnsupportedModelError when it has none."""
    layers = attention_layers(model)
    if not layers:
        raise UnsupportedModelError(
            "Head pruning needs attention layers, and this model has none PruneScope recognises "
            "(a BERT-style attention, or a module with num_heads and q_proj/k_proj/v_proj/out_proj). "
            "Choose single weights, channels or N:M instead."
        )
    return layers


def head_scores(layer: AttentionLayer, weight_scores: dict[str, torch.Tensor]) -> torch.Tensor:
    """One score per head: the sum of its weight scores in q/k/v (rows) and the output projection (columns)."""
    total = torch.zeros(layer.heads, device=weight_scores[layer.query].device)
    for name in (layer.query, layer.key, layer.value):
        total += weight_scores[name].float().reshape(layer.heads, -1).sum(dim=1)
    output = weight_scores[layer.output].float()
    total += output.reshape(output.shape[0], layer.heads, layer.head_dim).sum(dim=(0, 2))
    return total


def remove_heads(model: nn.Module, layer: AttentionLayer, heads: torch.Tensor | list[int]) -> None:
    """Remove `heads` (indices) from `layer` of `model`, in place; at least one head must stay."""
    removed = sorted({int(head) for head in heads})
    if not removed:
        return
    if removed[0] < 0 or removed[-1] >= layer.heads:
        raise UnsupportedModelError(f"Layer {layer.name!r} has heads 0…{layer.heads - 1}; cannot remove {removed}.")
    kept = [head for head in range(layer.heads) if head not in removed]
    if not kept:
        raise UnsupportedModelError(f"Removing every head of {layer.name!r} would cut the layer off; keep one.")
    index = torch.cat([torch.arange(head * layer.head_dim, (head + 1) * layer.head_dim) for head in kept])
    for name in (layer.query, layer.key, layer.value):
        _replace(model, name, _sliced(model.get_submodule(name), index, dim=0))
    _replace(model, layer.output, _sliced(model.get_submodule(layer.output), index, dim=1))
    module = model.get_submodule(layer.name)
    if layer.form == BERT_FORM:
        module.self.num_attention_heads = len(kept)
        module.self.all_head_size = len(kept) * layer.head_dim
    else:
        module.num_heads = len(kept)


def _sliced(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping rows (`dim=0`, outputs) or columns (`dim=1`, inputs) `index` of `linear`."""
    weight = linear.weight.detach().index_select(dim, index.to(linear.weight.device))
    has_bias = linear.bias is not None
    result = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        result.weight.copy_(weight)
        if has_bias:
            bias = linear.bias.detach()
            result.bias.copy_(bias.index_select(0, index.to(bias.device)) if dim == 0 else bias)
    result.train(linear.training)
    return result


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, module)


def _bert_form(name: str, module: nn.Module) -> AttentionLayer | None:
    inner, output = getattr(module, "self", None), getattr(module, "output", None)
    if not isinstance(inner, nn.Module) or not isinstance(output, nn.Module):
        return None
    projections = [getattr(inner, part, None) for part in ("query", "key", "value")]
    dense = getattr(output, "dense", None)
    heads, head_dim = getattr(inner, "num_attention_heads", None), getattr(inner, "attention_head_size", None)
    if not all(isinstance(p, nn.Linear) for p in [*projections, dense]) or not _whole(heads, head_dim):
        return None
    prefix = f"{name}." if name else ""
    return _checked(
        name,
        BERT_FORM,
        heads,
        head_dim,
        [f"{prefix}self.query", f"{prefix}self.key", f"{prefix}self.value", f"{prefix}output.dense"],
        [*projections, dense],
    )


def _plain_form(name: str, module: nn.Module) -> AttentionLayer | None:
    parts = [getattr(module, part, None) for part in ("q_proj", "k_proj", "v_proj", "out_proj")]
    heads = getattr(module, "num_heads", None)
    if not all(isinstance(p, nn.Linear) for p in parts) or not _whole(heads, 1):
        return None
    if parts[0].out_features % heads:
        return None
    prefix = f"{name}." if name else ""
    paths = [f"{prefix}{part}" for part in ("q_proj", "k_proj", "v_proj", "out_proj")]
    return _checked(name, PLAIN_FORM, heads, parts[0].out_features // heads, paths, parts)


def _whole(*values: object) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def _checked(
    name: str, form: str, heads: int, head_dim: int, paths: list[str], linears: list[nn.Linear]
) -> AttentionLayer | None:
    """The layer, if its projections have the sizes `heads × head_dim` asks (else it is not recognised)."""
    inner = heads * head_dim
    query, key, value, output = linears
    if any(linear.out_features != inner for linear in (query, key, value)) or output.in_features != inner:
        return None
    biases = sum(linear.bias is not None for linear in (query, key, value))
    return AttentionLayer(
        name=name,
        form=form,
        heads=heads,
        head_dim=head_dim,
        query=paths[0],
        key=paths[1],
        value=paths[2],
        output=paths[3],
        width=query.in_features,
        out_width=output.out_features,
        qkv_biases=biases,
    )


ABLATION_EXAMPLES = 128
"""Examples the ablation criterion runs the model on, once per head (fewer if `max_examples` is lower).
On minilm, removing 25 % of the heads by global ablation ranking kept retrieval agreement at 0.91
with 128 examples, 0.90 with 64."""

HEAD_LEVEL_CRITERIA = ("ablation",)
"""Criteria whose channel scores of a query projection are already one score per head,
comparable between layers (a global ranking does not rescale them per layer)."""


def ablation_scores(
    model: nn.Module, layers: list[AttentionLayer], data: EvalData, max_examples: int = ABLATION_EXAMPLES
) -> dict[str, torch.Tensor]:
    """Per attention layer, one score per head: 1 − the mean cosine similarity between the model's
    outputs with that head switched off (its slice of the output projection's input zeroed) and
    the unchanged outputs, on up to `max_examples` examples spread over `data`."""
    inputs = placement(model).inputs(_spread(data.inputs, min(max_examples, ABLATION_EXAMPLES)))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            reference = _flat_output(model(inputs))
            scores = {}
            for layer in layers:
                values = torch.zeros(layer.heads, device=reference.device)
                for head in range(layer.heads):
                    with _head_switched_off(model, layer, head):
                        output = _flat_output(model(inputs))
                    values[head] = 1.0 - F.cosine_similarity(output, reference, dim=1).mean()
                scores[layer.name] = values
    finally:
        model.train(was_training)
    return scores


@contextmanager
def _head_switched_off(model: nn.Module, layer: AttentionLayer, head: int) -> Iterator[None]:
    start, stop = head * layer.head_dim, (head + 1) * layer.head_dim

    def zero_head(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        inputs = args[0].clone()
        inputs[..., start:stop] = 0
        return (inputs, *args[1:])

    handle = model.get_submodule(layer.output).register_forward_pre_hook(zero_head)
    try:
        yield
    finally:
        handle.remove()


def _spread(inputs: torch.Tensor, count: int) -> torch.Tensor:
    if len(inputs) <= count:
        return inputs
    return inputs[torch.linspace(0, len(inputs) - 1, count).round().long()]


def _flat_output(output: object) -> torch.Tensor:
    output = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(output, torch.Tensor):
        raise CriterionError(f"The model returned {type(output).__name__}, not a tensor, so heads cannot be scored.")
    return output.float().reshape(len(output), -1)


def ablation_channel_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    """Each query/key/value output channel gets the ablation score of the head it belongs to."""
    assert context.data is not None
    owners = {}
    for layer in attention_layers(context.model):
        for projection in (layer.query, layer.key, layer.value):
            owners[projection] = layer
    names = context.scorable(
        [name for name in context.layers if name not in owners],
        "The ablation criterion scores attention heads, so it scores only query/key/value projections; "
        "{layers} are not — choose another criterion for them, or prune heads.",
    )
    layers = list({owners[name].name: owners[name] for name in names}.values())
    context.report(0.0, f"ablation: switching off each head of {len(layers)} attention layer(s)")
    scores = ablation_scores(context.model, layers, context.data, context.max_examples)
    context.report(1.0, "ablation: done")
    return {name: scores[owners[name].name].repeat_interleave(owners[name].head_dim) for name in names}
