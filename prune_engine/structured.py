"""Physical channel removal through Torch-Pruning's dependency graph.

Removing an output channel of one layer forces changes elsewhere: the next layer's
inputs, a BatchNorm's statistics, every layer added to it by a residual connection,
the slice of a concatenation. Torch-Pruning traces the model once and groups all of
these *coupled* channels; a group is kept or removed as one. This module enumerates the
groups, scores them, decides per group how many channels go, and prunes them — and it
refuses, by name, the groups it cannot prune correctly.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from .errors import UnsupportedModelError
from .layers import layer_kind
from .placement import placement
from .status import Blocked, BlockedBy

logger = logging.getLogger(__name__)

ROOT_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.LSTM)
_RECURRENT = (nn.RNNBase,)


@dataclass
class ChannelGroup:
    """Coupled channels that are removed together.

    `layers` are the prunable layers whose output channels the group removes (more than
    one when a residual addition or similar couples them); `units` the number of
    decisions (channels, or channels per group for grouped convolutions); `blocked` says
    why the group must not be pruned, if so.
    """

    root: str
    layers: tuple[str, ...]
    units: int
    channel_groups: int
    importance: torch.Tensor | None = None
    blocked: Blocked | None = None

    @property
    def prunable(self) -> bool:
        return self.blocked is None


class ChannelGraph:
    """The dependency graph of one model, its channel groups, and their pruning."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor, ignored_layers: Iterable[str] = ()) -> None:
        if getattr(model, "_c", None) is not None or isinstance(model, torch.jit.ScriptModule):
            raise UnsupportedModelError(
                "Channel pruning needs the model's Python code to trace it; a TorchScript model can be "
                "pruned unstructured or N:M instead."
            )
        self.model = model
        self.names = {module: name for name, module in model.named_modules()}
        self.ignored = [model.get_submodule(name) for name in ignored_layers]
        example_input = placement(model).inputs(example_input)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)
        except Exception as error:  # tracing runs arbitrary model code; any failure means "cannot trace"
            raise UnsupportedModelError(
                f"Torch-Pruning could not trace this model to find coupled channels: {error}"
            ) from error
        self._shared = _shared_parameter_owners(model)
        self._channel_groups_of = self._detect_channel_groups()
        self._channel_groups_by_root: dict[str, int] = {}

    def groups(self, importance: tp.importance.Importance | None = None) -> list[ChannelGroup]:
        """All channel groups with a prunable root, scored by `importance` when given."""
        result = []
        for group in self.graph.get_all_groups(ignored_layers=self.ignored, root_module_types=ROOT_TYPES):
            root_module = group[0].dep.target.module
            members = self._member_layers(group)
            channel_groups = self._group_channel_groups(group)
            self._channel_groups_by_root[self.names[root_module]] = channel_groups
            units = self.graph.get_out_channels(root_module) // channel_groups
            info = ChannelGroup(
                root=self.names[root_module],
                layers=members,
                units=units,
                channel_groups=channel_groups,
                blocked=self._blocked(group, units),
            )
            if importance is not None and info.prunable:
                scores = importance(group)
                if scores is None:
                    info.blocked = Blocked(BlockedBy.NO_SCORE, "the criterion gives no score for these channels")
                else:
                    scores = scores.detach().float().cpu()
                    info.importance = scores.view(channel_groups, -1).mean(dim=0) if channel_groups > 1 else scores
            result.append(info)
        return result

    def adopt(self, groups: list[ChannelGroup]) -> None:
        """Take `groups` (from `groups()` on a graph of a model with the same structure) as this graph's,
        instead of enumerating them again: `prune` needs how each repeats across channel groups."""
        self._channel_groups_by_root = {group.root: group.channel_groups for group in groups}

    def prune(self, removals: dict[str, torch.Tensor]) -> None:
        """Remove the given units (indices into each group's `units`) from each group, by root name.

        Call `groups()` (or `adopt`) first: it records how each group repeats across channel groups.
        """
        for root_name, units in removals.items():
            if len(units) == 0:
                continue
            root = self.model.get_submodule(root_name)
            pruner = self.graph.get_pruner_of_module(root)
            channel_groups = self._channel_groups_by_root[root_name]
            group_size = self.graph.get_out_channels(root) // channel_groups
            indices = torch.cat([units + offset * group_size for offset in range(channel_groups)])
            group = self.graph.get_pruning_group(root, pruner.prune_out_channels, sorted(indices.tolist()))
            if not self.graph.check_pruning_group(group):
                raise UnsupportedModelError(
                    f"Removing {len(units)} channel(s) from {root_name!r} would empty a coupled layer."
                )
            group.prune()

    def release(self) -> None:
        """Break the dependency graph's reference cycles (nodes ↔ nodes, autograd traces).

        Left alone they hold the traced autograd graph and a copy's modules until Python's
        occasional full collection; the app turns off Streamlit's per-rerun collection.
        """
        for node in self.graph.module2node.values():
            node.inputs.clear()
            node.outputs.clear()
            node.dependencies.clear()
            node.grad_fn = None
        self.graph.module2node.clear()

    def _member_layers(self, group: tp.dependency.Group) -> tuple[str, ...]:
        members = []
        for item in group:
            module = item.dep.target.module
            if self.graph.is_out_channel_pruning_fn(item.dep.handler) and layer_kind(module) is not None:
                name = self.names.get(module)
                if name and name not in members:
                    members.append(name)
        return tuple(members)

    def _blocked(self, group: tp.dependency.Group, units: int) -> Blocked | None:
        if units < 2:
            return Blocked(
                BlockedBy.SINGLE_CHANNEL, "it has a single channel, and a layer's last channel is never removed"
            )
        for item in group:
            module = item.dep.target.module
            name = self.names.get(module, type(module).__name__)
            out_pruning = self.graph.is_out_channel_pruning_fn(item.dep.handler)
            if isinstance(module, tp.ops._OutputOp):
                return Blocked(BlockedBy.OUTPUT_LAYER, "its channels are the model's output")
            if out_pruning and module in self.graph.module2node and not self.graph.module2node[module].outputs:
                return Blocked(BlockedBy.OUTPUT_LAYER, f"{name!r} produces the model's output")
            if isinstance(module, nn.MultiheadAttention):
                return Blocked(
                    BlockedBy.PACKED_ATTENTION,
                    f"it is coupled to {name!r}, whose packed query/key/value in-projection cannot lose "
                    "model-dimension channels; prune the feed-forward layers instead",
                )
            if isinstance(module, _RECURRENT) and out_pruning:
                return Blocked(
                    BlockedBy.RECURRENT_HIDDEN,
                    f"it would shrink the hidden state of the recurrent layer {name!r}, which is not supported",
                )
            if module in self._shared:
                return Blocked(
                    BlockedBy.TIED_WEIGHTS,
                    f"{name!r} shares its weights with {self._shared[module]!r}; removing channels would untie them",
                )
        return None

    def _detect_channel_groups(self) -> dict[nn.Module, int]:
        """Grouped convolutions and group norms prune in step across their groups."""
        found = {}
        for module in self.model.modules():
            pruner = self.graph.get_pruner_of_module(module)
            if pruner is None:
                continue
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups == module.out_channels:
                continue  # depthwise: channels map one to one, no replication
            groups = max(pruner.get_out_channel_groups(module), pruner.get_in_channel_groups(module))
            if groups > 1:
                found[module] = groups
        return found

    def _group_channel_groups(self, group: tp.dependency.Group) -> int:
        sizes = [self._channel_groups_of[item.dep.target.module] for item in group
                 if item.dep.target.module in self._channel_groups_of]  # fmt: skip
        return max(sizes, default=1)


