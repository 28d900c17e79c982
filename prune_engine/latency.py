"""Where a forward pass spends its time, layer by layer, and what a pruning plan would save.

`latency_profile` times each prunable layer inside the running model (a forward pre-hook
and a forward hook read `time.perf_counter` around it) over several forward passes after a
warm-up, and the whole forward pass without hooks; the rest (normalisation, activations,
pooling, additions) is one "(other)" row. `predict_latency` answers "how fast would this plan
be?" without timing the pruned model: each layer whose shape the plan changes is timed alone
at its dense and its pruned shape (a fresh layer with random weights), and its in-model time
is scaled by the ratio. Zeros do not make dense kernels faster, so unstructured and N:M plans
predict no change and say so in a typed field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from .data import EvalData
from .errors import PruneScopeError, UnsupportedModelError
from .hooks import own_thread
from .layers import LayerInfo, get_layer, prunable_layers
from .metrics import batch_of, checked_device, eval_mode
from .placement import model_device, place_model, placement
from .plan import PruningPlan
from .pruning import apply_plan

OTHER = "(other)"
"""The profile's row for everything outside the prunable layers."""
PROFILE_RUNS = 20
"""Forward passes timed for a profile (fewer when they would exceed `PROFILE_BUDGET_S`)."""
PROFILE_BUDGET_S = 5.0
"""A profile's timed forward passes are cut to fit about this many seconds."""
MIN_PROFILE_RUNS = 3
SHAPE_CHANGING = ("channel", "head")
"""Granularities that make layers smaller; the others only zero weights, which dense kernels ignore."""
LAYER_TIMING_BLOCKS = 7
"""Blocks of calls behind a timing that decides something (their median is taken; `sparse_runtime`)."""
LAYER_BLOCK_SECONDS = 0.005
SHAPE_TIMING_BLOCKS = 5
SHAPE_BLOCK_SECONDS = 0.002
"""Each layer a plan reshapes is timed in this many blocks of about this long, alternating with its dense
layer: the Prune page predicts on every slider step, and the prediction's error stayed within
bench/speed.py's target with these."""
LONG_CALL_BLOCKS = 3
"""Blocks for layers whose single call takes longer than a block (tiny_gpt's feed-forward layers at batch 32:
~10 ms): a call that long varies little, and five turns of every grid width made a slider step wait ~0.6 s."""
WIDTH_GRID_STEPS = 8
"""A reshaped layer is timed at widths on a grid of this many steps of each dense width, and the time
between two grid widths interpolated (`_reshaped_share`). bench/speed.py (a), with plans that leave widths
between grid points: error of the predicted speed-up median 4.8 % with 8 steps, 3.0 % with 16, while 8 steps
halve how often a slider step waits for a timing."""
LAYER_CACHE_SIZE = 256
"""Layer timings kept, by kind, configuration, input shape, dtype, device and threads (the reshaped layers'
shares of their dense layers here, `sparse_runtime`'s dense and sparse times there)."""

_layer_shares: OrderedDict[tuple, float] = OrderedDict()
_layer_shares_lock = threading.Lock()
"""Sessions predict at the same time; the cache is read and written under this lock (timing is not)."""


@dataclass
class _Profile:
    """A dense profile's figures: whole-forward and per-layer medians, and each layer's input shape."""

    total_ms: float
    layer_ms: dict[str, float]
    input_shapes: dict[str, tuple[int, ...]]
    output_elements: dict[str, int]
    layers: list[LayerInfo]
    model: nn.Module
    batch: int
    flops: dict[str, int] = field(default_factory=dict)
    total_flops: int | None = None


