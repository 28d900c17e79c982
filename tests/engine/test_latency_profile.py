"""Per-layer latency profile and the latency a plan would give, predicted before applying it.

Timings on a shared machine are noisy, so these tests check structure (rows, columns, FLOPs,
shapes, what is restored) exactly and times only within loose bounds.
"""

from __future__ import annotations

import pytest
import torch
from model_zoo import ZOO_BY_NAME
from torch import nn

from prune_engine import latency
from prune_engine.latency import OTHER, latency_profile, predict_latency
from prune_engine.layers import prunable_layers
from prune_engine.metrics import measure_latency
from prune_engine.plan import PruningPlan
from prune_engine.pruning import apply_plan


class WideCNN(nn.Module):
    """Wide enough that halving its channels saves most of its time on one CPU thread."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def wide_cnn() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return WideCNN().eval(), torch.randn(1, 3, 16, 16)


def test_profile_has_one_row_per_prunable_layer_and_one_for_the_rest() -> None:
    model = ZOO_BY_NAME["residual_cnn"].build()
    example = ZOO_BY_NAME["residual_cnn"].example_input()
    profile = latency_profile(model, example)
    names = [layer.name for layer in prunable_layers(model)]
    assert list(profile["layer"]) == [*names, OTHER]
    assert list(profile.columns) == ["layer", "kind", "ms", "share", "flops", "params"]
    assert (profile["ms"] >= 0).all() and (profile["share"] >= 0).all()
    assert profile["share"].sum() <= 1.0 + 1e-9
    assert profile["params"].sum() == sum(p.numel() for p in model.parameters())


def test_profile_counts_each_layers_flops() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    profile = latency_profile(model, torch.randn(2, 3, 6, 6), batch_size=4).set_index("layer")
    assert profile.loc["0", "flops"] == 2 * 4 * 8 * 6 * 6 * 3 * 3 * 3
    assert profile.loc["3", "flops"] == 2 * 4 * 288 * 5
    assert profile.loc[OTHER, "flops"] == 0
    assert profile.loc["0", "kind"] == "Conv2d" and profile.loc["3", "kind"] == "Linear"


def test_profile_restores_threads_hooks_and_mode_and_leaves_the_model_unchanged() -> None:
    model = ZOO_BY_NAME["plain_cnn"].build().train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    threads = torch.get_num_threads()
    latency_profile(model, ZOO_BY_NAME["plain_cnn"].example_input(), threads=1)
    assert torch.get_num_threads() == threads
    assert model.training
    assert all(not module._forward_hooks and not module._forward_pre_hooks for module in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_profile_and_prediction_follow_the_models_dtype() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).double()
    profile = latency_profile(model, torch.randn(3, 16))
    assert len(profile) == 3
    prediction = predict_latency(model, PruningPlan(granularity="channel", global_ratio=0.5), torch.randn(3, 16))
    assert prediction["layers"].set_index("layer").loc["0", "out_after"] == 16


def test_unstructured_and_nm_plans_predict_no_change_on_dense_kernels() -> None:
    model, example = wide_cnn()
    for plan in (PruningPlan(granularity="unstructured", global_ratio=0.5), PruningPlan(granularity="n:m")):
        prediction = predict_latency(model, plan, example)
        assert prediction["dense_kernels_unchanged"] is True
        assert prediction["predicted_speedup"] == pytest.approx(1.0)
        layers = prediction["layers"].iloc[:-1]
        assert (layers["in_before"] == layers["in_after"]).all() and (layers["out_before"] == layers["out_after"]).all()


def test_channel_plan_prediction_shows_the_pruned_shapes_and_honours_round_to() -> None:
    model, example = wide_cnn()
    prediction = predict_latency(
        model, PruningPlan(granularity="channel", global_ratio=0.3, round_to=16), example, batch_size=2
    )
    layers = prediction["layers"].set_index("layer")
    assert prediction["dense_kernels_unchanged"] is False
    assert list(layers.index) == ["features.0", "features.3", "features.6", "classifier", OTHER]
    assert layers.loc["features.3", "out_before"] == 128
    assert layers.loc["features.3", "out_after"] % 16 == 0 and layers.loc["features.3", "out_after"] < 128
    assert layers.loc["features.3", "in_after"] == layers.loc["features.0", "out_after"]
    assert layers.loc["classifier", "out_after"] == 10, "the output units are never removed"
    assert prediction["batch_size"] == 2 and prediction["threads"] == 1
    saved = layers["dense_ms"].sum() - layers["predicted_ms"].sum()
    assert prediction["predicted_ms"] == pytest.approx(prediction["dense_ms"] - saved)
    other = layers.loc[OTHER]
    assert other["predicted_ms"] < other["dense_ms"] or other["dense_ms"] == 0, (
        "normalisation and activations work on fewer channels"
    )


def test_channel_plan_prediction_agrees_loosely_with_a_measured_comparison() -> None:
    model, example = wide_cnn()
    plan = PruningPlan(granularity="channel", global_ratio=0.5)
    prediction = predict_latency(model, plan, example, batch_size=8)
    pruned = apply_plan(model, plan, example).model
    measured = measure_latency(
        {"dense": model, "pruned": pruned}, example, batch_size=8, rounds=5, max_seconds=3.0
    ).table.set_index("model")
    assert prediction["predicted_speedup"] > 1.0
    ratio = prediction["predicted_speedup"] / measured.loc["pruned", "speedup"]
    assert 0.5 < ratio < 2.0, (prediction["predicted_speedup"], measured.loc["pruned", "speedup"])


@pytest.mark.parametrize(
    "name", ["mlp", "residual_cnn", "mobilenet_like", "two_branch_concat", "grouped_conv", "conv1d"]
)
def test_channel_prediction_runs_on_coupled_grouped_and_1d_layers(name: str) -> None:
    entry = ZOO_BY_NAME[name]
    model, example = entry.build(), entry.example_input()
    prediction = predict_latency(model, PruningPlan(granularity="channel", global_ratio=0.5), example)
    pruned = apply_plan(model, PruningPlan(granularity="channel", global_ratio=0.5), example).model
    layers = prediction["layers"].set_index("layer")
    for info in prunable_layers(pruned):
        assert layers.loc[info.name, "out_after"] == info.out_channels, info.name
        assert layers.loc[info.name, "in_after"] == info.in_channels, info.name
    assert prediction["predicted_ms"] > 0


def test_a_plan_that_re_estimates_batchnorm_is_predicted_without_calibration_data() -> None:
    model = ZOO_BY_NAME["plain_cnn"].build().eval()
    example = ZOO_BY_NAME["plain_cnn"].example_input()
    plan = PruningPlan(granularity="channel", global_ratio=0.5, recalibrate_bn=True)

    prediction = predict_latency(model, plan, example)

    assert (
        prediction["predicted_ms"] > 0
        and (prediction["layers"]["out_after"] < prediction["layers"]["out_before"]).any()
    )


@pytest.mark.parametrize("dense_width", [10, 64, 1000, 1024])
def test_a_width_between_grid_points_is_weighed_from_its_two_neighbours(dense_width: int) -> None:
    step = -(-dense_width // latency.WIDTH_GRID_STEPS)
    for width in range(1, dense_width + 1):
        points = latency._bracket(dense_width, width)
        assert sum(weight for _, weight in points) == pytest.approx(1.0)
        assert sum(point * weight for point, weight in points) == pytest.approx(width)
        on_grid = width % step == 0 or width < step or width == dense_width
        assert len(points) == (1 if on_grid else 2)
        assert on_grid or all(point % step == 0 or point == dense_width for point, _ in points)


def test_a_reshaped_layer_is_timed_only_at_grid_widths_and_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slider moving a 1024-wide layer one channel at a time needs no new timing inside a grid cell; with
    both widths changed, the share is interpolated between the four grid shapes around it."""
    latency._layer_shares.clear()
    timed: list[tuple[int, int]] = []

    def fake_shares(dense: tuple, configs: list[tuple], dense_shape: tuple[int, ...], threads: int) -> list[float]:
        assert dense == latency._config(nn.Linear(256, 1024)) and dense_shape == (32, 256)
        timed.extend((config[1], config[2]) for config in configs)
        return [config[1] / 256 * (config[2] / 1024) ** 2 for config in configs]

    monkeypatch.setattr(latency, "_timed_shares", fake_shares)
    dense = latency._config(nn.Linear(256, 1024))
    out_step, in_step = 1024 // latency.WIDTH_GRID_STEPS, 256 // latency.WIDTH_GRID_STEPS
    top = 1024 - out_step
    for out_width in range(top + 1, 1024):
        share = latency._reshaped_share(dense, latency._resized(dense, 256, out_width), (32, 256), 1)
        weight = (out_width - top) / out_step
        assert share == pytest.approx((1 - weight) * (top / 1024) ** 2 + weight)
    assert timed == [(256, top)], "each grid width timed once; the dense width is the unit"
    in_low, out_width = 256 - 2 * in_step, top + out_step // 4
    in_width = in_low + in_step // 4
    share = latency._reshaped_share(dense, latency._resized(dense, in_width, out_width), (32, 256), 1)
    expected = sum(
        in_weight * out_weight * grid_in / 256 * (grid_out / 1024) ** 2
        for grid_in, in_weight in ((in_low, 0.75), (in_low + in_step, 0.25))
        for grid_out, out_weight in ((top, 0.75), (1024, 0.25))
    )
    assert share == pytest.approx(expected)
    assert sorted(timed[1:]) == [(in_low, top), (in_low, 1024), (in_low + in_step, top), (in_low + in_step, 1024)]


