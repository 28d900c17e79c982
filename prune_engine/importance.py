"""Importance criteria: how much each weight or channel matters.

A criterion computes scores; a granularity (see `pruning.py`) turns scores into what is
removed, and the two never mix. Each criterion is one `Criterion` in the table
`BUILT_IN_CRITERIA` at the end of this module, the one place criteria are registered (the
registry `CRITERIA` is built from it). A criterion gives per-output-channel scores for
every prunable layer, optionally per-weight scores (otherwise a channel's score is
broadcast to its weights), and optionally a Torch-Pruning group importance (otherwise
coupled layers' channel scores are combined by `LayerScoreImportance`). Magnitude
criteria are scored here, data-driven ones in `attribution.py`, head ablation in
`heads.py`. Scores of data-driven criteria are cached.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch_pruning as tp
from torch import nn

from . import attribution, blocks, heads, oneshot
from .attribution import DEFAULT_MAX_EXAMPLES
from .data import EvalData, model_fingerprint
from .errors import CriterionError
from .layers import get_layer, prunable_layers
from .lazy import LazyTensors
from .tracing import trace_followers

ProgressFn = Callable[[float, str], None]
"""Called with (fraction done in [0, 1], a short message)."""

LEVELS = ("channel", "weight")

KINDS = ("magnitude", "data", "attribution", "baseline")
"""magnitude: reads the weights (or BatchNorm scales), no data; data: runs the model on data
(activations, gradients); attribution: Captum-style attributions of the model's output;
baseline: the random floor."""

CACHE_SIZE = 32
"""Results of data-driven criteria kept in memory (least recently used dropped first)."""


@dataclass(frozen=True)
class ScoringContext:
    """What a criterion may look at: the model, the layers to score, data and a seed.

    `skip_unscorable` is True when the caller asked for every layer: a criterion then
    leaves out the layers it cannot score (see `scorable`) instead of refusing.
    """

    model: nn.Module
    layers: Sequence[str]
    data: EvalData | None = None
    seed: int = 0
    progress: ProgressFn | None = None
    max_examples: int = DEFAULT_MAX_EXAMPLES
    skip_unscorable: bool = False

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0), message)

    def scorable(self, unscorable: Collection[str], refusal: str) -> list[str]:
        """`layers` without those in `unscorable`; a CriterionError with `refusal` (its
        `{layers}` filled in) if the caller named one of them, or if none would remain."""
        missing = [name for name in self.layers if name in unscorable]
        kept = [name for name in self.layers if name not in unscorable]
        if missing and (not self.skip_unscorable or not kept):
            raise CriterionError(refusal.format(layers=", ".join(repr(name) for name in missing)))
        return kept


ScoreFn = Callable[[ScoringContext], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Criterion:
    """One importance criterion: a name, a plain-words explanation and its scoring functions.

    `explanation` is written to be read out in a demo: what it measures, why that
    suggests what to prune, what it costs, and when it misleads. `compare_within="row"`:
    unstructured pruning in layer scope removes the same share from every output row
    (Wanda). `reconstruct`: the criterion prunes by itself and changes the weights it keeps
    (SparseGPT): `reconstruct(model, ratios, data, nm, max_examples, progress)` prunes the
    layers of `model` named in `ratios` in place; scores are then only for display.
    """

    name: str
    label: str
    explanation: str
    channel_scores: ScoreFn
    weight_scores: ScoreFn | None = None
    group_importance: Callable[[ScoringContext], tp.importance.Importance] | None = None
    needs_data: bool = False
    kind: str = "magnitude"
    compare_within: str = "layer"
    reconstruct: Callable[..., None] | None = None
    per_class: bool = False
    """Averages over the examples of each class and keeps the largest (`PER_CLASS_AVERAGES` says so in words)."""
    layerwise: bool = False
    """Scores each layer from that layer's own weights alone, cheaply and the same every time, so a
    large model's scores can be computed a layer at a time whenever they are read (`layerwise_weight_scores`)."""