def latency_profile(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    batch_size: int | None = None,
    threads: int = 1,
    device: str = "cpu",
) -> pd.DataFrame:
    """One row per prunable layer, and one "(other)" row for the rest, of where a forward pass spends its time.

    Columns: `layer`, `kind`, `ms` (median of the layer's own time inside the running model),
    `share` (of the whole forward pass's median, timed without hooks; of the layers' sum when
    hooks made that larger), `flops` (per forward pass, None when the model cannot be
    counted), `params`. The "(other)" row holds the whole forward pass minus the layers
    (never negative). The model runs on `device` (a copy when
    it lives elsewhere; the model itself is not changed), the input cast to its dtype,
    repeated to `batch_size` rows if given, on `threads` torch threads.
    """
    profile = _profile(model, example_input, batch_size, threads, device)
    rows = [
        {
            "layer": info.name,
            "kind": info.kind,
            "ms": profile.layer_ms[info.name],
            "flops": profile.flops.get(info.name),
            "params": info.params,
        }
        for info in profile.layers
    ]
    layers_ms = sum(profile.layer_ms.values())
    layer_flops = sum(profile.flops.get(info.name, 0) for info in profile.layers)
    rows.append(
        {
            "layer": OTHER,
            "kind": "other",
            "ms": max(profile.total_ms - layers_ms, 0.0),
            "flops": None if profile.total_flops is None else max(profile.total_flops - layer_flops, 0),
            "params": sum(p.numel() for p in model.parameters()) - sum(info.params for info in profile.layers),
        }
    )
    table = pd.DataFrame(rows)
    table.insert(3, "share", table["ms"] / max(profile.total_ms, layers_ms, 1e-12))
    table["flops"] = table["flops"].astype("Int64")
    return table


def predict_latency(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    *,
    batch_size: int | None = None,
    threads: int = 1,
    device: str = "cpu",
    data: EvalData | None = None,
) -> dict[str, object]:
    """The latency `plan` would give, predicted from layer timings, without timing the pruned model.

    Returns `dense_ms` (the whole forward pass, measured), `predicted_ms`,
    `predicted_speedup`, `dense_kernels_unchanged` (True for unstructured and N:M plans:
    zeroed weights cost a dense kernel the same, so nothing changes), and `layers`: one row
    per prunable layer plus "(other)" with `dense_ms`, `predicted_ms` and the channels
    before/after (`in_before`, `in_after`, `out_before`, `out_after`). For channel and head
    plans the plan is applied to a copy only to read each layer's new shape (`data` feeds
    data-driven criteria); each changed layer is then timed alone at both shapes and its
    in-model time scaled by that ratio. Everything outside the layers ("(other)") is
    scaled by the share of the layers' output elements the plan keeps: kept unchanged, it
    was most of the error on a ResNet-18 shape at 50 % channels (6.9 ms dense, 3.2 ms pruned,
    of a pruned forward pass of ~10 ms, predicted 14.6 ms).
    """
    predictor = LatencyPredictor(model, example_input, batch_size=batch_size, threads=threads, device=device)
    dense_kernels_unchanged = plan.granularity not in SHAPE_CHANGING
    pruned = None
    if not dense_kernels_unchanged:
        plan_input = placement(predictor.model).inputs(example_input)
        shapes_only = dataclasses.replace(plan, recalibrate_bn=False)  # BatchNorm statistics change no shape
        pruned = apply_plan(predictor.model, shapes_only, plan_input, data=data).model
    layers = predictor.layers(pruned)
    predicted_total = predictor.predicted_ms(layers)
    return {
        "dense_ms": predictor.dense_ms,
        "predicted_ms": predicted_total,
        "predicted_speedup": predictor.dense_ms / predicted_total,
        "dense_kernels_unchanged": dense_kernels_unchanged,
        "layers": layers,
        "batch_size": predictor.profile.batch,
        "threads": threads,
        "device": device,
    }