def test_a_grouped_convolution_is_timed_at_its_exact_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    latency._layer_shares.clear()
    timed: list[tuple] = []
    monkeypatch.setattr(
        latency, "_timed_shares", lambda dense, configs, shape, threads: timed.extend(configs) or [1.0] * len(configs)
    )
    dense = latency._config(nn.Conv2d(64, 64, 3, groups=64))
    pruned = latency._config(nn.Conv2d(45, 45, 3, groups=45))
    latency._reshaped_share(dense, pruned, (8, 64, 8, 8), 1)
    assert timed == [pruned]


def test_reshaped_layers_are_timed_in_turns_with_their_dense_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy spell slows the dense and the reshaped layers alike, so their shares stay what they are; the
    blocks it cuts across are outvoted."""
    calls: list[int] = []
    busy = iter([False] * 4 + [True] * 7 + [False] * 100)

    def fake_block(layer: nn.Module, inputs: torch.Tensor, number: int, device: str) -> float:
        calls.append(layer.out_features)
        return (10.0 if next(busy) else 1.0) * layer.out_features * 1e-6

    monkeypatch.setattr(latency, "_timed_block", fake_block)
    dense = latency._config(nn.Linear(64, 200))
    reshaped = [latency._resized(dense, 64, 50), latency._resized(dense, 64, 100)]
    shares = latency._timed_shares(dense, reshaped, (8, 64), 1)
    assert shares == pytest.approx([0.25, 0.5])
    assert calls == [200, 50, 100] * latency.SHAPE_TIMING_BLOCKS


def test_layers_whose_single_call_fills_a_block_are_timed_in_fewer_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(latency, "_timed_forward", lambda layer, inputs, device: 0.01)
    monkeypatch.setattr(
        latency, "_timed_block", lambda layer, inputs, number, device: calls.append(number) or layer.out_features
    )
    dense = latency._config(nn.Linear(64, 200))
    assert latency._timed_shares(dense, [latency._resized(dense, 64, 100)], (8, 64), 1) == [0.5]
    assert calls == [1, 1] * latency.LONG_CALL_BLOCKS


def test_predict_says_what_the_layers_table_adds_up_to() -> None:
    entry = ZOO_BY_NAME["plain_cnn"]
    model, example = entry.build().eval(), entry.example_input()
    predictor = latency.LatencyPredictor(model, example, batch_size=4)
    pruned = apply_plan(model, PruningPlan(granularity="channel", global_ratio=0.4), example).model
    table = predictor.layers(pruned)
    assert predictor.predict(pruned) == pytest.approx(predictor.predicted_ms(table))
    assert predictor.predict(pruned) < predictor.predict(None) == pytest.approx(predictor.dense_ms)
    assert table.loc[table["layer"] != OTHER, "out_after"].lt(table.loc[table["layer"] != OTHER, "out_before"]).any()
