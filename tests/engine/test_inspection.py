"""Inspection engine: layers, statistics, histograms, evaluation, summary and latency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_zoo import ZOO_BY_NAME
from torch import nn

import prune_engine as pe
from prune_engine.data import model_fingerprint


def test_prunable_layers_finds_nested_linear_and_conv_layers_by_module_path() -> None:
    model = ZOO_BY_NAME["residual_cnn"].build()
    names = [layer.name for layer in pe.prunable_layers(model)]
    assert names == [
        "stem.0",
        "layer1.conv1",
        "layer1.conv2",
        "layer2.conv1",
        "layer2.conv2",
        "layer2.downsample.0",
        "fc",
    ]
    downsample = next(layer for layer in pe.prunable_layers(model) if layer.name == "layer2.downsample.0")
    assert downsample.kind == "Conv2d"
    assert downsample.weight_shape == (32, 16, 1, 1)
    assert downsample.params == 32 * 16


def test_prunable_layers_covers_conv1d_and_grouped_convs() -> None:
    kinds = {layer.name: layer.kind for layer in pe.prunable_layers(ZOO_BY_NAME["conv1d"].build())}
    assert kinds == {"conv1": "Conv1d", "conv2": "Conv1d", "fc": "Linear"}
    grouped = next(i for i in pe.prunable_layers(ZOO_BY_NAME["grouped_conv"].build()) if i.name == "grouped")
    assert grouped.groups == 4 and grouped.in_channels == 16


def test_layer_stats_counts_zeros_and_norms() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, -4.0]]))
    row = pe.layer_stats(model).iloc[0]
    assert row["name"] == "0"
    assert row["nonzero"] == 4 and row["weights"] == 12 and row["params"] == 15
    assert row["sparsity"] == pytest.approx(8 / 12)
    assert row["l1_norm"] == pytest.approx(10.0)
    assert row["l2_norm"] == pytest.approx(np.sqrt(1 + 4 + 9 + 16))
    assert row["out_channels"] == 3 and row["in_channels"] == 4


def test_weight_histogram_counts_every_weight_in_fixed_bins() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    counts, edges = pe.weight_histogram(model, "fc1", bins=50)
    assert counts.sum() == model.fc1.weight.numel()
    assert len(edges) == 51 and edges[0] == pytest.approx(float(model.fc1.weight.detach().min()))
    counts, edges = pe.weight_histogram(model, "fc1", bins=10, value_range=(-1.0, 1.0))
    assert edges[0] == -1.0 and edges[-1] == 1.0


def test_unknown_layer_names_raise_a_typed_error_listing_layers() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    with pytest.raises(pe.UnknownLayerError, match="fc1"):
        pe.weight_histogram(model, "act1")
    with pytest.raises(pe.PruneScopeError):
        pe.channel_norms(model, "missing.layer")


def test_channel_norms_are_row_norms() -> None:
    model = ZOO_BY_NAME["plain_cnn"].build()
    norms = pe.channel_norms(model, "features.0", p=1)
    expected = model.features[0].weight.detach().abs().sum(dim=(1, 2, 3))
    torch.testing.assert_close(norms, expected)


def test_evaluate_reports_accuracy_loss_and_fidelity() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    inputs = torch.randn(40, 16)
    labels = model(inputs).argmax(dim=1)
    metrics = pe.evaluate(model, pe.EvalData(inputs, labels), reference=model)
    assert metrics["accuracy"] == 1.0
    assert metrics["agreement"] == 1.0
    assert metrics["cosine"] == pytest.approx(1.0)
    assert metrics["loss"] > 0
    flipped = pe.evaluate(model, pe.EvalData(inputs, (labels + 1) % 5))
    assert flipped["accuracy"] == 0.0


def test_evaluate_without_labels_compares_with_reference_outputs() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    data = pe.EvalData(torch.randn(30, 16))
    other = ZOO_BY_NAME["mlp"].build()
    with torch.no_grad():
        other.head.weight.mul_(-1)
    metrics = pe.evaluate(other, data, reference=model)
    assert "accuracy" not in metrics
    assert metrics["cosine"] < 0.99
    assert 0.0 <= metrics["agreement"] < 1.0


def test_evaluate_rejects_labels_outside_the_output_range() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    with pytest.raises(pe.DataError, match="class indices"):
        pe.evaluate(model, pe.EvalData(torch.randn(4, 16), torch.tensor([0, 1, 2, 9])))


def test_evaluate_turns_shape_mismatches_into_data_errors() -> None:
    with pytest.raises(pe.DataError, match="cannot run"):
        pe.evaluate(ZOO_BY_NAME["mlp"].build(), pe.EvalData(torch.randn(4, 7)))


def test_eval_data_validates_label_count_and_batches() -> None:
    with pytest.raises(pe.DataError, match="one label per example"):
        pe.EvalData(torch.randn(5, 2), torch.zeros(4, dtype=torch.long))
    data = pe.EvalData(torch.randn(10, 2), torch.arange(10))
    sizes = [len(inputs) for inputs, _ in data.batches(4)]
    assert sizes == [4, 4, 2]
    assert data.fingerprint() == pe.EvalData(data.inputs.clone(), data.labels.clone()).fingerprint()


def test_model_fingerprint_changes_with_any_weight() -> None:
    model = ZOO_BY_NAME["mlp"].build()
    before = model_fingerprint(model)
    assert model_fingerprint(ZOO_BY_NAME["mlp"].build()) == before
    with torch.no_grad():
        model.fc2.weight[0, 0] += 1e-3
    assert model_fingerprint(model) != before


def test_model_summary_counts_nonzeros_flops_and_sparse_bytes() -> None:
    model = nn.Sequential(nn.Linear(100, 50, bias=False))
    example = torch.randn(1, 100)
    dense = pe.model_summary(model, example)
    assert dense["params"] == 5000 and dense["nonzero_params"] == 5000
    assert dense["flops"] == 2 * 100 * 50
    assert dense["size_bytes"] >= 5000 * 4
    assert dense["dense_bytes"] == dense["sparse_bytes"] == 5000 * 4, "without zeros both sizes count the same bytes"
    with torch.no_grad():
        model[0].weight[:, 10:] = 0
    sparse = pe.model_summary(model, example)
    assert sparse["nonzero_params"] == 500 and sparse["params"] == 5000
    assert sparse["flops"] == dense["flops"], "dense kernels do the same work on zeros"
    assert sparse["sparse_bytes"] == 500 * (4 + 4) + 51 * 4
    assert sparse["sparse_bytes"] < sparse["size_bytes"] / 4
    assert sparse["dense_bytes"] == 5000 * 4
    counts = pe.model_summary(model, example, sizes=False)
    assert counts == {key: sparse[key] for key in ("params", "nonzero_params", "sparsity", "flops")}


def test_latency_is_measured_interleaved_with_speedup_relative_to_the_first_model() -> None:
    big = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256))
    small = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 256))
    result = pe.measure_latency(
        {"big": big, "small": small}, torch.randn(1, 256), batch_size=32, rounds=5, max_rounds=5
    )
    table = result.table.set_index("model")
    assert list(table.index) == ["big", "small"]
    assert table.loc["big", "speedup"] == 1.0
    assert table.loc["small", "speedup"] > 1.0
    assert (table["threads"] == 1).all() and (table["batch_size"] == 32).all()
    assert (table["iqr_ms"] >= 0).all()
    assert len(result.samples) == 10 and set(result.samples["model"]) == {"big", "small"}
    rounds = result.samples.groupby("round")["model"].apply(list).tolist()
    assert rounds[0] == ["big", "small"] and rounds[1] == ["small", "big"], "order rotates between rounds"


def test_compare_latency_rejects_unknown_devices() -> None:
    with pytest.raises(pe.PruneScopeError, match="not available"):
        pe.compare_latency({"m": nn.Linear(2, 2)}, torch.randn(1, 2), device="tpu")