class LatencyPredictor:
    """One dense profile of a model, reused to predict the latency of many pruned copies of it.

    A sensitivity scan predicts the latency of every (layer, ratio) copy: profiling the
    dense model once and timing each changed layer alone (cached by shape) keeps that cheap.
    `device` defaults to the model's own; pruned copies must live on the profile's device (`model`).
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor,
        *,
        batch_size: int | None = None,
        threads: int = 1,
        device: str | None = None,
    ) -> None:
        self.profile = _profile(model, example_input, batch_size, threads, device or model_device(model).type)
        self.threads = threads

    @property
    def model(self) -> nn.Module:
        """The profiled model (the caller's, or a copy on the profile's device)."""
        return self.profile.model

    @property
    def dense_ms(self) -> float:
        """Median milliseconds of the dense model's whole forward pass."""
        return self.profile.total_ms

    def layers(self, pruned: nn.Module | None) -> pd.DataFrame:
        """Per prunable layer and "(other)": `dense_ms`, `predicted_ms` and the channels before/after
        in `pruned` (None: nothing changes shape)."""
        layers = pd.DataFrame(self._rows(pruned))
        for column in ("in_before", "in_after", "out_before", "out_after"):
            layers[column] = layers[column].astype("Int64")
        return layers

    def predicted_ms(self, layers: pd.DataFrame) -> float:
        """The whole forward pass's predicted milliseconds from a `layers` table: dense minus what the layers save."""
        return self._predicted_total(layers.to_dict("records"))

    def predict(self, pruned: nn.Module | None) -> float:
        """The predicted milliseconds of one forward pass of `pruned` (None: the dense model); the Prune page
        asks at every slider step, so without building the `layers` table."""
        return self._predicted_total(self._rows(pruned))

    def _predicted_total(self, rows: list[dict[str, object]]) -> float:
        saved = sum(float(row["dense_ms"]) - float(row["predicted_ms"]) for row in rows)
        return max(self.dense_ms - saved, 1e-9)

    def _rows(self, pruned: nn.Module | None) -> list[dict[str, object]]:
        profile = self.profile
        pruned_modules = (
            {} if pruned is None else {info.name: get_layer(pruned, info.name) for info in prunable_layers(pruned)}
        )
        rows = []
        for info in profile.layers:
            dense_module = get_layer(profile.model, info.name)
            pruned_module = pruned_modules.get(info.name, dense_module)
            in_model_ms = profile.layer_ms[info.name]
            predicted_ms = in_model_ms
            dense_config, pruned_config = _config(dense_module), _config(pruned_module)
            if pruned_config != dense_config:
                dense_shape = profile.input_shapes[info.name]
                predicted_ms = in_model_ms * _reshaped_share(dense_config, pruned_config, dense_shape, self.threads)
            rows.append(_prediction_row(info.name, info.kind, in_model_ms, predicted_ms, dense_module, pruned_module))
        other_ms = max(profile.total_ms - sum(profile.layer_ms.values()), 0.0)
        other_predicted = other_ms * _elements_left(profile, rows)
        rows.append({"layer": OTHER, "kind": "other", "dense_ms": other_ms, "predicted_ms": other_predicted})
        return rows


def _prediction_row(
    name: str, kind: str, dense_ms: float, predicted_ms: float, dense: nn.Module, pruned: nn.Module
) -> dict[str, object]:
    dense_in, dense_out = _channels(dense)
    pruned_in, pruned_out = _channels(pruned)
    return {
        "layer": name,
        "kind": kind,
        "dense_ms": dense_ms,
        "predicted_ms": predicted_ms,
        "in_before": dense_in,
        "in_after": pruned_in,
        "out_before": dense_out,
        "out_after": pruned_out,
    }


def _elements_left(profile: _Profile, rows: list[dict[str, object]]) -> float:
    """The share of the layers' output elements a plan keeps: what "(other)" (normalisation,
    activations, pooling, residual additions, attention's own products) works on."""
    before = after = 0.0
    for row in rows:
        elements = profile.output_elements.get(str(row["layer"]), 0)
        before += elements
        after += elements * int(row["out_after"]) / max(int(row["out_before"]), 1)
    return after / before if before else 1.0


# --- the dense profile -----------------------------------------------------------------


def _profile(
    model: nn.Module, example_input: torch.Tensor, batch_size: int | None, threads: int, device: str
) -> _Profile:
    device = checked_device(device).type
    if threads < 1:
        raise PruneScopeError("Threads must be at least 1.")
    if isinstance(model, torch.jit.ScriptModule):
        raise UnsupportedModelError(
            "Timing layers one by one needs the model's Python code; a TorchScript model can only be timed as a whole "
            "(compare_latency)."
        )
    layers = prunable_layers(model)
    ready = model if model_device(model).type == torch.device(device).type else place_model(model, device)
    inputs = placement(ready).inputs(batch_of(example_input, batch_size))
    clock = _LayerClock({info.name: get_layer(ready, info.name) for info in layers}, device)
    totals: list[float] = []
    with (
        eval_mode(ready),
        torch.inference_mode(),
        benchmark.utils.common.set_torch_threads(threads),
    ):
        first = _timed_forward(ready, inputs, device)
        _timed_forward(ready, inputs, device)
        runs = int(min(PROFILE_RUNS, max(MIN_PROFILE_RUNS, PROFILE_BUDGET_S / (2 * max(first, 1e-9)))))
        for _ in range(runs):
            totals.append(_timed_forward(ready, inputs, device))
            with clock.attached():
                _timed_forward(ready, inputs, device)
        flops = _layer_flops(ready, inputs)
    return _Profile(
        total_ms=float(np.median(totals)) * 1e3,
        layer_ms={name: float(np.median(times)) * 1e3 for name, times in clock.times.items()},
        input_shapes=clock.input_shapes,
        output_elements=clock.output_elements,
        layers=layers,
        model=ready,
        batch=int(inputs.shape[0]),
        flops={name: count for name, count in flops.items() if name},
        total_flops=flops.get("") if flops else None,
    )


