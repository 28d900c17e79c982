"""Apply a pruning plan: turn a model and a plan into a new, pruned model and a report.

Each granularity is one `Pruner` in `PRUNERS`: `decide` works out what to
remove (ratios per layer, masks, channels or attention heads) without changing anything,
`apply` does it. `preview_plan` runs only `decide`, which is what the app's live preview shows;
`apply_plan` runs both on a deep copy, so the model passed in is never changed.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize, remove_spectral_norm, remove_weight_norm
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from .blocks import Block, block_scores, calibration_inputs, find_blocks, require_blocks, skip_block
from .calibration import has_batchnorm, recalibrate_batchnorm, recalibrate_in_place
from .data import EvalData, model_fingerprint
from .errors import InvalidPlanError, UnsupportedModelError
from .heads import (
    FUSED_FORM,
    HEAD_LEVEL_CRITERIA,
    AttentionLayer,
    attention_layer,
    attention_layers,
    group_scores_from_channels,
    head_scores,
    remove_heads,
    require_attention_layers,
)
from .importance import (
    LayerScoreImportance,
    ProgressFn,
    ScoringContext,
    get_criterion,
    importance,
    layerwise_weight_scores,
)
from .layers import LayerInfo, get_layer, prunable_layers
from .lazy import LazyTensors, element_count, map_layers, merged, select, shapes_of
from .loading.hf_model import is_transformers_model
from .masks import (
    STREAM_ABOVE,
    apply_mask,
    bounded_counts,
    count_mask,
    global_masks,
    layer_mask,
    nm_mask,
    removed_share,
    row_mask,
    streamed_global_masks,
)
from .oneshot import NM
from .placement import placement
from .plan import PruningPlan
from .report import PREVIEW_COLUMNS, forward_figures, layer_figures, report_table, typed_status, typed_table
from .status import PLAN_ERRORS, Blocked, BlockedBy
from .structured import ChannelGraph, ChannelGroup, check_pruned_model, run_model


@dataclass
class Decision:
    """What a granularity will remove, layer by layer, before anything is changed.

    `ratios`: the fraction each layer will lose (its weights for masks, its output
    channels or heads otherwise); `scores`: the scores it was ranked by (per weight, or per
    channel/unit/head; for a large model and a layerwise criterion, `LazyTensors` computed from
    the model's weights when read); `blocked`: layers this granularity cannot prune, targeted or
    not, and why; `notes`: how a layer is coupled to others or shares weights (for people);
    `groups`: the layer whose channel group or attention heads a layer belongs to;
    `kept_changed`: layers whose kept weights the pruning changes (SparseGPT).
    """

    ratios: dict[str, float] = field(default_factory=dict)
    scores: dict[str, torch.Tensor] | LazyTensors = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, Blocked] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    kept_changed: list[str] = field(default_factory=list)

    def blocked_by(self) -> dict[str, BlockedBy]:
        """The typed cause of each blocked layer."""
        return {layer: blocked.by for layer, blocked in self.blocked.items()}

    def release(self) -> None:
        """Let go of what was held to carry the decision out (nothing, unless a part holds it)."""


@dataclass
class MaskDecision(Decision):
    """Unstructured and N:M: a keep-mask (1 = keep) per layer's weight, or, for a criterion that
    prunes by itself and updates the weights it keeps (SparseGPT), `reconstruct`, which does so
    in place on the model it is given (`masks` is then empty). With `LazyTensors` scores the masks
    are `LazyTensors` too, computed from the weights as they are when read, so they are read
    before any of their layers is pruned."""

    masks: Mapping[str, torch.Tensor] = field(default_factory=dict)
    reconstruct: Callable[[nn.Module], None] | None = None

    def release(self) -> None:
        """Let go of the masks once they are applied (GPT-2 small's are 118 MiB)."""
        self.masks = {}


@dataclass
class ChannelDecision(Decision):
    """Channel: per group root, the units (channels) to remove, and the graph that removes them."""

    removals: dict[str, torch.Tensor] = field(default_factory=dict)
    graph: ChannelGraph | None = None

    def release(self) -> None:
        """Let go of the channel dependency graph once the decision has been carried out."""
        if self.graph is not None:
            self.graph.release()
            self.graph = None


@dataclass
class HeadDecision(Decision):
    """Head: per attention layer, the heads to remove."""

    removals: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class BlockDecision(Decision):
    """Block: the blocks that become the identity."""

    removals: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Pruner:
    """One granularity: how to decide what goes, and how to remove it.

    `targets` names what a plan's ratios refer to (default: the prunable layers; for
    head pruning, the attention layers) and raises when the model has none; `unit` is
    what a layer loses, in the notes of blocked layers ("cannot lose channels").
    """

    name: str
    decide: Callable[[nn.Module, PruningPlan, torch.Tensor, EvalData | None, ProgressFn | None], Decision]
    apply: Callable[[nn.Module, Decision, torch.Tensor], None]
    unit: str
    targets: Callable[[nn.Module], list[str]] | None = None


RESULT_SCORES_MAX = 5_000_000
"""A result keeps its preview's scores only up to this many values: a 124 M-weight model's weight scores are
another 500 MB that nobody looks at once the plan is applied (previews of such models rank on Apply)."""


@dataclass(frozen=True)
class PlanPreview:
    """What a plan would do, without doing it: a per-layer table (`report.PREVIEW_COLUMNS`)
    and the ranking scores. A layer's status is `pruned` when it is assigned a ratio above 0."""

    table: pd.DataFrame
    scores: dict[str, torch.Tensor]


@dataclass
class PruneResult:
    """A pruned copy of a model, the plan that made it, and a per-layer report.

    `report` has `report.REPORT_COLUMNS` (the same for every way of making a pruned model):
    layer, kind, target/assigned/achieved ratio, params/weights/nonzero/channels before and
    after, `status` (`LayerStatus`), `blocked_by` (`BlockedBy` or None) and a note.
    `skipped`: layers the plan targets that cannot be pruned, and why (a sentence).
    `history`: one row per step when the plan was reached in steps (`iterative_prune`).
    `preview`: what `preview_plan` says of the same plan, from the same decision (None for results
    not made by one application of a plan), so a caller that applies need not decide twice; its
    scores are left out above `RESULT_SCORES_MAX` values.
    `batchnorm_pending`: the plan re-estimates BatchNorm statistics but `apply_plan` was asked to leave
    that for later (`finish_batchnorm`): the model's structure and report are final, its outputs are not.
    """

    model: nn.Module
    plan: PruningPlan
    report: pd.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)
    history: pd.DataFrame | None = None
    preview: PlanPreview | None = None
    batchnorm_pending: bool = False


def apply_plan(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    data: EvalData | None = None,
    progress: ProgressFn | None = None,
    calibration_data: EvalData | None = None,
    *,
    defer_batchnorm: bool = False,
) -> PruneResult:
    """Prune a deep copy of `model` as `plan` says; `model` itself is left untouched.

    `data` feeds data-driven criteria; `calibration_data` (training examples, else
    `data`) re-estimates BatchNorm statistics when the plan asks for it. The returned
    model is a plain `nn.Module` (no pruning hooks, no `weight_orig`/`weight_mask`), so
    it saves and loads with a normal `state_dict`. `defer_batchnorm` leaves the re-estimation
    to `finish_batchnorm` (the result says `batchnorm_pending`): for a caller that shows only the
    pruned structure at first, such as a slider that prunes at every step.
    """
    pruner = _pruner(plan)
    calibration_data = calibration_data if calibration_data is not None else data
    if plan.recalibrate_bn and calibration_data is None:
        raise InvalidPlanError(
            "The plan re-estimates BatchNorm statistics after pruning, which needs data; "
            "give calibration data (training examples) or turn recalibrate_bn off."
        )
    layers = _checked_layers(model, plan, pruner)
    before = {layer.name: (layer.kind, layer_figures(model, layer.name)) for layer in layers}
    working = _working_copy(model)
    example_input = placement(model).inputs(example_input)
    _report(progress, 0.05, "Ranking weights and channels")
    decision = pruner.decide(working, plan, example_input, data, _scaled(progress, 0.05, 0.8))
    scores = _result_scores(decision)
    _report(progress, 0.8, "Removing what the plan selects")
    try:
        pruner.apply(working, decision, example_input)
    finally:
        decision.release()
    batchnorm_pending = plan.recalibrate_bn and has_batchnorm(working)
    if batchnorm_pending and not defer_batchnorm:
        _report(progress, 0.9, "Re-estimating BatchNorm statistics")
        recalibrate_in_place(working, calibration_data)
        batchnorm_pending = False
    working.train(model.training)
    _report(progress, 1.0, "Done")
    after = forward_figures(working, list(before), example_input)
    notes = {name: _note(decision, name, pruner) for name in before}
    report = report_table(
        before, after, plan, decision.ratios, decision.blocked_by(), notes, kept_changed=decision.kept_changed
    )
    preview = _preview(layers, plan, decision, pruner, scores)
    return PruneResult(
        model=working,
        plan=plan,
        report=report,
        skipped=_skipped(decision, plan, pruner),
        preview=preview,
        batchnorm_pending=batchnorm_pending,
    )


def finish_batchnorm(result: PruneResult, calibration_data: EvalData) -> PruneResult:
    """`result` with the BatchNorm re-estimation its plan asks for done on a copy of its model: what
    `apply_plan` without `defer_batchnorm` returns. A result with nothing pending comes back as it is."""
    if not result.batchnorm_pending:
        return result
    return dataclasses.replace(
        result, model=recalibrate_batchnorm(result.model, calibration_data), batchnorm_pending=False
    )


def preview_plan(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    data: EvalData | None = None,
) -> PlanPreview:
    """The ratio each layer would get (under global scope, the one the ranking assigns),
    its status and the scores behind it, computed on a copy without pruning anything."""
    pruner = _pruner(plan)
    layers = _checked_layers(model, plan, pruner)
    example_input = placement(model).inputs(example_input)
    decision = pruner.decide(_working_copy(model), plan, example_input, data, None)
    decision.release()
    return _preview(layers, plan, decision, pruner, dict(decision.scores))


def _result_scores(decision: Decision) -> dict[str, torch.Tensor]:
    """The decision's scores for a result's preview, none above `RESULT_SCORES_MAX` values; read before the
    pruning is applied, as `LazyTensors` are computed from the weights it changes."""
    if element_count(decision.scores) > RESULT_SCORES_MAX:
        return {}
    return dict(decision.scores)


def _preview(
    layers: list[LayerInfo], plan: PruningPlan, decision: Decision, pruner: Pruner, scores: dict[str, torch.Tensor]
) -> PlanPreview:
    """Each layer's assigned ratio, group, typed status and note from one decision, with `scores`."""
    blocked = decision.blocked_by()
    rows = []
    for layer in layers:
        assigned = decision.ratios.get(layer.name, 0.0)
        rows.append(
            {
                "layer": layer.name,
                "kind": layer.kind,
                "target_ratio": plan.target_ratio(layer.name),
                "assigned_ratio": assigned,
                "group": decision.groups.get(layer.name, layer.name),
                **typed_status(layer.name, blocked, assigned > 0),
                "note": _note(decision, layer.name, pruner),
            }
        )
    return PlanPreview(table=typed_table(rows, PREVIEW_COLUMNS), scores=scores)


def _pruner(plan: PruningPlan) -> Pruner:
    plan.validate()
    return PRUNERS[plan.granularity]


def _checked_layers(model: nn.Module, plan: PruningPlan, pruner: Pruner) -> list[LayerInfo]:
    layers = prunable_layers(model)
    if not layers:
        raise UnsupportedModelError("This model has no Linear or Conv layers, so there is nothing to prune.")
    targets = pruner.targets(model) if pruner.targets is not None else [layer.name for layer in layers]
    plan.check_layers(targets)
    return layers


def _working_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode whose weights are the ones its forward pass uses (see `fold_reparametrizations`)."""
    memo: dict[int, object] = {}
    for name, module in model.named_modules():
        legacy = legacy_reparametrizations(module)
        if not legacy and any(key.endswith("_orig") for key, _ in module.named_parameters(recurse=False)):
            raise UnsupportedModelError(
                f"Layer {name!r} still carries torch.nn.utils.prune masks; call prune.remove on it first."
            )
        for hook in legacy:  # the computed weight is not a leaf tensor, which deepcopy refuses: copy it detached
            computed = getattr(module, hook.name, None)
            if isinstance(computed, torch.Tensor):
                memo[id(computed)] = computed.detach().clone()
    try:
        working = copy.deepcopy(model, memo)
    except Exception as error:  # deepcopy runs the model's own __deepcopy__/__reduce__ code
        raise UnsupportedModelError(f"The model cannot be copied for pruning: {error}") from error
    fold_reparametrizations(working)
    return working.eval()


def legacy_reparametrizations(module: nn.Module) -> list[WeightNorm | SpectralNorm]:
    """The legacy `torch.nn.utils.weight_norm`/`spectral_norm` hooks of `module`, which rebuild its weight
    from other tensors before every forward pass."""
    return [hook for hook in module._forward_pre_hooks.values() if isinstance(hook, (WeightNorm, SpectralNorm))]


def _own_class(module: nn.Module) -> None:
    """Give a parametrised module a class of its own: removing a parametrisation deletes the weight property from
    the module's class, which a deep copy shares with the original (so the original would lose its weight)."""
    shared = type(module)
    own = {key: value for key, value in vars(shared).items() if key not in ("__dict__", "__weakref__")}
    module.__class__ = type(shared.__name__, shared.__bases__, own)


def fold_reparametrizations(model: nn.Module) -> list[str]:
    """Replace every reparametrised weight of `model` (in place; call it on a copy) by the tensor its forward pass
    uses, so that pruning changes what the model computes: `torch.nn.utils.parametrizations` (weight_norm,
    spectral_norm, …) and the legacy weight_norm/spectral_norm hooks. Returns the layers folded."""
    folded = []
    for name, module in model.named_modules():
        legacy = legacy_reparametrizations(module)
        for hook in legacy:
            remover = remove_weight_norm if isinstance(hook, WeightNorm) else remove_spectral_norm
            remover(module, hook.name)
        if parametrize.is_parametrized(module):
            _own_class(module)
            for tensor_name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
            legacy = legacy or [True]
        if legacy:
            folded.append(name)
    return folded


def _report(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def _scaled(progress: ProgressFn | None, start: float, stop: float) -> ProgressFn | None:
    """`progress` for a step that runs from `start` to `stop` of the whole, reporting its own 0…1."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (stop - start) * fraction, message)


def _target_layers(model: nn.Module, plan: PruningPlan) -> list[str]:
    return [layer.name for layer in prunable_layers(model) if plan.target_ratio(layer.name) > 0]


def _note(decision: Decision, layer: str, pruner: Pruner) -> str:
    """The sentence shown beside a layer: why it is blocked, else how it is coupled."""
    blocked = decision.blocked.get(layer)
    if blocked is None:
        return decision.notes.get(layer, "")
    return f"cannot lose {pruner.unit}: {blocked.reason}"


def _skipped(decision: Decision, plan: PruningPlan, pruner: Pruner) -> dict[str, str]:
    """Layers the plan targets that cannot be pruned, and why."""
    return {
        layer: blocked.reason for layer, blocked in decision.blocked.items() if _targeted(decision, layer, plan, pruner)
    }


def _targeted(decision: Decision, layer: str, plan: PruningPlan, pruner: Pruner) -> bool:
    """Whether the plan asks `layer` to lose something (for head pruning: its attention layer)."""
    if pruner.targets is None:
        return plan.target_ratio(layer) > 0
    owner = decision.groups.get(layer)
    return owner is not None and plan.target_ratio(owner) > 0


def _unique_weights(model: nn.Module, names: list[str], decision: Decision) -> tuple[list[str], dict[str, str]]:
    """Layers whose weight is not the same tensor as an earlier layer's (tied weights), and
    each tied layer mapped to the earlier layer that is pruned for both."""
    seen: dict[int, str] = {}
    unique, tied = [], {}
    for name in names:
        key = id(get_layer(model, name).weight)
        if key in seen:
            decision.notes[name] = f"shares its weight with {seen[key]!r}, which is pruned once for both"
            tied[name] = seen[key]
            continue
        seen[key] = name
        unique.append(name)
    return unique, tied


def _bounds(plan: PruningPlan, size: int, cap: int) -> tuple[int, int]:
    low = round((plan.min_ratio or 0.0) * size)
    high = cap if plan.max_ratio is None else min(cap, round(plan.max_ratio * size))
    return low, high


def _decide_unstructured(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    data: EvalData | None,
    progress: ProgressFn | None,
) -> Decision:
    decision = MaskDecision()
    targets, tied = _unique_weights(model, _target_layers(model, plan), decision)
    if not targets:
        return decision
    criterion = get_criterion(plan.criterion)
    if criterion.reconstruct is not None:
        return _decide_reconstructed(model, plan, data, progress, decision, targets, tied, None)
    scores = _weight_scores(model, plan, data, progress, targets)
    ranked = select(scores, [name for name in targets if plan.is_global_ranked(name)])
    by_row = criterion.compare_within == "row"
    local_mask = row_mask if by_row else layer_mask
    own_ratios = select(scores, [name for name in targets if name not in ranked])
    ranked_masks = _ranked_masks(plan, ranked)
    own_masks = LazyTensors(
        shapes_of(own_ratios), lambda name: local_mask(own_ratios[name], plan.target_ratio(name))
    )  # computed only when applied: a preview needs their ratios, which follow from the counts
    decision.masks = merged(ranked_masks, own_masks)
    decision.scores = scores
    decision.ratios = {name: 1.0 - int(mask.count_nonzero()) / mask.numel() for name, mask in ranked_masks.items()}
    decision.ratios.update(
        {name: removed_share(shape, plan.target_ratio(name), by_row) for name, shape in own_masks.shapes.items()}
    )
    decision.ratios.update({name: decision.ratios[owner] for name, owner in tied.items()})
    return decision


def _ranked_masks(plan: PruningPlan, ranked: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """Keep-masks of the layers ranked together under global scope, within the plan's bounds if it has any."""
    if not ranked:
        return {}
    if plan.min_ratio is None and plan.max_ratio is None:
        rank = streamed_global_masks if element_count(ranked) > STREAM_ABOVE else global_masks
        return rank(ranked, plan.global_ratio or 0.0)
    sizes = {name: shape.numel() for name, shape in shapes_of(ranked).items()}
    bounds = {name: _bounds(plan, size, size) for name, size in sizes.items()}
    total = round((plan.global_ratio or 0.0) * sum(sizes.values()))
    counts = bounded_counts(ranked, total, {n: b[0] for n, b in bounds.items()}, {n: b[1] for n, b in bounds.items()})
    return map_layers(ranked, lambda name, layer_scores: count_mask(layer_scores, counts[name]))


def _weight_scores(
    model: nn.Module, plan: PruningPlan, data: EvalData | None, progress: ProgressFn | None, targets: list[str]
) -> Mapping[str, torch.Tensor]:
    """Each target's per-weight scores. Above `STREAM_ABOVE` weights, a layerwise criterion's (l1, l2,
    random) are computed a layer at a time whenever they are read instead of held all at once: with the
    working copy, GPT-2 small's 475 MiB of scores took its pruning over 3 × its weights + 1 GiB."""
    layerwise = get_criterion(plan.criterion).layerwise
    if layerwise and sum(get_layer(model, name).weight.numel() for name in targets) > STREAM_ABOVE:
        return layerwise_weight_scores(model, plan.criterion, targets, seed=plan.seed)
    return importance(model, plan.criterion, data, level="weight", layers=targets, progress=progress, seed=plan.seed)


def _decide_nm(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    data: EvalData | None,
    progress: ProgressFn | None,
) -> Decision:
    decision = MaskDecision()
    for layer in prunable_layers(model):
        weight = get_layer(model, layer.name).weight
        if weight.dim() < 2 or weight.shape[1] % plan.m:
            size = weight.shape[1] if weight.dim() > 1 else 1
            decision.blocked[layer.name] = Blocked(
                BlockedBy.NM_SHAPE, f"its input size {size} is not a multiple of m={plan.m}"
            )
    wanted = [name for name in _target_layers(model, plan) if name not in decision.blocked]
    targets, tied = _unique_weights(model, wanted, decision)
    if not targets:
        return decision
    if get_criterion(plan.criterion).reconstruct is not None:
        return _decide_reconstructed(model, plan, data, progress, decision, targets, tied, NM(plan.n, plan.m))
    scores = importance(model, plan.criterion, data, level="weight", layers=targets, progress=progress, seed=plan.seed)
    decision.masks = {name: nm_mask(scores[name], plan.n, plan.m) for name in targets}
    decision.scores = scores
    decision.ratios = {name: 1.0 - plan.n / plan.m for name in [*targets, *tied]}
    return decision


def _decide_reconstructed(
    model: nn.Module,
    plan: PruningPlan,
    data: EvalData | None,
    progress: ProgressFn | None,
    decision: MaskDecision,
    targets: list[str],
    tied: dict[str, str],
    nm: NM | None,
) -> Decision:
    """A criterion that prunes by itself (SparseGPT): each layer gets its own ratio (a global
    ratio applies to every layer alike: the method prunes layer by layer); the scores are its
    initial saliency, for display; the pruning itself waits for `apply`."""
    criterion = get_criterion(plan.criterion)
    assert criterion.reconstruct is not None
    reconstruct = criterion.reconstruct
    if data is None:
        raise InvalidPlanError(f"The {criterion.name} criterion needs calibration data; give apply_plan data=….")
    ratios = {name: (1.0 - nm.n / nm.m) if nm is not None else plan.target_ratio(name) for name in targets}
    decision.scores = importance(
        model, plan.criterion, data, level="weight", layers=targets, progress=progress, seed=plan.seed
    )
    decision.ratios = {**ratios, **{name: ratios[owner] for name, owner in tied.items()}}
    for name in targets:
        decision.notes[name] = f"{criterion.label}: the weights it keeps are updated to make up for those removed"
    decision.kept_changed = [*targets, *tied]
    decision.reconstruct = lambda working: reconstruct(working, ratios, data, nm)
    return decision


def _apply_masks(model: nn.Module, decision: MaskDecision, example_input: torch.Tensor) -> None:
    if decision.reconstruct is not None:
        decision.reconstruct(model)
        return
    with torch.no_grad():
        for name, mask in decision.masks.items():
            apply_mask(get_layer(model, name).weight, mask)


def _decide_channel(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    data: EvalData | None,
    progress: ProgressFn | None,
) -> Decision:
    fused = _projections_left_out(model)
    left_out = [*plan.ignored_layers, *fused]
    graph = ChannelGraph(model, example_input, left_out)
    groups = _channel_groups(model, graph, plan, left_out, data, progress)
    decision = ChannelDecision(graph=graph)
    local: dict[str, float] = {}
    ranked: list[ChannelGroup] = []
    for group in groups:
        _describe_group(decision, group)
        if not group.prunable:
            _refuse_explicit(plan, group)
            continue
        decision.scores.update({layer: group.importance for layer in group.layers})
        explicit = [plan.ratios[layer] for layer in group.layers if layer in plan.ratios]
        if explicit:
            local[group.root] = min(explicit)
        elif all(plan.is_global_ranked(layer) for layer in group.layers):
            ranked.append(group)
        else:
            local[group.root] = max(plan.target_ratio(layer) for layer in group.layers)
    _refuse_ungrouped(model, plan, decision)
    for name in fused:
        decision.blocked[name] = Blocked(
            BlockedBy.ATTENTION_PROJECTION,
            "it projects attention heads, and removing single channels would cut across heads; remove whole heads "
            "instead (granularity 'head')",
        )
    counts = {
        group.root: _channel_count(group.units, local[group.root], plan) for group in groups if group.root in local
    }
    counts.update(_global_channel_counts(ranked, plan))
    for group in groups:
        count = counts.get(group.root, 0)
        if group.prunable and count > 0:
            decision.removals[group.root] = torch.argsort(group.importance)[:count].sort().values
        for layer in group.layers:
            decision.ratios[layer] = count / group.units
    return decision


SCORED_GROUPS_KEPT = 8
"""Models whose scored channel groups are kept (`_channel_groups`)."""
_scored_groups: OrderedDict[tuple, list[ChannelGroup]] = OrderedDict()
_scored_groups_lock = threading.Lock()


def _channel_groups(
    model: nn.Module,
    graph: ChannelGraph,
    plan: PruningPlan,
    left_out: list[str],
    data: EvalData | None,
    progress: ProgressFn | None,
) -> list[ChannelGroup]:
    """The model's channel groups, scored by the plan's criterion and marked where they cannot be pruned.

    Neither depends on the ratios. For a criterion that reads only the weights they are kept by the
    weights' fingerprint, criterion, seed and the layers left out, so a slider step on the same model
    only decides how many channels each group loses (enumerating and scoring the groups was a third of
    a digits_resnet step)."""
    key = None
    if not get_criterion(plan.criterion).needs_data:
        key = (model_fingerprint(model), plan.criterion, plan.seed, tuple(sorted(left_out)))
        with _scored_groups_lock:
            cached = _scored_groups.get(key)
            if cached is not None:
                _scored_groups.move_to_end(key)
        if cached is not None:
            graph.adopt(cached)
            return cached
    groups = _refuse_head_projections(model, graph.groups(_group_importance(model, plan, data, progress)))
    if key is not None:
        with _scored_groups_lock:
            _scored_groups[key] = groups
            while len(_scored_groups) > SCORED_GROUPS_KEPT:
                _scored_groups.popitem(last=False)
    return groups


def _projections_left_out(model: nn.Module) -> set[str]:
    """Query/key/value projections kept out of the channel graph: fused ones (GPT-2's c_attn, which the
    graph cannot split) and, in a transformers model, all of them (their head reshapes and grouped-query
    repeats sent Torch-Pruning's dependency search into an endless loop on a pruned Llama)."""
    transformers_model = is_transformers_model(model)
    return {
        name
        for layer in attention_layers(model)
        if transformers_model or layer.form == FUSED_FORM
        for name in (layer.query, layer.key, layer.value)
    }


def _describe_group(decision: Decision, group: ChannelGroup) -> None:
    """Record each member's group, its coupled partners, and why the group is blocked, if it is."""
    for layer in group.layers:
        decision.groups[layer] = group.root
        if len(group.layers) > 1:
            others = ", ".join(other for other in group.layers if other != layer)
            decision.notes[layer] = f"coupled with {others}: they lose the same channels"
        if group.blocked is not None:
            decision.blocked[layer] = group.blocked


def _refuse_head_projections(model: nn.Module, groups: list[ChannelGroup]) -> list[ChannelGroup]:
    """Mark groups holding an attention layer's query/key/value projections as not prunable by channel:
    single channels would cut across heads (the heads' size no longer divides the width). In a model
    loaded from a transformers folder, groups holding an attention output projection carry the hidden
    size (the residual stream), which its config sets for every layer at once: only FFN channels go."""
    layers = attention_layers(model)
    owners = {projection: layer.name for layer in layers for projection in (layer.query, layer.key, layer.value)}
    hidden = {layer.output for layer in layers} if is_transformers_model(model) else set()
    marked = []
    for group in groups:
        owner = next((owners[layer] for layer in group.layers if layer in owners), None)
        if group.prunable and hidden.intersection(group.layers):
            reason = (
                "its channels are the transformers model's hidden size (the residual stream), which the config "
                "sets for every layer at once; prune feed-forward channels or heads instead"
            )
            group = dataclasses.replace(group, blocked=Blocked(BlockedBy.HIDDEN_SIZE, reason))
        elif owner is not None and group.prunable:
            reason = (
                f"it projects the heads of attention layer {owner!r}, and removing single channels would cut "
                "across heads; remove whole heads instead (granularity 'head')"
            )
            group = dataclasses.replace(group, blocked=Blocked(BlockedBy.ATTENTION_PROJECTION, reason))
        marked.append(group)
    return marked


def _group_importance(model: nn.Module, plan: PruningPlan, data: EvalData | None, progress: ProgressFn | None):
    criterion = get_criterion(plan.criterion)
    layer_names = [layer.name for layer in prunable_layers(model)]
    context = ScoringContext(model=model, layers=layer_names, data=data, seed=plan.seed, progress=progress)
    if criterion.group_importance is not None:
        return criterion.group_importance(context)
    scores = importance(model, plan.criterion, data, level="channel", progress=progress, seed=plan.seed)
    return LayerScoreImportance({get_layer(model, name): layer_scores for name, layer_scores in scores.items()})


def _refuse_explicit(plan: PruningPlan, group: ChannelGroup) -> None:
    """An explicit ratio on a blocked group is an error: a plan mistake (InvalidPlanError) when
    no model could lose those channels, otherwise a limit of PruneScope (UnsupportedModelError)."""
    assert group.blocked is not None
    for layer in group.layers:
        if plan.ratios.get(layer, 0.0) > 0:
            message = f"Layer {layer!r} cannot lose channels: {group.blocked.reason}."
            if group.blocked.by in PLAN_ERRORS:
                raise InvalidPlanError(message + " Set its ratio to 0.")
            raise UnsupportedModelError(message)


def _refuse_ungrouped(model: nn.Module, plan: PruningPlan, decision: Decision) -> None:
    """Block the layers no channel group reaches (e.g. inside a fused attention module); an
    explicit ratio on one is an error. Layers the plan ignores are left as they are."""
    blocked = Blocked(
        BlockedBy.NOT_REACHED,
        "no prunable channel group reaches it (it is coupled with an ignored layer, "
        "or sits inside a fused module such as nn.MultiheadAttention)",
    )
    for layer in prunable_layers(model):
        name = layer.name
        if name in decision.groups or name in plan.ignored_layers:
            continue
        if plan.ratios.get(name, 0.0) > 0:
            raise UnsupportedModelError(f"Layer {name!r} cannot lose channels: {blocked.reason}.")
        decision.blocked[name] = blocked


def _rounded_removal(units: int, remove: int, plan: PruningPlan) -> int:
    """Channels removed once the kept count is rounded to a multiple of `round_to`; at least one stays."""
    remove = min(max(remove, 0), units - 1)
    if plan.round_to and remove > 0:
        kept = units - remove
        kept = max(plan.round_to, round(kept / plan.round_to) * plan.round_to)
        remove = max(units - kept, 0)
    return remove


def _channel_count(units: int, ratio: float, plan: PruningPlan) -> int:
    return _rounded_removal(units, round(ratio * units), plan)


def _global_channel_counts(groups: list[ChannelGroup], plan: PruningPlan) -> dict[str, int]:
    """Rank the groups' channels together (scores are normalised per group) within the bounds."""
    if not groups:
        return {}
    scores = {group.root: group.importance for group in groups}
    bounds = {group.root: _bounds(plan, group.units, group.units - 1) for group in groups}
    total = round((plan.global_ratio or 0.0) * sum(group.units for group in groups))
    counts = bounded_counts(scores, total, {r: b[0] for r, b in bounds.items()}, {r: b[1] for r, b in bounds.items()})
    return {group.root: _rounded_removal(group.units, counts[group.root], plan) for group in groups}


def _apply_channels(model: nn.Module, decision: ChannelDecision, example_input: torch.Tensor) -> None:
    if decision.graph is None or not decision.removals:
        return
    with torch.no_grad():
        output = run_model(model, example_input)
    expected_shape = (output[0] if isinstance(output, (tuple, list)) else output).shape
    decision.graph.prune(decision.removals)
    check_pruned_model(model, example_input, expected_shape)


def _decide_heads(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    data: EvalData | None,
    progress: ProgressFn | None,
) -> Decision:
    """Score each head and choose the lowest per layer or, under global scope, across layers."""
    attention = require_attention_layers(model)
    decision = HeadDecision()
    _describe_heads(model, attention, decision)
    targets = [layer for layer in attention if plan.target_ratio(layer.name) > 0 and layer.groups > 1]
    if not targets:
        return decision
    scores = _head_scores(model, plan, data, progress, targets)
    counts = _head_counts(plan, targets, scores)
    for layer in targets:
        count = counts[layer.name]
        decision.scores[layer.name] = scores[layer.name]
        if count > 0:
            groups = torch.argsort(scores[layer.name])[:count].sort().values
            decision.removals[layer.name] = torch.tensor(layer.heads_of(groups), dtype=torch.long)
        for projection in layer.projections:
            decision.ratios[projection] = count / layer.groups
    return decision


def _describe_heads(model: nn.Module, attention: list[AttentionLayer], decision: Decision) -> None:
    """Group each projection under its attention layer; block layers no head removal can touch."""
    for layer in attention:
        for projection in layer.projections:
            decision.groups[projection] = layer.name
            decision.notes[projection] = f"loses whole heads of {layer.name!r} ({layer.heads} heads)"
            if layer.groups < 2:
                decision.blocked[projection] = Blocked(BlockedBy.SINGLE_CHANNEL, _single_group(layer))
    not_attention = Blocked(BlockedBy.NOT_ATTENTION, "it is not a projection of an attention layer")
    for layer in prunable_layers(model):
        if layer.name not in decision.groups:
            decision.blocked[layer.name] = not_attention


def _head_scores(
    model: nn.Module,
    plan: PruningPlan,
    data: EvalData | None,
    progress: ProgressFn | None,
    targets: list[AttentionLayer],
) -> dict[str, torch.Tensor]:
    """One score per head (per group under GQA) of each target layer: from a head-level criterion (ablation)
    as it is, else the sum of a head's weight scores over its q/k/v rows and output-projection columns."""
    if plan.criterion in HEAD_LEVEL_CRITERIA:
        queries = importance(
            model, plan.criterion, data, layers=[layer.query for layer in targets], progress=progress, seed=plan.seed
        )
        return {layer.name: group_scores_from_channels(layer, queries[layer.query]) for layer in targets}
    projections = [name for layer in targets for name in layer.projections]
    weight_scores = importance(
        model, plan.criterion, data, level="weight", layers=projections, progress=progress, seed=plan.seed
    )
    return {layer.name: head_scores(layer, weight_scores) for layer in targets}


def _head_counts(plan: PruningPlan, targets: list[AttentionLayer], scores: dict[str, torch.Tensor]) -> dict[str, int]:
    """Heads (groups under GQA) removed per layer: its own ratio, or its share of a global ranking. Magnitude-like
    scores are divided by their layer's mean first, as channel scores are; head-level
    criteria (ablation) mean the same in every layer and are compared as they are."""
    ranked = [layer for layer in targets if plan.is_global_ranked(layer.name)]
    counts = {
        layer.name: _rounded_removal(layer.groups, round(plan.target_ratio(layer.name) * layer.groups), plan)
        for layer in targets
        if layer not in ranked
    }
    if ranked:
        head_level = plan.criterion in HEAD_LEVEL_CRITERIA
        normalised = {
            name: scores[name] if head_level else scores[name] / scores[name].mean().clamp(min=1e-12)
            for name in (layer.name for layer in ranked)
        }
        bounds = {layer.name: _bounds(plan, layer.groups, layer.groups - 1) for layer in ranked}
        total = round((plan.global_ratio or 0.0) * sum(layer.groups for layer in ranked))
        low, high = {n: b[0] for n, b in bounds.items()}, {n: b[1] for n, b in bounds.items()}
        counts.update(bounded_counts(normalised, total, low, high))
    return counts


def _single_group(layer: AttentionLayer) -> str:
    if layer.group_size == 1:
        return f"{layer.name!r} has a single head, and a layer's last head stays"
    return (
        f"all {layer.heads} query heads of {layer.name!r} share one key/value head; heads leave only as whole "
        "groups with their key/value head, and a layer's last group stays"
    )


def _apply_heads(model: nn.Module, decision: HeadDecision, example_input: torch.Tensor) -> None:
    if not decision.removals:
        return
    with torch.no_grad():
        output = run_model(model, example_input)
    expected_shape = (output[0] if isinstance(output, (tuple, list)) else output).shape
    for name, heads in decision.removals.items():
        remove_heads(model, attention_layer(model, name), heads)
    check_pruned_model(model, example_input, expected_shape)


def _attention_names(model: nn.Module) -> list[str]:
    return [layer.name for layer in require_attention_layers(model)]


def _decide_blocks(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    data: EvalData | None,
    progress: ProgressFn | None,
) -> Decision:
    """Rank the skippable blocks and choose the lowest `global_ratio` share of them, plus any block
    the plan names with a ratio above 0; at least one block stays."""
    decision = BlockDecision()
    found = find_blocks(model, example_input)
    owners = {layer: block.name for block in found for layer in block.layers}
    not_skippable = Blocked(BlockedBy.SHAPE_CHANGE, "its block changes the shape of what flows through it")
    for layer in prunable_layers(model):
        if layer.name not in owners:
            decision.blocked[layer.name] = Blocked(BlockedBy.NOT_IN_BLOCK, "it is in no residual block or layer stack")
    for block in found:
        for layer in block.layers:
            decision.groups[layer] = block.name
            if not block.skippable:
                decision.blocked[layer] = not_skippable
        if not block.skippable and plan.ratios.get(block.name, 0.0) > 0:
            raise InvalidPlanError(f"Block {block.name!r} changes the shape of its input, so it cannot be skipped.")
    candidates = [block for block in found if block.skippable and block.name not in plan.ignored_layers]
    if not candidates:
        return decision
    inputs = None if data is None else calibration_inputs(data.inputs)
    _report(progress, 0.0, f"Ranking {len(candidates)} blocks by {plan.criterion}")
    scores = block_scores(model, candidates, plan.criterion, inputs, plan.seed)
    forced = [block for block in candidates if plan.ratios.get(block.name, 0.0) > 0]
    count = min(max(round((plan.global_ratio or 0.0) * len(candidates)), len(forced)), len(candidates) - 1)
    ranked = sorted((block for block in candidates if block not in forced), key=lambda block: scores[block.name])
    decision.removals = (forced + ranked)[: max(count, len(forced))]
    removed = {block.name for block in decision.removals}
    for block in candidates:
        for layer in block.layers:
            size = get_layer(model, layer).weight.shape[0]
            decision.scores[layer] = torch.full((size,), scores[block.name])
            decision.ratios[layer] = 1.0 if block.name in removed else 0.0
            decision.notes[layer] = f"in block {block.name!r} (score {scores[block.name]:.3g})" + (
                ", which becomes the identity" if block.name in removed else ""
            )
    return decision


def _apply_blocks(model: nn.Module, decision: BlockDecision, example_input: torch.Tensor) -> None:
    if not decision.removals:
        return
    with torch.no_grad():
        output = model(example_input)
    expected_shape = (output[0] if isinstance(output, (tuple, list)) else output).shape
    for block in decision.removals:
        skip_block(model, block)
    check_pruned_model(model, example_input, expected_shape)


PRUNERS: dict[str, Pruner] = {
    "unstructured": Pruner("unstructured", _decide_unstructured, _apply_masks, unit="weights"),
    "n:m": Pruner("n:m", _decide_nm, _apply_masks, unit="weights to N:M sparsity"),
    "channel": Pruner("channel", _decide_channel, _apply_channels, unit="channels"),
    "head": Pruner("head", _decide_heads, _apply_heads, unit="heads", targets=_attention_names),
    "block": Pruner("block", _decide_blocks, _apply_blocks, unit="its block", targets=require_blocks),
}
"""Granularity name (see `plan.GRANULARITIES`) → the pruner that carries it out."""