def register_criterion(criterion: Criterion) -> Criterion:
    """Add `criterion` to the registry (replacing one of the same name); for a script's own criteria."""
    if criterion.kind not in KINDS:
        raise CriterionError(f"Unknown criterion kind {criterion.kind!r}; use one of {', '.join(KINDS)}.")
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
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> dict[str, torch.Tensor]:
    """Scores per prunable layer: one per output channel (`level="channel"`) or one per
    weight, shaped like the weight (`level="weight"`). Higher means more important.

    With `layers=None` every layer is scored that the criterion can score (bn_scale leaves
    out layers with no BatchNorm after them); naming a layer it cannot score is an error.
    Data-driven criteria look at up to `max_examples` examples and their results are
    cached per (model, criterion, level, data, seed, layers, max_examples); the tensors
    returned are the caller's own. Criteria without weight-level scores give each weight
    its channel's score.
    """
    if level not in LEVELS:
        raise CriterionError(f"Unknown level {level!r}; use 'channel' or 'weight'.")
    chosen = get_criterion(criterion)
    if chosen.needs_data and data is None:
        raise CriterionError(
            f"The {chosen.name} criterion needs data: it runs the model on examples to see what matters. "
            "Load evaluation data first, or choose l1, l2 or bn_scale, which need none."
        )
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise CriterionError(f"max_examples must be a whole number of at least 1, got {max_examples!r}.")
    if level == "weight" and chosen.weight_scores is None:
        channel = importance(model, criterion, data, "channel", layers, progress, seed, max_examples)
        return broadcast_to_weights(model, channel)
    names = list(layers) if layers is not None else [layer.name for layer in prunable_layers(model)]
    for name in names:
        get_layer(model, name)
    if not names:
        return {}
    context = ScoringContext(
        model=model,
        layers=names,
        data=data,
        seed=seed,
        progress=progress,
        max_examples=max_examples,
        skip_unscorable=layers is None,
    )
    score = chosen.channel_scores if level == "channel" else chosen.weight_scores
    assert score is not None
    if not chosen.needs_data:
        return score(context)
    assert data is not None
    key = (
        model_fingerprint(model),
        chosen.name,
        level,
        data.fingerprint(),
        seed,
        None if layers is None else tuple(names),
        max_examples,
    )
    cached = _CACHE.get(key)
    if cached is not None:
        context.report(1.0, f"{chosen.name}: from cache")
        return cached
    scores = score(context)
    _CACHE.put(key, scores)
    return scores


def layerwise_weight_scores(model: nn.Module, criterion: str, layers: Sequence[str], seed: int = 0) -> LazyTensors:
    """Per-weight scores of a `layerwise` criterion (l1, l2, random) as `LazyTensors`: the values
    `importance(model, criterion, level="weight", layers=layers, seed=seed)` gives, computed a layer at a time
    from the model's weights as they are when read."""
    shapes = {name: get_layer(model, name).weight.shape for name in layers}

    def layer_scores(name: str) -> torch.Tensor:
        return importance(model, criterion, level="weight", layers=[name], seed=seed)[name]

    return LazyTensors(shapes, layer_scores)


class ImportanceCacheInfo(NamedTuple):
    """Hits and misses of the importance cache since it was last cleared, and its size."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class _ScoreCache:
    """A thread-safe LRU of score dicts that stores and hands out copies."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> dict[str, torch.Tensor] | None:
        with self.lock:
            scores = self.entries.get(key)
            if scores is None:
                self.misses += 1
                return None
            self.hits += 1
            self.entries.move_to_end(key)
        return _copied(scores)

    def put(self, key: tuple, scores: dict[str, torch.Tensor]) -> None:
        with self.lock:
            self.entries[key] = _copied(scores)
            self.entries.move_to_end(key)
            while len(self.entries) > self.maxsize:
                self.entries.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.hits = self.misses = 0


def _copied(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in scores.items()}


_CACHE = _ScoreCache(CACHE_SIZE)


def importance_cache_info() -> ImportanceCacheInfo:
    """How often `importance` was served from its cache, and how full the cache is."""
    with _CACHE.lock:
        return ImportanceCacheInfo(_CACHE.hits, _CACHE.misses, _CACHE.maxsize, len(_CACHE.entries))


def clear_importance_cache() -> None:
    """Forget every cached score (and reset the hit/miss counts)."""
    _CACHE.clear()


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
        name: torch.rand(weight.shape[0], generator=_layer_generator(context.seed, name)).to(weight.device)
        for name, weight in _weights(context).items()
    }


def _random_weight_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    return {
        name: torch.rand(weight.shape, generator=_layer_generator(context.seed, name)).to(weight.device)
        for name, weight in _weights(context).items()
    }