class _LayerClock:
    """Forward hooks that add up each layer's own time per forward pass and note its input shape
    and output size."""

    def __init__(self, modules: dict[str, nn.Module], device: str) -> None:
        self.modules = modules
        self.synchronize: Callable[[], None] = torch.cuda.synchronize if device == "cuda" else _no_sync
        self.times: dict[str, list[float]] = {name: [] for name in modules}
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self.output_elements: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._pass: dict[str, float] = {}

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        """Hooks on every layer for one forward pass; afterwards each layer's time of that pass is recorded."""
        handles = []
        for name, module in self.modules.items():
            handles.append(module.register_forward_pre_hook(own_thread(self._pre_hook(name))))
            handles.append(module.register_forward_hook(own_thread(self._post_hook(name))))
        self._pass = dict.fromkeys(self.modules, 0.0)
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        for name, seconds in self._pass.items():
            self.times[name].append(seconds)

    def _pre_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor):
                self.input_shapes.setdefault(name, tuple(args[0].shape))
            self.synchronize()
            self._started[name] = time.perf_counter()

        return hook

    def _post_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            self.synchronize()
            self._pass[name] += time.perf_counter() - self._started.pop(name)
            if isinstance(output, torch.Tensor):
                self.output_elements.setdefault(name, output.numel())

        return hook


def _no_sync() -> None:
    return None


