"""The network as a graph: modules in data-flow order, the joins between them, and the channel groups
that prune together.

Torch-Pruning already traces the model to find coupled channels (`structured.ChannelGraph`); its
dependency graph holds one node per parameterised module and one per tensor operation (additions,
concatenations, reshapes, activations). This module keeps the modules, keeps the operations that
join two or more streams (a residual addition, a concatenation, attention reading queries, keys and
values) as join nodes, and folds every other operation into the edges. The same trace gives the
channel groups, so the groups drawn are exactly the ones channel pruning removes together.

`collapsed` draws each repeated block (a module held in an `nn.ModuleList` or `nn.Sequential`, as
`blocks.candidate_blocks` finds them) as one node, so a 12-layer transformer is 17 nodes, not 160.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch_pruning as tp
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from .blocks import candidate_blocks
from .layers import layer_kind
from .placement import placement
from .pruning import _refuse_head_projections
from .status import Blocked
from .structured import ChannelGraph, run_model

JOIN_KINDS = {"Add": "add", "Sub": "add", "Cat": "concat", "Mul": "multiply", "Div": "divide"}
"""Autograd function name prefixes of joins → join kind; a join of another operation is named after it."""
ATTENTION_OPS = ("ScaledDotProduct", "Bmm", "Mm", "Matmul")
"""Operations that read several streams as attention does (queries, keys, values)."""


@dataclass(frozen=True)
class GraphNode:
    """One node: a module (`module` is its path), a join of streams (`module` is None), or a collapsed
    block (`members` are the ids of the nodes it stands for).

    `kind` is the module's class name, the join's kind ("add", "concat", "multiply", "attention", …)
    or the block's class name; `params` counts the parameters the module holds (a block: its
    members'), `flops` its floating-point operations per forward pass on the example input (None
    when the model could not be counted), `shape` its weight's shape (empty without a weight).
    """

    id: str
    kind: str
    module: str | None
    params: int = 0
    flops: int | None = None
    shape: tuple[int, ...] = ()
    prunable: bool = False
    members: tuple[str, ...] = ()

    @property
    def is_join(self) -> bool:
        return self.module is None

    @property
    def is_block(self) -> bool:
        return bool(self.members)


@dataclass(frozen=True)
class CoupledGroup:
    """Layers that lose the same output channels under channel pruning, named by the first (`root`);
    `blocked` says why channel pruning cannot remove them, if so."""

    root: str
    layers: tuple[str, ...]
    blocked: Blocked | None = None


@dataclass(frozen=True)
class RepeatedBlock:
    """A module held in an `nn.ModuleList` or `nn.Sequential` beside others (a ResNet basic block, a
    transformer layer): its path, class name, and the ids of the graph nodes inside."""

    name: str
    kind: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class ModelGraph:
    """Nodes in data-flow order, edges (source id, target id), channel groups, and the repeated blocks
    that `collapsed` can fold."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[str, str], ...]
    groups: tuple[CoupledGroup, ...]
    blocks: tuple[RepeatedBlock, ...] = ()

    def node(self, node_id: str) -> GraphNode:
        return next(node for node in self.nodes if node.id == node_id)

    def group_of(self, layer: str) -> CoupledGroup | None:
        """The channel group `layer` belongs to, or None when no prunable group reaches it."""
        return next((group for group in self.groups if layer in group.layers), None)

    def node_of(self, layer: str) -> str | None:
        """The id of the node that shows `layer`: its own, or the collapsed block holding it."""
        for node in self.nodes:
            if node.id == layer or layer in node.members:
                return node.id
        return None

    def collapsed(self, blocks: Iterable[str] | None = None) -> ModelGraph:
        """This graph with each of `blocks` (default: all repeated blocks) drawn as one node."""
        chosen = {block.name for block in self.blocks} if blocks is None else set(blocks)
        folded = {block.name: block for block in self.blocks if block.name in chosen}
        owner = {member: block.name for block in folded.values() for member in block.members}
        if not owner:
            return self
        placed: dict[str, GraphNode] = {}
        for node in self.nodes:
            block = owner.get(node.id)
            if block is None:
                placed[node.id] = node
            elif block not in placed:
                placed[block] = _block_node(folded[block], [n for n in self.nodes if owner.get(n.id) == block])
        edges = dict.fromkeys(
            (owner.get(source, source), owner.get(target, target))
            for source, target in self.edges
            if owner.get(source, source) != owner.get(target, target)
        )
        remaining = tuple(block for block in self.blocks if block.name not in folded)
        return replace(self, nodes=tuple(placed.values()), edges=tuple(edges), blocks=remaining)


