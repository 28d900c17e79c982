"""Depth pruning: whole residual blocks or transformer layers become the identity.

A block is a module held in an `nn.ModuleList` or `nn.Sequential` (a ResNet stage's basic
blocks, a transformer's layers) that holds prunable layers and gives an output of the same
shape as its input, so that skipping it (passing the input straight on) leaves a working
model: in a residual block x + f(x) that drops f. Blocks that change the shape (a stride-2
stage entry, a projection) cannot be skipped and are reported as blocked.

Blocks are ranked by one of
- `block_influence` (Men et al. 2024, "ShortGPT"): 1 − the mean cosine similarity between a
  block's input and its output on calibration data (per token for (batch, tokens, width)
  activations, per position for images), measured once on the unpruned model; a block that
  barely turns its input changes little;
- `ablation`: 1 − the mean cosine similarity between the model's outputs with that one
  block skipped and without (one forward pass per block);
- `random`: the baseline, reproducible from the plan's seed.
The plan's global ratio is the share of blocks removed (at least one block stays); a block
named in `ratios` with a ratio above 0 is removed whatever its score.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CriterionError, InvalidPlanError, UnsupportedModelError
from .layers import prunable_layers
from .tokens import real_tokens, token_rows

if TYPE_CHECKING:
    from .importance import ScoringContext

BLOCK_CRITERIA = ("block_influence", "ablation", "random")
"""Criteria that rank whole blocks."""
BLOCK_LEVEL_CRITERIA = ("block_influence",)
"""Criteria that score only layers inside blocks (every layer gets its block's score)."""
CALIBRATION_EXAMPLES = 128
BATCH_SIZE = 32


@dataclass(frozen=True)
class Block:
    """One candidate block: its module path, the prunable layers inside, whether skipping it keeps
    the shapes (`skippable`) and how many values its output has (0: a tensor; k: a tuple of k)."""

    name: str
    layers: tuple[str, ...]
    skippable: bool
    outputs: int = 0


class SkippedBlock(nn.Module):
    """What a removed block becomes: it passes its first input on, shaped as the block's output was."""

    def __init__(self, outputs: int = 0) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, *args: object, **kwargs: object) -> object:
        hidden = args[0] if args else kwargs.get("hidden_states")
        return hidden if self.outputs == 0 else (hidden, *([None] * (self.outputs - 1)))


def candidate_blocks(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Modules held in a ModuleList or Sequential that hold prunable layers (outermost only), each
    with those layers' names."""
    layers = [layer.name for layer in prunable_layers(model)]
    found: dict[str, tuple[str, ...]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)):
            continue
        for child, _ in module.named_children():
            path = f"{name}.{child}" if name else child
            if any(path.startswith(f"{outer}.") for outer in found):
                continue
            inside = tuple(layer for layer in layers if layer.startswith(f"{path}."))
            if inside:
                found[path] = inside
    return found


def find_blocks(model: nn.Module, example_input: torch.Tensor) -> list[Block]:
    """The candidate blocks of `model`, each checked on `example_input` for keeping its input's shape."""
    candidates = candidate_blocks(model)
    seen: dict[str, tuple[bool, int]] = {}
    private = copy.deepcopy(model).eval()

    def hook(name: str):
        def record(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
            hidden = _first_input(args, kwargs)
            first = output[0] if isinstance(output, (tuple, list)) else output
            same = isinstance(hidden, torch.Tensor) and isinstance(first, torch.Tensor) and hidden.shape == first.shape
            seen.setdefault(name, (same, len(output) if isinstance(output, (tuple, list)) else 0))

        return record

    handles = [private.get_submodule(name).register_forward_hook(hook(name), with_kwargs=True) for name in candidates]
    try:
        with torch.no_grad():
            private(example_input.to(_device(private)))
    finally:
        for handle in handles:
            handle.remove()
    return [Block(name, layers, *seen.get(name, (False, 0))) for name, layers in candidates.items()]


def require_blocks(model: nn.Module) -> list[str]:
    """The candidate block names, or UnsupportedModelError when the model has none."""
    names = list(candidate_blocks(model))
    if not names:
        raise UnsupportedModelError(
            "Block pruning needs residual blocks or transformer layers held in an nn.ModuleList or nn.Sequential, "
            "and this model has none. Choose single weights, channels or N:M instead."
        )
    return names


def skip_block(model: nn.Module, block: Block) -> None:
    """Replace `block` of `model` with the identity, in place."""
    parent, _, child = block.name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, SkippedBlock(block.outputs))