def _timed_forward(model: nn.Module, inputs: torch.Tensor, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model(inputs)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _layer_flops(model: nn.Module, inputs: torch.Tensor) -> dict[str, int]:
    """FLOPs per module path ("" for the whole model); empty when the model cannot be counted."""
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model(inputs)
    except Exception:  # the counter does not support every op or module type
        return {}
    flops = {}
    for key, counts in counter.get_flop_counts().items():
        if key == "Global":
            continue
        path = key.split(".", 1)[1] if "." in key else ""
        flops[path] = int(sum(counts.values()))
    return flops


# --- layers timed alone ----------------------------------------------------------------


def _config(module: nn.Module) -> tuple:
    """What a fresh copy of a Linear/Conv layer needs, and what its speed depends on; its input and output
    widths are always the second and third entries (`_resized`)."""
    weight = module.weight
    has_bias = getattr(module, "bias", None) is not None
    if isinstance(module, nn.Linear):
        return (nn.Linear, module.in_features, module.out_features, has_bias, weight.dtype, weight.device)
    return (
        type(module),
        module.in_channels,
        module.out_channels,
        module.kernel_size,
        module.stride,
        module.padding,
        module.dilation,
        module.groups,
        module.padding_mode,
        has_bias,
        weight.dtype,
        weight.device,
    )


def _resized(config: tuple, in_width: int, out_width: int) -> tuple:
    """`config` with other input and output widths."""
    return (config[0], in_width, out_width, *config[3:])


def _fresh_layer(config: tuple) -> nn.Module:
    """A new layer of the kind and configuration `config` describes (`_config`), with random weights."""
    kind, in_width, out_width, *rest = config
    dtype, device = rest[-2], rest[-1]
    if kind is nn.Linear:
        return nn.Linear(in_width, out_width, bias=rest[0], dtype=dtype, device=device)
    kernel_size, stride, padding, dilation, groups, padding_mode, has_bias = rest[:7]
    return kind(
        in_width,
        out_width,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=has_bias,
        padding_mode=padding_mode,
        dtype=dtype,
        device=device,
    )


def _channels(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.in_channels, module.out_channels


def _input_shape(dense_shape: tuple[int, ...], config: tuple) -> tuple[int, ...]:
    """The dense input shape with its channel dimension (last for Linear, second for Conv) set to the
    input width of `config`."""
    in_width = config[1]
    if config[0] is nn.Linear:
        return (*dense_shape[:-1], in_width)
    return (dense_shape[0], in_width, *dense_shape[2:])


def _reshaped_share(dense: tuple, pruned: tuple, dense_shape: tuple[int, ...], threads: int) -> float:
    """The time of one call of the reshaped layer `pruned` (a `_config`) alone, as a share of the dense
    layer's. On a CPU, interpolated between the shares of the nearest widths on a grid of
    `WIDTH_GRID_STEPS` steps of its dense widths.

    A slider step changes a layer's width by a channel or a few, and timing every new width made
    every step wait for new timings; a grid point, once timed, serves every width around it (bench/speed.py
    (a) keeps the prediction's error within its target). On a GPU, where a width that is not a multiple
    of the tensor-core tile can cost more than the channels it saves, and in grouped convolutions,
    whose widths are tied by their groups, every width is timed as it is."""
    grouped = dense[0] is not nn.Linear and dense[7] != 1
    if grouped or dense[-1].type != "cpu" or pruned != _resized(dense, pruned[1], pruned[2]):
        points = [(pruned, 1.0)]
    else:
        points = [
            (_resized(dense, in_width, out_width), in_weight * out_weight)
            for in_width, in_weight in _bracket(dense[1], pruned[1])
            for out_width, out_weight in _bracket(dense[2], pruned[2])
        ]
    timed = [config for config, _ in points if config != dense]
    shares = dict(zip(timed, _paired_shares(dense, timed, dense_shape, threads), strict=True)) | {dense: 1.0}
    return sum(weight * shares[config] for config, weight in points)


def _bracket(dense_width: int, width: int) -> list[tuple[int, float]]:
    """The grid widths around `width` with their interpolation weights (only `width` itself when it is on
    the grid, below its first step or the dense width)."""
    step = -(-dense_width // WIDTH_GRID_STEPS)
    low = width - width % step
    if low in (width, 0) or width == dense_width:
        return [(width, 1.0)]
    high = min(low + step, dense_width)
    share = (width - low) / (high - low)
    return [(low, 1.0 - share), (high, share)]


def _paired_shares(dense: tuple, configs: list[tuple], dense_shape: tuple[int, ...], threads: int) -> list[float]:
    """For each `_config` in `configs`, the median over timed blocks of a fresh layer like it over a fresh
    dense layer (`dense`), each on a random input of its width; cached.

    The layers not yet cached are timed in turns with the dense layer in every block, so a busy moment
    slows them alike: a dense layer timed alone once, while a browser drew the page, had made every later
    prediction for the model too optimistic."""
    keys = [(dense, config, dense_shape, threads) for config in configs]
    with _layer_shares_lock:
        known = {key: _layer_shares[key] for key in keys if key in _layer_shares}
    missing = list(dict.fromkeys(config for config, key in zip(configs, keys, strict=True) if key not in known))
    if missing:
        timed = _timed_shares(dense, missing, dense_shape, threads)
        known |= {(dense, config, dense_shape, threads): share for config, share in zip(missing, timed, strict=True)}
    with _layer_shares_lock:
        for key in keys:
            _layer_shares[key] = known[key]
            _layer_shares.move_to_end(key)
        while len(_layer_shares) > LAYER_CACHE_SIZE:
            _layer_shares.popitem(last=False)
    return [known[key] for key in keys]


def _timed_shares(dense: tuple, configs: list[tuple], dense_shape: tuple[int, ...], threads: int) -> list[float]:
    """Time fresh layers as `dense` and `configs` describe in turns, `SHAPE_TIMING_BLOCKS` blocks each
    (`LONG_CALL_BLOCKS` when one call of the dense layer fills a block): the median share of each over the
    dense layer in the same block."""
    layers = [_fresh_layer(config).eval() for config in (dense, *configs)]
    weight = layers[0].weight
    inputs = [torch.randn(_input_shape(dense_shape, config), dtype=weight.dtype, device=weight.device)
              for config in (dense, *configs)]  # fmt: skip
    device = weight.device.type
    with torch.inference_mode(), benchmark.utils.common.set_torch_threads(threads):
        firsts = [_timed_forward(layer, batch, device) for layer, batch in zip(layers, inputs, strict=True)]
        numbers = [max(1, int(SHAPE_BLOCK_SECONDS / max(first, 1e-9))) for first in firsts]
        count = SHAPE_TIMING_BLOCKS if firsts[0] < SHAPE_BLOCK_SECONDS else LONG_CALL_BLOCKS
        blocks = [
            [_timed_block(layer, layer_inputs, number, device)
             for layer, layer_inputs, number in zip(layers, inputs, numbers, strict=True)]
            for _ in range(count)
        ]  # fmt: skip
    return [float(np.median([block[index] / max(block[0], 1e-12) for block in blocks]))
            for index in range(1, len(layers))]  # fmt: skip


def _timed_block(layer: nn.Module, inputs: torch.Tensor, number: int, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(number):
        layer(inputs)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / number