def model_graph(model: nn.Module, example_input: object) -> ModelGraph:
    """The graph of `model` as traced on `example_input` (the model is run once, not changed).

    FLOPs are counted on fake tensors (shapes only, no arithmetic), so a large model runs forward
    once in earnest, for the trace.
    Raises UnsupportedModelError when Torch-Pruning cannot trace it (TorchScript, code that
    breaks autograd tracing).
    """
    channels = ChannelGraph(model, example_input)
    try:
        groups = _refuse_head_projections(model, channels.groups())
        nodes, edges = _trace_nodes(channels)
    finally:
        channels.release()
    flops = _module_flops(model, placement(model).inputs(example_input))
    nodes = [replace(node, flops=None if flops is None else flops.get(node.module, 0)) for node in nodes]
    coupled = tuple(CoupledGroup(group.root, group.layers, group.blocked) for group in groups)
    definition = {name: index for index, (name, _) in enumerate(model.named_modules())}
    nodes.sort(key=lambda node: definition.get(node.module, len(definition)))
    order, edges = _numbered_joins(_data_flow_order(nodes, edges), edges)
    return ModelGraph(
        nodes=tuple(order), edges=tuple(edges), groups=coupled, blocks=_repeated_blocks(model, order, edges)
    )


def _trace_nodes(channels: ChannelGraph) -> tuple[list[GraphNode], list[tuple[str, str]]]:
    """Module and join nodes of the traced graph, and the edges between them with other operations folded."""
    graph_nodes = list(channels.graph.module2node.values())
    live = _fed_by_modules(graph_nodes, channels.names)
    modules = {node: name for node in graph_nodes if (name := _module_name(node, channels.names)) is not None}
    sources: dict[tp.dependency.Node, frozenset[tp.dependency.Node]] = {}

    def streams(node: tp.dependency.Node) -> frozenset[tp.dependency.Node]:
        """The modules and joins whose outputs reach `node` through folded operations only."""
        if node not in sources:
            sources[node] = frozenset()  # a cycle (a module called twice) ends here
            found: set[tp.dependency.Node] = set()
            for source in node.inputs:
                if source in live:
                    found |= {source} if source in modules or _is_join(source) else streams(source)
            sources[node] = frozenset(found)
        return sources[node]

    def _is_join(node: tp.dependency.Node) -> bool:
        return not isinstance(node.module, tp.ops._OutputOp) and len(streams(node)) >= 2

    kept: dict[tp.dependency.Node, GraphNode] = {}
    counter = itertools.count()
    for node in graph_nodes:
        if node in modules:
            kept[node] = _module_node(modules[node], node.module)
        elif node in live and _is_join(node):
            kind = _join_kind(node.module)
            kept[node] = GraphNode(id=f"{kind}#{next(counter)}", kind=kind, module=None)  # renamed in order later
    position = {node: index for index, node in enumerate(graph_nodes)}
    edges = [
        (kept[source].id, kept[node].id) for node in kept for source in sorted(streams(node), key=position.__getitem__)
    ]
    return list(kept.values()), list(dict.fromkeys(edges))


def _module_name(node: tp.dependency.Node, names: Mapping[nn.Module, str]) -> str | None:
    return names.get(node.module) if isinstance(node.module, nn.Module) else None


def _fed_by_modules(nodes: list[tp.dependency.Node], names: Mapping[nn.Module, str]) -> set[tp.dependency.Node]:
    """Nodes downstream of a module (what carries data); operations on parameters or constants alone are not."""
    live: set[tp.dependency.Node] = set()
    stack = [node for node in nodes if isinstance(node.module, nn.Module) and node.module in names]
    while stack:
        node = stack.pop()
        if node in live:
            continue
        live.add(node)
        stack.extend(node.outputs)
    return live


def _join_kind(operation: nn.Module) -> str:
    if isinstance(operation, tp.ops._ConcatOp):
        return "concat"
    grad_fn = getattr(operation, "_grad_fn", None)  # the autograd function's name (an object in older versions)
    name = grad_fn if isinstance(grad_fn, str) else type(operation).__name__.strip("_")
    if grad_fn is not None and hasattr(grad_fn, "name"):
        name = grad_fn.name()
    for prefix, kind in JOIN_KINDS.items():
        if name.startswith(prefix):
            return kind
    if name.startswith(ATTENTION_OPS):
        return "attention"
    return name.removesuffix("0").removesuffix("Backward").lower()