def _bn_scale_channel_scores(context: ScoringContext) -> dict[str, torch.Tensor]:
    try:
        followers = trace_followers(context.model)
    except CriterionError as error:
        raise CriterionError(
            f"bn_scale needs to trace the model to find the BatchNorm after each layer, and could not: {error} "
            "Choose l1/l2 or another criterion."
        ) from error
    batch_norms = {name: found.batch_norm for name, found in followers.items() if found.batch_norm is not None}
    names = context.scorable(
        [name for name in context.layers if name not in batch_norms],
        "bn_scale needs a BatchNorm after each layer; {layers} have none — choose l1/l2 or another criterion, "
        "or leave those layers out of the plan.",
    )
    return {
        name: context.model.get_submodule(batch_norms[name]).weight.detach().abs().float().clone() for name in names
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
        device = next((layer_scores.device for layer_scores in self.scores.values()), None)
        total = torch.zeros(root_channels, device=device)
        members = 0
        for item in group:
            dep = item.dep
            layer_scores = self.scores.get(dep.layer)
            if layer_scores is None or not _prunes_out_channels(dep):
                continue
            if any(index is None for index in item.root_idxs):
                continue
            member = layer_scores[list(item.idxs)].float().to(total.device)
            member = member / (member.mean() + 1e-12)
            total.scatter_add_(0, torch.tensor(item.root_idxs, dtype=torch.long, device=total.device), member)
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


PER_CLASS_AVERAGES = (
    "Averages are taken over the examples of each class (true label, else predicted class) and the largest is "
    "kept, so a channel that one class relies on survives even if the others leave it idle."
)
"""Said once, where the criteria are explained, for every criterion with `per_class` set."""

BUILT_IN_CRITERIA = (
    Criterion(
        name="l1",
        label="Magnitude (L1)",
        explanation=(
            "Weights close to zero contribute little to any output, so the smallest are removed first. For a "
            "weight this is its absolute value; for a channel, the sum of the absolute values of all weights "
            "that produce it (and, when layers are coupled, of the weights that read it). Cheap, needs no "
            "data, and a strong baseline."
        ),
        channel_scores=_magnitude_channel_scores(1.0),
        weight_scores=_l1_weight_scores,
        layerwise=True,
        group_importance=_magnitude_group_importance(1),
    ),
    Criterion(
        name="l2",
        label="Magnitude (L2)",
        explanation=(
            "Like L1, but squares the weights before adding them up, so a channel with a few large weights "
            "counts as more important than one with many medium ones. For single weights it ranks exactly like "
            "L1."
        ),
        channel_scores=_magnitude_channel_scores(2.0),
        weight_scores=_l2_weight_scores,
        layerwise=True,
        group_importance=_magnitude_group_importance(2),
    ),
    Criterion(
        name="random",
        label="Random (baseline)",
        explanation=(
            "Scores drawn at random (reproducibly, from the plan's seed). Not a method to use, but the floor "
            "every real criterion must beat: if it does not, the criterion tells you nothing."
        ),
        channel_scores=_random_channel_scores,
        weight_scores=_random_weight_scores,
        layerwise=True,
        kind="baseline",
    ),
    Criterion(
        name="bn_scale",
        label="BatchNorm scale (network slimming)",
        explanation=(
            "Reads the scale γ of the BatchNorm that directly follows a layer. The BatchNorm multiplies each "
            "channel by its γ, so a channel whose γ is near zero is nearly switched off, whatever its weights; "
            "network slimming trains with a penalty that pushes many γ to zero and then removes those "
            "channels. Free to compute and needs no data. It applies only where a BatchNorm directly follows "
            "the layer (found by tracing the model): layers without one, such as the final Linear, are left "
            "out of the scores and refused if a plan prunes them. Without slimming training the γ say less, "
            "and a BatchNorm's shift β can keep a low-γ channel active. Single weights get their channel's γ."
        ),
        channel_scores=_bn_scale_channel_scores,
    ),
    Criterion(
        name="taylor",
        label="Taylor (weight × gradient)",
        explanation=(
            "Estimates how much the loss would change if a weight were set to zero: the weight times the "
            "gradient of the loss with respect to it (a first-order Taylor expansion), in absolute value, "
            "example by example, averaged over the evaluation examples. A large weight that never affects the "
            "loss scores low, and so does a tiny one with a large gradient. A channel's score adds up those of "
            "its weights and bias. The loss is the cross-entropy with the true labels (with the model's own "
            "predictions where there are no labels; for outputs that are not class scores, the size of the "
            "output). Costs one forward and one backward pass per example, for up to 256 examples. It is a "
            "local estimate: it misjudges weights that matter only together with others (adding up single "
            "weights overrates a channel whose weights cancel out), and grows less reliable the more is "
            "removed at once."
        ),
        channel_scores=attribution.taylor_channel_scores,
        weight_scores=attribution.taylor_weight_scores,
        needs_data=True,
        kind="data",
    ),
    Criterion(
        name="activation",
        label="Activation size",
        explanation=(
            "The average size of each channel's output, measured where the next layer reads it (after the "
            "layer's BatchNorm and activation, e.g. ReLU, where those follow). A channel that is almost always "
            "near zero passes little on, so removing it changes little. "
            "Costs one forward pass over up to 256 "
            "examples. It ignores what later layers do with the signal: a small but decisive channel scores "
            "low, and a large constant one (which the next layer could absorb in its bias) scores high. Sizes "
            "differ from layer to layer, so compare channels within a layer (layer scope). Single weights get "
            "their channel's score."
        ),
        channel_scores=attribution.activation_scores,
        needs_data=True,
        kind="data",
        per_class=True,
    ),
    Criterion(
        name="apoz",
        label="APoZ (share of active outputs)",
        explanation=(
            "One minus the Average Percentage of Zeros: the share of a channel's outputs after its ReLU that "
            "are not zero, so higher means more important. A channel that the ReLU silences for almost every "
            "input is dead weight. "
            "Costs one forward pass over up to 256 examples. It is only meaningful "
            "after a ReLU-like activation: elsewhere (a residual branch before its addition, the output layer) "
            "it counts the outputs a ReLU would let through, a rough signal. It ignores how large the active "
            "values are, so many channels tie. Single weights get their channel's score."
        ),
        channel_scores=attribution.apoz_scores,
        needs_data=True,
        kind="data",
        per_class=True,
    ),
    Criterion(
        name="grad_x_activation",
        label="Gradient × activation (Captum)",
        explanation=(
            "Each channel's output times the gradient of the class score with respect to that output, in "
            "absolute value and averaged over positions: a first-order estimate of how much the score would "
            "change if the channel were switched off (Captum's LayerGradientXActivation). The class score is "
            "the true class's logit (the predicted class's where there are no labels) less the average of all "
            "logits, since a channel that raises every class alike changes no prediction. "
            "Costs one forward and "
            "one backward pass over up to 256 examples, for all layers together. Being local, it is fooled by "
            "saturation: where a gradient is zero (say, behind a ReLU that is off) a channel that matters gets "
            "no credit. Single weights get their channel's score."
        ),
        channel_scores=attribution.grad_x_activation_scores,
        needs_data=True,
        kind="attribution",
        per_class=True,
    ),
    Criterion(
        name="conductance",
        label="Conductance (Captum)",
        explanation=(
            "How much of the class score (as for gradient × activation) flows through each channel as the "
            "input is faded in from an all-zero input (for standardised data, a featureless image) to the real "
            "one: integrated gradients measured at the layer (Captum's LayerConductance), in absolute value "
            "and averaged over positions. "
            "Unlike gradient × activation it is not fooled by saturation, because "
            "the path passes through inputs where the channel was still active. The slowest criterion: 17 "
            "forward and backward passes per batch (16 steps along the path), shared by all layers. It depends "
            "on the baseline: a channel that is just as active on the blank input gets little credit. Single "
            "weights get their channel's score."
        ),
        channel_scores=attribution.conductance_scores,
        needs_data=True,
        kind="attribution",
        per_class=True,
    ),
    Criterion(
        name="deeplift",
        label="DeepLift (Captum)",
        explanation=(
            "Compares each channel's output on the real example with its output on an all-zero input, and "
            "shares the change in the class score (as for gradient × activation) out among the channels, with "
            "rules that carry the difference through ReLUs and pooling in a single backward pass (Captum's "
            "LayerDeepLift). "
            "Like conductance it credits channels for their effect relative to a reference and "
            "is not fooled by saturation, but it costs one forward and backward pass per layer instead of 17 "
            "per batch. Its rules are exact only for networks built from activation modules (a model that "
            "calls F.relu gets a gradient approximation there), and it shares conductance's dependence on the "
            "baseline. Single weights get their channel's score."
        ),
        channel_scores=attribution.deeplift_scores,
        needs_data=True,
        kind="attribution",
        per_class=True,
    ),
    Criterion(
        name="ablation",
        label="Head ablation (data)",
        explanation=(
            "Switches off one attention head at a time and measures how much the model's outputs change on "
            "the evaluation data (1 − cosine similarity with the unchanged outputs). Heads whose absence "
            "changes almost nothing go first. It measures exactly what removing a head alone does, which "
            "makes it the most faithful head criterion, but it runs the model once per head on 128 examples "
            "(about a minute for MiniLM's 72 heads on one CPU core; later changes to the plan reuse the scores) "
            "and ignores that removing two heads together may matter more than each "
            "alone. It scores attention heads only: use it with head pruning."
        ),
        channel_scores=heads.ablation_channel_scores,
        needs_data=True,
        kind="data",
    ),
    Criterion(
        name="wanda",
        label="Wanda (weight × input size)",
        explanation=(
            "Multiplies each weight's size by the size of the input it reads (the norm of that input over "
            "a few calibration examples, every token or position), and removes the lowest-scoring weights "
            "of each output row, so every output keeps the same share of its inputs. In a transformer a "
            "few inputs are far larger than the rest, and a small weight that reads one of them matters "
            "more than a large weight reading a quiet one: magnitude pruning cannot see that, Wanda can. "
            "Costs one forward pass over up to 128 examples and changes no weight (Sun et al., 2023). For "
            "a convolution the input is the size of the channel it reads. Works for single weights and "
            "N:M (2:4, 4:8); it needs calibration data."
        ),
        channel_scores=oneshot.wanda_channel_scores,
        weight_scores=oneshot.wanda_weight_scores,
        needs_data=True,
        kind="data",
        compare_within="row",
    ),
    Criterion(
        name="sparsegpt",
        label="SparseGPT (prune and update)",
        explanation=(
            "Prunes one layer at a time and then changes the weights it keeps, so that the layer's outputs "
            "on a few calibration examples stay as close as they can to what they were: the removed "
            "weights' work is taken over by the others. It uses how the layer's inputs vary together (their "
            "Hessian, slightly dampened) to decide both which weights to drop and how to correct the rest, "
            "128 columns at a time, layer after layer in the order the model runs them, each layer seeing "
            "the inputs the already-pruned layers before it give (Frantar & Alistarh, 2023). It is the only "
            "method here that changes the kept weights, so a before/after weight histogram moves. Costs a "
            "partial forward pass per layer and an inverse of an inputs × inputs matrix per layer (about "
            "ten seconds for MiniLM on two quiet cores). Single weights and N:M; Linear and Conv2d layers; "
            "needs calibration data."
        ),
        channel_scores=oneshot.sparsegpt_channel_scores,
        weight_scores=oneshot.sparsegpt_weight_scores,
        needs_data=True,
        kind="data",
        reconstruct=oneshot.sparsegpt_prune,
    ),
    Criterion(
        name="block_influence",
        label="Block influence (depth)",
        explanation=(
            "For depth pruning: how much a whole residual block or transformer layer turns what flows "
            "through it, measured as 1 − the cosine similarity between the block's input and its output "
            "on calibration examples (per token for a transformer). A block whose output points almost "
            "the same way as its input adds little, so it is the first to become a plain pass-through "
            "(Men et al., 2024, ShortGPT). One forward pass over up to 128 examples. It looks at each block "
            "alone, in the unpruned model: removing two neighbours may cost more than each suggests, which "
            "ablation (switch each block off and compare the outputs) checks more directly. Every layer "
            "inside a block gets its block's score."
        ),
        channel_scores=blocks.block_influence_channel_scores,
        needs_data=True,
        kind="data",
    ),
)
"""Every criterion PruneScope ships, in the order the app lists them; `CRITERIA` starts with these."""

CRITERIA: dict[str, Criterion] = {criterion.name: criterion for criterion in BUILT_IN_CRITERIA}
"""The registry: criterion name → criterion; `BUILT_IN_CRITERIA` and whatever a script adds
with `register_criterion`."""