def block_influence(model: nn.Module, blocks: list[Block], inputs: torch.Tensor) -> dict[str, float]:
    """1 − the mean cosine similarity of each block's input and output on `inputs` (over real tokens:
    padding is left out), in one pass."""
    totals: dict[str, list[float]] = {block.name: [0.0, 0.0] for block in blocks}
    private = copy.deepcopy(model).eval()
    current: dict[str, torch.Tensor | None] = {"real": None}

    def hook(name: str):
        def record(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
            before = _first_input(args, kwargs)
            after = output[0] if isinstance(output, (tuple, list)) else output
            similarity = _cosines(before, after, current["real"])
            totals[name][0] += float(similarity.sum())
            totals[name][1] += similarity.numel()

        return record

    handles = [
        private.get_submodule(block.name).register_forward_hook(hook(block.name), with_kwargs=True) for block in blocks
    ]
    try:
        for start in range(0, len(inputs), BATCH_SIZE):
            chunk = inputs[start : start + BATCH_SIZE]
            current["real"] = real_tokens(private, chunk)
            _run(private, chunk)
    finally:
        for handle in handles:
            handle.remove()
    return {name: 1.0 - total / max(count, 1.0) for name, (total, count) in totals.items()}


def block_ablation(model: nn.Module, blocks: list[Block], inputs: torch.Tensor) -> dict[str, float]:
    """1 − the mean cosine similarity of the model's outputs with each block skipped and without."""
    private = copy.deepcopy(model).eval()
    reference = _run(private, inputs)
    scores = {}
    for block in blocks:
        skipped = copy.deepcopy(private)
        skip_block(skipped, block)
        output = _run(skipped, inputs)
        scores[block.name] = 1.0 - float(F.cosine_similarity(output, reference, dim=1).mean())
    return scores


def random_block_scores(blocks: list[Block], seed: int) -> dict[str, float]:
    """A reproducible random score per block (the baseline)."""
    return {
        block.name: float(
            torch.rand(1, generator=torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(block.name.encode())))
        )
        for block in blocks
    }


def block_scores(
    model: nn.Module, blocks: list[Block], criterion: str, inputs: torch.Tensor | None, seed: int
) -> dict[str, float]:
    """One score per block (higher = more important) by `criterion` (see `BLOCK_CRITERIA`)."""
    if criterion not in BLOCK_CRITERIA:
        raise InvalidPlanError(
            f"Block pruning ranks whole blocks by {', '.join(BLOCK_CRITERIA)}; {criterion!r} scores weights or "
            "channels. Choose one of those."
        )
    if criterion == "random":
        return random_block_scores(blocks, seed)
    if inputs is None:
        raise CriterionError(f"Ranking blocks by {criterion} needs calibration data; give apply_plan data=….")
    if criterion == "ablation":
        return block_ablation(model, blocks, inputs)
    return block_influence(model, blocks, inputs)


def block_influence_channel_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    """Each prunable layer inside a block gets its block's influence on every output channel."""
    assert context.data is not None
    inputs = _spread(context.data.inputs, min(context.max_examples, CALIBRATION_EXAMPLES))
    blocks = [block for block in find_blocks(context.model, inputs[:1]) if block.skippable]
    owners = {layer: block for block in blocks for layer in block.layers}
    names = context.scorable(
        [name for name in context.layers if name not in owners],
        "Block influence scores whole residual blocks or transformer layers; {layers} are in none — choose "
        "another criterion for them, or prune blocks.",
    )
    context.report(0.0, f"block influence: {len(blocks)} block(s)")
    influence = block_influence(context.model, blocks, inputs)
    context.report(1.0, "block influence: done")
    return {
        name: torch.full((context.model.get_submodule(name).weight.shape[0],), influence[owners[name].name])
        for name in names
    }


def calibration_inputs(inputs: torch.Tensor) -> torch.Tensor:
    """Up to `CALIBRATION_EXAMPLES` inputs spread over `inputs`."""
    return _spread(inputs, CALIBRATION_EXAMPLES)


def _spread(inputs: torch.Tensor, count: int) -> torch.Tensor:
    if len(inputs) <= count:
        return inputs
    return inputs[torch.linspace(0, len(inputs) - 1, count).round().long()]


def _first_input(args: tuple, kwargs: dict) -> object:
    return args[0] if args else kwargs.get("hidden_states")


def _cosines(before: object, after: object, real: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarity per real token (3-D), per position over channels (4-D) or per example."""
    if not isinstance(before, torch.Tensor) or not isinstance(after, torch.Tensor) or before.shape != after.shape:
        return torch.zeros(1)
    before, after = before.detach().float(), after.detach().float()
    if before.dim() == 3:
        return F.cosine_similarity(token_rows(before, real), token_rows(after, real), dim=-1)
    if before.dim() == 4:
        return F.cosine_similarity(before, after, dim=1).reshape(-1)
    return F.cosine_similarity(before.reshape(len(before), -1), after.reshape(len(after), -1), dim=1)


def _device(model: nn.Module) -> torch.device:
    return next((parameter.device for parameter in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def _run(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    device = _device(model)
    outputs = []
    for start in range(0, len(inputs), BATCH_SIZE):
        output = model(inputs[start : start + BATCH_SIZE].to(device))
        output = output[0] if isinstance(output, (tuple, list)) else output
        outputs.append(output.float().reshape(len(output), -1).cpu())
    return torch.cat(outputs)
