"""The model graph: modules in data-flow order, joins for additions and concatenations, channel groups."""

import pytest
import torch

import prune_engine as pe
from sample_models import load_sample
from tests.engine.model_zoo import ZOO

ZOO_BY_NAME = {entry.name: entry for entry in ZOO}


def _graph(name: str) -> tuple[torch.nn.Module, pe.ModelGraph]:
    entry = ZOO_BY_NAME[name]
    model = entry.build()
    return model, pe.model_graph(model, entry.example_input())


def _inputs(graph: pe.ModelGraph, node_id: str) -> set[str]:
    return {source for source, target in graph.edges if target == node_id}


@pytest.mark.parametrize("entry", ZOO, ids=lambda entry: entry.name)
def test_graph_holds_every_prunable_layer_in_data_flow_order(entry) -> None:
    model = entry.build()
    graph = pe.model_graph(model, entry.example_input())
    ids = [node.id for node in graph.nodes]
    assert len(ids) == len(set(ids))
    traced = {node.module for node in graph.nodes if node.prunable}
    layers = {layer.name for layer in pe.prunable_layers(model)}
    fused = {name for name in layers if ".self_attn." in name}  # MultiheadAttention's out_proj runs inside it
    assert layers - fused <= traced
    place = {node_id: index for index, node_id in enumerate(ids)}
    for source, target in graph.edges:
        assert place[source] < place[target], f"{source} → {target} runs against the order"


def test_residual_addition_is_a_join_of_the_block_and_its_shortcut() -> None:
    _, graph = _graph("residual_cnn")
    adds = [node for node in graph.nodes if node.kind == "add"]
    assert [node.id for node in adds] == ["add 1", "add 2"]
    assert all(node.is_join and node.params == 0 for node in adds)
    assert _inputs(graph, "add 1") == {"layer1.bn2", "stem.1"}
    assert _inputs(graph, "add 2") == {"layer2.bn2", "layer2.downsample.1"}
    assert _inputs(graph, "layer2.downsample.0") == {"add 1"}


def test_concatenation_is_a_join_that_feeds_the_merge() -> None:
    _, graph = _graph("two_branch_concat")
    concat = graph.node("concat 1")
    assert concat.is_join
    assert _inputs(graph, "concat 1") == {"branch_a", "branch_b"}
    assert _inputs(graph, "merge") == {"concat 1"}


def test_operations_on_parameters_alone_are_no_joins() -> None:
    _, graph = _graph("mlp")
    assert [node.id for node in graph.nodes] == ["fc1", "fc2", "head"]
    assert set(graph.edges) == {("fc1", "fc2"), ("fc2", "head")}


def test_nodes_carry_params_shape_and_flops_that_add_up_to_the_model() -> None:
    model, graph = _graph("plain_cnn")
    first = graph.node("features.0")
    assert (first.kind, first.shape, first.params) == ("Conv2d", (16, 3, 3, 3), 16 * 3 * 3 * 3 + 16)
    assert graph.node("features.1").kind == "BatchNorm2d" and not graph.node("features.1").prunable
    assert sum(node.params for node in graph.nodes) == sum(p.numel() for p in model.parameters())
    assert sum(node.flops for node in graph.nodes) == pe.count_flops(model, ZOO_BY_NAME["plain_cnn"].example_input())


def test_group_of_matches_the_groups_a_channel_plan_prunes_together() -> None:
    entry = ZOO_BY_NAME["residual_cnn"]
    model = entry.build()
    graph = pe.model_graph(model, entry.example_input())
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3)
    preview = pe.preview_plan(model, plan, entry.example_input()).table.set_index("layer")
    for layer in preview.index:
        group = graph.group_of(layer)
        assert group is not None
        assert group.root == preview.loc[layer, "group"]
        assert layer in group.layers
    output = graph.group_of("fc")
    assert output.blocked is not None and output.blocked.by == pe.BlockedBy.OUTPUT_LAYER


def test_tied_weights_block_their_group_with_the_engines_reason() -> None:
    _, graph = _graph("tied_embedding")
    blocked = graph.group_of("hidden").blocked
    assert blocked.by == pe.BlockedBy.TIED_WEIGHTS and "decoder" in blocked.reason


def test_tracing_leaves_the_model_unchanged() -> None:
    entry = ZOO_BY_NAME["residual_cnn"]
    model = entry.build()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    pe.model_graph(model, entry.example_input())
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert not any(module._forward_hooks for module in model.modules())


def test_digits_resnet_groups_and_downsample_branch() -> None:
    bundle = load_sample("digits_resnet")
    graph = pe.model_graph(bundle.model, bundle.example_input)
    assert len([node for node in graph.nodes if node.prunable]) == 11
    assert set(graph.group_of("layer1.0.conv2").layers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2"}
    assert _inputs(graph, "layer2.0.downsample.0") == _inputs(graph, "layer2.0.conv1")


def test_collapsed_draws_each_repeated_block_as_one_node() -> None:
    bundle = load_sample("digits_resnet")
    graph = pe.model_graph(bundle.model, bundle.example_input)
    assert [block.name for block in graph.blocks] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    collapsed = graph.collapsed()
    assert [node.id for node in collapsed.nodes] == [
        "conv1",
        "bn1",
        "layer1.0",
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "fc",
    ]
    assert set(collapsed.edges) == {
        ("conv1", "bn1"),
        ("bn1", "layer1.0"),
        ("layer1.0", "layer1.1"),
        ("layer1.1", "layer2.0"),
        ("layer2.0", "layer2.1"),
        ("layer2.1", "fc"),
    }
    block = collapsed.node("layer2.0")
    assert block.kind == "BasicBlock" and block.is_block
    assert {"layer2.0.downsample.0", "add 3"} <= set(block.members)
    assert block.params == sum(graph.node(member).params for member in block.members)
    assert collapsed.node_of("layer2.0.conv1") == "layer2.0" and graph.node_of("layer2.0.conv1") == "layer2.0.conv1"
    assert collapsed.group_of("layer1.0.conv2") == graph.group_of("layer1.0.conv2")


def test_collapsing_some_blocks_keeps_the_others_expanded() -> None:
    bundle = load_sample("digits_resnet")
    partly = pe.model_graph(bundle.model, bundle.example_input).collapsed(["layer1.0"])
    assert "layer1.0" in {node.id for node in partly.nodes}
    assert "layer1.1.conv1" in {node.id for node in partly.nodes}
    assert [block.name for block in partly.blocks] == ["layer1.1", "layer2.0", "layer2.1"]


def test_transformer_layers_are_blocks_with_attention_joins() -> None:
    _, graph = _graph("transformer")
    assert [block.name for block in graph.blocks] == ["encoder.layers.0", "encoder.layers.1"]
    assert any(node.kind == "add" for node in graph.nodes)
    assert [node.id for node in graph.collapsed().nodes] == ["embed", "encoder.layers.0", "encoder.layers.1", "head"]


def test_a_torchscript_model_cannot_be_drawn() -> None:
    entry = ZOO_BY_NAME["mlp"]
    scripted = torch.jit.script(entry.build())
    with pytest.raises(pe.UnsupportedModelError):
        pe.model_graph(scripted, entry.example_input())
