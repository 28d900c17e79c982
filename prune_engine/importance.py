"""Importance criteria: how much each weight or channel matters.

A criterion computes scores; a granularity (see `pruning.py`) turns scores into what is
removed, and the two never mix. Each criterion is one `Criterion` registered in
`CRITERIA`, giving per-output-channel scores for every prunable layer, optionally
per-weight scores (otherwise a channel's score is broadcast to its weights), and
optionally a Torch-Pruning group importance (otherwise coupled layers' channel scores
are combined by `LayerScoreImportance`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from .data import EvalData
from .errors import CriterionError
from .layers import get_layer, prunable_layers

ProgressFn = Callable[[float, str], None]
"""Called with (fraction done in [0, 1], a short message)."""

LEVELS = ("channel", "weight")


@dataclass(frozen=True)
class ScoringContext:
    """What a criterion may look at: the model, the layers to score, data and a seed."""

    model: nn.Module
    layers: Sequence[str]
    data: EvalData | None = None
    seed: int = 0
    progress: ProgressFn | None = None

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0), message)


ScoreFn = Callable[[ScoringContext], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Criterion:
    """One importance criterion: a name, a plain-words explanation and its scoring functions."""

    name: str
    label: str
    explanation: str
    channel_scores: ScoreFn
    weight_scores: ScoreFn | None = None
    group_importance: Callable[[ScoringContext], tp.importance.Importance] | None = None
    needs_data: bool = False


CRITERIA: dict[str, Criterion] = {}


def register_criterion(criterion: Criterion) -> Criterion:
    """Add `criterion` to the registry (replacing one of the same name)."""
    CRITERIA[criterion.name] = criterion
    return criterion


def get_criterion(name: str) -> Criterion:
    """The registered criterion called `name`, or a CriterionError listing the choices."""
    try:
        return CRITERIA[name]
    except KeyError:
        raise CriterionError(f"Unknown criterion {name!r}; choose one of {', '.join(sorted(CRITERIA))}.") from None


def importance(
    model: nn.Module,
    criterion: str,
    data: EvalData | None = None,
    level: str = "channel",
    layers: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Scores per prunable layer: one per output channel (`level="channel"`) or one per
    weight, shaped like the weight (`level="weight"`). Higher means more important."""
    if level not in LEVELS:
        raise CriterionError(f"Unknown level {level!r}; use 'channel' or 'weight'.")
    chosen = get_criterion(criterion)
    if chosen.needs_data and data is None:
        raise CriterionError(
            f"The {chosen.label} criterion measures the model on data; load evaluation data first "
            "or choose a magnitude criterion (l1, l2)."
        )
    names = list(layers) if layers is not None else [layer.name for layer in prunable_layers(model)]
    for name in names:
        get_layer(model, name)
    context = ScoringContext(model=model, layers=names, data=data, seed=seed, progress=progress)
    if level == "channel":
        return chosen.channel_scores(context)
    if chosen.weight_scores is not None:
        return chosen.weight_scores(context)
    return broadcast_to_weights(model, chosen.channel_scores(context))


def broadcast_to_weights(model: nn.Module, channel_scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Give every weight the score of its output channel (for channel-level criteria)."""
    result = {}
    for name, scores in channel_scores.items():
        weight = get_layer(model, name).weight
        shape = (weight.shape[0],) + (1,) * (weight.dim() - 1)
        result[name] = scores.reshape(shape).expand_as(weight).clone()
    return result


def _weights(context: ScoringContext) -> dict[str, torch.Tensor]:
    return {name: get_layer(context.model, name).weight.detach() for name in context.layers}


def _magnitude_channel_scores(p: float) -> ScoreFn:
    def scores(context: ScoringContext) -> dict[str, torch.Tensor]:
        return {
            name: torch.linalg.vector_norm(weight.float().reshape(weight.shape[0], -1), ord=p, dim=1)
            for name, weight in _weights(context).items()
        }

    return scores


def _l1_weight_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    return {name: weight.abs() for name, weight in _weights(context).items()}


def _l2_weight_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    return {name: weight.square() for name, weight in _weights(context).items()}


def _layer_generator(seed: int, layer: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(layer.encode()))


def _random_channel_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    return {
        name: torch.rand(weight.shape[0], generator=_layer_generator(context.seed, name))
        for name, weight in _weights(context).items()
    }


def _random_weight_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    return {
        name: torch.rand(weight.shape, generator=_layer_generator(context.seed, name))
        for name, weight in _weights(context).items()
    }


class LayerScoreImportance(tp.importance.Importance):
    """Torch-Pruning importance from precomputed per-layer channel scores.

    A coupled group (e.g. the convolutions feeding one residual addition) gets, per
    channel, the mean of its members' scores, each member first divided by its own mean
    so that layers of different scale weigh alike.
    """

    def __init__(self, scores: dict[nn.Module, torch.Tensor]) -> None:
        self.scores = scores

    @torch.no_grad()
    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        root_channels = len(group[0].idxs)
        total = torch.zeros(root_channels)
        members = 0
        for item in group:
            dep = item.dep
            layer_scores = self.scores.get(dep.layer)
            if layer_scores is None or not _prunes_out_channels(dep):
                continue
            if any(index is None for index in item.root_idxs):
                continue
            member = layer_scores[list(item.idxs)].float()
            member = member / (member.mean() + 1e-12)
            total.scatter_add_(0, torch.tensor(item.root_idxs, dtype=torch.long), member)
            members += 1
        if members == 0:
            return None
        return total / members


def _prunes_out_channels(dep: tp.dependency.Dependency) -> bool:
    return dep.pruning_fn in (tp.prune_conv_out_channels, tp.prune_linear_out_channels)


def _magnitude_group_importance(p: int) -> Callable[[ScoringContext], tp.importance.Importance]:
    def build(context: ScoringContext) -> tp.importance.Importance:
        return tp.importance.GroupMagnitudeImportance(p=p, group_reduction="mean", normalizer="mean")

    return build


register_criterion(
    Criterion(
        name="l1",
        label="Magnitude (L1)",
        explanation=(
            "Weights close to zero contribute little to any output, so the smallest are removed first. "
            "For a weight this is its absolute value; for a channel, the sum of the absolute values of "
            "all weights that produce it (and, when layers are coupled, of the weights that read it). "
            "Cheap, needs no data, and a strong baseline."
        ),
        channel_scores=_magnitude_channel_scores(1.0),
        weight_scores=_l1_weight_scores,
        group_importance=_magnitude_group_importance(1),
    )
)
register_criterion(
    Criterion(
        name="l2",
        label="Magnitude (L2)",
        explanation=(
            "Like L1, but squares the weights before adding them up, so a channel with a few large "
            "weights counts as more important than one with many medium ones. For single weights it "
            "ranks exactly like L1."
        ),
        channel_scores=_magnitude_channel_scores(2.0),
        weight_scores=_l2_weight_scores,
        group_importance=_magnitude_group_importance(2),
    )
)
register_criterion(
    Criterion(
        name="random",
        label="Random (baseline)",
        explanation=(
            "Scores drawn at random (reproducibly, from the plan's seed). Not a method to use, but the "
            "floor every real criterion must beat: if it does not, the criterion tells you nothing."
        ),
        channel_scores=_random_channel_scores,
        weight_scores=_random_weight_scores,
    )
)