def _module_node(name: str, module: nn.Module) -> GraphNode:
    weight = getattr(module, "weight", None)
    return GraphNode(
        id=name,
        kind=type(module).__name__,
        module=name,
        params=sum(parameter.numel() for parameter in module.parameters()),
        shape=tuple(weight.shape) if isinstance(weight, torch.Tensor) else (),
        prunable=layer_kind(module) is not None,
    )


def _module_flops(model: nn.Module, inputs: object) -> dict[str, int] | None:
    """FLOPs per module path of one forward pass; None when the counter cannot run the model.

    Fake tensors first (gpt2_shaped: 0.25 s instead of 1.8 s for a real pass); a model whose
    code needs real values (e.g. `.item()`) is run for real.
    """
    for fake in (True, False):
        counter = FlopCounterMode(display=False)
        try:
            with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) if fake else nullcontext(), counter:
                run_model(model, inputs)
        except Exception:  # fake tensors and the counter do not support every op or module type
            continue
        return {
            key.split(".", 1)[1]: int(sum(counts.values()))
            for key, counts in counter.get_flop_counts().items()
            if "." in key
        }
    return None


def _data_flow_order(nodes: list[GraphNode], edges: list[tuple[str, str]]) -> list[GraphNode]:
    """A topological order of the nodes; ties go to the module defined first, a join after its inputs.

    Nodes on a cycle (a module called more than once) follow in definition order.
    """
    position = {node.id: index for index, node in enumerate(nodes)}
    waiting = {node.id: 0 for node in nodes}
    successors: dict[str, list[str]] = {node.id: [] for node in nodes}
    for source, target in edges:
        successors[source].append(target)
        waiting[target] += 1
    by_id = {node.id: node for node in nodes}
    rank: dict[str, float] = {}
    ready = [(position[node_id], node_id) for node_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[GraphNode] = []
    while ready:
        key, node_id = heapq.heappop(ready)
        rank[node_id] = key
        order.append(by_id[node_id])
        for target in successors[node_id]:
            waiting[target] -= 1
            if waiting[target] == 0:
                join_key = key + 0.5 if by_id[target].is_join else position[target]
                heapq.heappush(ready, (join_key, target))
    placed = {node.id for node in order}
    return order + [node for node in nodes if node.id not in placed]


def _numbered_joins(
    order: list[GraphNode], edges: list[tuple[str, str]]
) -> tuple[list[GraphNode], list[tuple[str, str]]]:
    """Joins renamed "add 1", "add 2", … in data-flow order, so names read in the order they are drawn."""
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for node in order:
        if node.is_join:
            counts[node.kind] = counts.get(node.kind, 0) + 1
            names[node.id] = f"{node.kind} {counts[node.kind]}"
    renamed = [replace(node, id=names.get(node.id, node.id)) for node in order]
    return renamed, [(names.get(source, source), names.get(target, target)) for source, target in edges]


def _repeated_blocks(
    model: nn.Module, order: list[GraphNode], edges: list[tuple[str, str]]
) -> tuple[RepeatedBlock, ...]:
    """Repeated blocks → the nodes inside: their modules, and each join whose latest input is inside."""
    blocks = list(candidate_blocks(model))
    owner: dict[str, str] = {}
    inputs: dict[str, list[str]] = {}
    for source, target in edges:
        inputs.setdefault(target, []).append(source)
    position = {node.id: index for index, node in enumerate(order)}
    for node in order:
        if node.module is not None:
            block = next((b for b in blocks if node.module.startswith(f"{b}.")), None)
        else:
            latest = max(inputs.get(node.id, []), key=position.__getitem__, default=None)
            block = owner.get(latest) if latest is not None else None
        if block is not None:
            owner[node.id] = block
    members: dict[str, list[str]] = {}
    for node_id, block in owner.items():
        members.setdefault(block, []).append(node_id)
    return tuple(
        RepeatedBlock(block, type(model.get_submodule(block)).__name__, tuple(ids))
        for block, ids in members.items()
        if len(ids) > 1
    )


def _block_node(block: RepeatedBlock, members: list[GraphNode]) -> GraphNode:
    counted = [member.flops for member in members if member.flops is not None]
    return GraphNode(
        id=block.name,
        kind=block.kind,
        module=block.name,
        params=sum(member.params for member in members),
        flops=sum(counted) if len(counted) == len(members) else None,
        prunable=any(member.prunable for member in members),
        members=tuple(member.id for member in members),
    )