def _shared_parameter_owners(model: nn.Module) -> dict[nn.Module, str]:
    """Modules holding a parameter that another module also holds, mapped to that other module's name."""
    owners: dict[int, list[tuple[str, nn.Module]]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        for parameter in module.parameters(recurse=False):
            owners.setdefault(id(parameter), []).append((name, module))
    shared: dict[nn.Module, str] = {}
    for holders in owners.values():
        distinct = {id(module): (name, module) for name, module in holders}
        if len(distinct) > 1:
            for _, module in distinct.values():
                shared[module] = next(other for other, m in distinct.values() if m is not module)
    return shared


def run_model(model: nn.Module, example_input: Any) -> Any:
    """The model's output on an example input: a tensor, a tuple/list of positional inputs, or a dict of
    keyword inputs (as Torch-Pruning's tracer calls it)."""
    if isinstance(example_input, Mapping):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def check_pruned_model(model: nn.Module, example_input: Any, expected_shape: torch.Size) -> None:
    """Run the pruned model once: it must work and give outputs of the original shape."""
    for name, module in model.named_modules():
        attention = isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None
        if attention and module.in_proj_weight.shape[1] != module.embed_dim:
            raise UnsupportedModelError(f"Pruning left the attention layer {name!r} inconsistent.")
    try:
        with torch.no_grad():
            output = run_model(model, placement(model).inputs(example_input))
    except Exception as error:  # the pruned model is broken: say so rather than return it
        raise UnsupportedModelError(f"The channel-pruned model no longer runs: {error}") from error
    output = output[0] if isinstance(output, (tuple, list)) else output
    if tuple(output.shape) != tuple(expected_shape):
        raise UnsupportedModelError(
            f"Channel pruning changed the model's output shape from {tuple(expected_shape)} to "
            f"{tuple(output.shape)}; this architecture is not supported for channel pruning."
        )
