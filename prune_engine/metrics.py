"""Honest measurements: accuracy or fidelity, size, FLOPs and latency.

Latency is timed in blocks of calls on a fixed thread count (`torch.utils.benchmark`'s
thread setting), every model warmed up first and the models interleaved round by round
in one run, so that a busy machine slows them all alike; the rounds fit a time budget.
Each speed-up (ratio of median times against the first model) comes with a bootstrap
interval over the paired rounds, and rounds are added until that interval is within
±10 % of the ratio or the budget ends: one noisy run once showed an unstructured 20 %
digits_cnn as "1.97× faster" (the original's IQR, 20.2 ms, exceeded its median, 18.2 ms),
a change the interval shows to be indistinguishable from none.
FLOPs come from `torch.utils.flop_counter` and count dense work: zeros in a weight do
not make a dense kernel cheaper, so an unstructured result keeps its FLOPs and the gain
shows up in `sparse_bytes` instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from .data import EvalData
from .embedding import embedding_metrics, is_embedding_model
from .errors import DataError, PruneScopeError
from .language import is_language_model, language_model_metrics
from .layout import channels_last_copy, channels_last_inputs
from .placement import Placement, float32_fallback, model_dtype, place_model, placement

logger = logging.getLogger(__name__)

CSR_INDEX_BYTES = 4
"""Bytes per index in the sparse-storage estimate (CSR with int32 column indices)."""
LATENCY_BUDGET_S = 20.0
"""Rounds of a latency measurement are cut to fit about this many seconds (after warm-up)."""
MIN_LATENCY_ROUNDS = 3
"""Fewest rounds timed, whatever the budget: a median and a spread need a few."""
MAX_LATENCY_ROUNDS = 200
"""Most rounds timed, however wide the speed-up intervals still are."""
SPEEDUP_PRECISION = 0.10
"""Rounds are added until each speed-up's interval half-width is within this fraction of the speed-up."""
SPEEDUP_CONFIDENCE = 0.95
"""Coverage of the speed-up interval."""
MEASURABLE_CHANGE = 0.05
"""A speed-up is significant only when its whole interval lies beyond ±5 % of 1. Two copies of one
model (the same work) measured in one run here differed by 2.2 % with an interval of 1.002–1.034:
memory placement and the like, which the rounds of one run cannot average out, so an interval that
merely excludes 1 would call such a copy "faster"."""
BOOTSTRAP_RESAMPLES = 2000
"""Bootstrap resamples of the rounds behind each interval (seeded, so a result is reproducible)."""

BlockTimer = Callable[[nn.Module, torch.Tensor, int, int, str], np.ndarray]
"""`(model, inputs, number, threads, device) -> seconds of each` of `number` back-to-back forward passes."""


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run `model` in eval mode and restore its previous mode afterwards."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def model_outputs(model: nn.Module, data: EvalData, batch_size: int = 256) -> torch.Tensor:
    """The model's outputs on every example, concatenated in float32 on the model's device
    (inference mode, no gradients); each batch is moved and cast to the model as it runs.
    A convolutional model on the CPU runs as a channels-last copy (`layout`: the same outputs, about
    twice as fast on digits_cnn), unless that copy fails where the model itself runs (a `view` of
    activations that assumes the default layout)."""
    outputs = []
    place = placement(model)
    faster = channels_last_copy(model)
    with eval_mode(model), torch.inference_mode():
        if faster is not None:
            faster.eval()
        for inputs, _ in data.batches(batch_size):
            placed = place.inputs(inputs)
            output = None
            if faster is not None:
                try:
                    output = faster(channels_last_inputs(placed))
                except Exception as error:  # e.g. a `view` of activations that assumes the default layout
                    logger.debug("The channels-last copy failed (%s); running the model as it is.", error)
                    faster = None
            if output is None:
                try:
                    output = model(placed)
                except Exception as error:  # a shape or dtype mismatch raised deep inside the model
                    raise DataError(
                        f"The model cannot run on inputs of shape {tuple(inputs.shape)}: {error}"
                    ) from error
            if isinstance(output, (tuple, list)):
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise DataError(f"The model returned {type(output).__name__}, not a tensor.")
            outputs.append(output.float())
    return torch.cat(outputs)


def evaluate(
    model: nn.Module,
    data: EvalData,
    reference: nn.Module | torch.Tensor | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Score `model` on `data`.

    With labels: `accuracy` (top-1) and cross-entropy `loss` for class labels, or
    mean-squared `loss` for float targets. With `reference` (the original model, or its
    precomputed outputs): `agreement` (share of examples whose top-1 prediction is
    unchanged) and `cosine` (mean cosine similarity of the output vectors), which need
    no labels at all.

    An embedding model (see `embedding.is_embedding_model`) gets embedding figures
    instead: `paraphrase_accuracy` when the labels are paraphrase group ids, and with
    `reference` the mean `cosine` and `retrieval_agreement` (same nearest neighbour).
    A causal language model (see `language.is_language_model`) gets `perplexity` and `loss`
    on its token ids, and with `reference` next-token `agreement` and `cosine` per position.
    """
    outputs = model_outputs(model, data, batch_size)
    metrics: dict[str, float] = {"examples": float(len(data))}
    labels = None if data.labels is None else data.labels.to(outputs.device)
    reference_outputs = _reference_outputs(reference, data, batch_size)
    if reference_outputs is not None:
        reference_outputs = reference_outputs.to(outputs.device)
    if is_embedding_model(model):
        return metrics | embedding_metrics(outputs, labels, reference_outputs)
    if is_language_model(model):
        return metrics | language_model_metrics(outputs, data.inputs.to(outputs.device), reference_outputs)
    if labels is not None:
        metrics.update(_label_metrics(outputs, labels))
    if reference_outputs is not None:
        metrics.update(fidelity(outputs, reference_outputs))
    return metrics


def _reference_outputs(
    reference: nn.Module | torch.Tensor | None, data: EvalData, batch_size: int
) -> torch.Tensor | None:
    if reference is None or isinstance(reference, torch.Tensor):
        return reference
    return model_outputs(reference, data, batch_size)


def _label_metrics(outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    if labels.dtype.is_floating_point:
        if outputs.shape != labels.shape:
            labels = labels.reshape(outputs.shape)
        return {"loss": float(F.mse_loss(outputs, labels.float()))}
    if outputs.dim() != 2:
        raise DataError(
            f"Class labels need outputs of shape (examples, classes); the model gives {tuple(outputs.shape)}."
        )
    labels = labels.long().reshape(-1)
    if int(labels.min()) < 0 or int(labels.max()) >= outputs.shape[1]:
        raise DataError(
            f"Labels run from {int(labels.min())} to {int(labels.max())} but the model has "
            f"{outputs.shape[1]} outputs; labels must be class indices 0…{outputs.shape[1] - 1}."
        )
    return {
        "accuracy": float((outputs.argmax(dim=1) == labels).float().mean()),
        "loss": float(F.cross_entropy(outputs, labels)),
    }


def fidelity(outputs: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """How closely `outputs` follow `reference`: top-1 agreement and mean cosine similarity."""
    if outputs.shape != reference.shape:
        raise DataError(
            f"Outputs of shape {tuple(outputs.shape)} cannot be compared with reference outputs "
            f"of shape {tuple(reference.shape)}."
        )
    flat, ref_flat = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    result = {"cosine": float(F.cosine_similarity(flat, ref_flat, dim=1).mean())}
    if flat.shape[1] > 1:
        result["agreement"] = float((flat.argmax(dim=1) == ref_flat.argmax(dim=1)).float().mean())
    return result


def count_flops(model: nn.Module, example_input: torch.Tensor) -> int | None:
    """FLOPs of one forward pass on `example_input` (a multiply-add counts as 2).

    None when the model cannot be run under the FLOP counter (e.g. some TorchScript).
    """
    counter = FlopCounterMode(display=False)
    example_input = placement(model).inputs(example_input)
    try:
        with eval_mode(model), torch.inference_mode(), counter:
            model(example_input)
    except Exception as error:  # the counter does not support every op or module type
        logger.info("FLOP counting failed for %s: %s", type(model).__name__, error)
        return None
    return int(counter.get_total_flops())


class _ByteCounter(io.RawIOBase):
    """A write-only sink that counts bytes, so serialized size costs no memory."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.size += len(data)
        return len(data)


def serialized_bytes(model: nn.Module) -> int:
    """Size of the model's `state_dict` as `torch.save` writes it."""
    sink = _ByteCounter()
    torch.save(model.state_dict(), sink)
    return sink.size


def sparse_bytes(model: nn.Module) -> int:
    """Estimated storage with each prunable weight in CSR form where that is smaller.

    CSR keeps the non-zero values, one int32 column index per value and one int32 row
    pointer per row; other tensors stay dense. Counted like `dense_bytes`, so on a model
    without zeros the two are equal.
    """
    return _tensor_bytes(model, sparse=True)


def dense_bytes(model: nn.Module) -> int:
    """Bytes of the model's tensors (`state_dict`) stored dense, without any file format's overhead."""
    return _tensor_bytes(model, sparse=False)


def _tensor_bytes(model: nn.Module, sparse: bool) -> int:
    """Tensor storage of the `state_dict`; a tensor shared by several entries (tied weights) is counted once,
    as `torch.save` stores it once."""
    total, seen = 0, set()
    for tensor in model.state_dict().values():
        if tensor.numel() and tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        dense = tensor.numel() * tensor.element_size()
        if not sparse or tensor.dim() < 2 or not tensor.dtype.is_floating_point:
            total += dense
            continue
        nonzero = int(torch.count_nonzero(tensor))
        rows = tensor.shape[0]
        csr = nonzero * (tensor.element_size() + CSR_INDEX_BYTES) + (rows + 1) * CSR_INDEX_BYTES
        total += min(dense, csr)
    return total


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """`(params, nonzero_params)` over all parameters of the model."""
    params = nonzero = 0
    for parameter in model.parameters():
        params += parameter.numel()
        nonzero += int(torch.count_nonzero(parameter.detach()))
    return params, nonzero


def model_summary(
    model: nn.Module, example_input: torch.Tensor, *, sizes: bool = True
) -> dict[str, float | int | None]:
    """Parameters, non-zero parameters, FLOPs per forward on `example_input`, and bytes.

    `size_bytes` is the size of the saved file (`torch.save` of the state_dict);
    `dense_bytes` the tensors alone, and `sparse_bytes` the same tensors with sparse
    weights in CSR form, which is where unstructured pruning pays off. Without `sizes`,
    the three sizes are left out (serialising and converting every weight is most of the
    time on a model pruned at every slider step).
    """
    params, nonzero = count_parameters(model)
    summary: dict[str, float | int | None] = {
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1.0 - nonzero / params if params else 0.0,
        "flops": count_flops(model, example_input),
    }
    if sizes:
        summary.update(
            size_bytes=serialized_bytes(model), dense_bytes=dense_bytes(model), sparse_bytes=sparse_bytes(model)
        )
    return summary


@dataclass(frozen=True)
class SpeedupInterval:
    """A speed-up (the baseline's median time ÷ the model's) and its bootstrap interval.

    `significant` when the whole interval lies beyond ±`margin` of 1: only then did the
    model measurably get faster (`low > 1 + margin`) or slower (`high < 1 / (1 + margin)`);
    otherwise there is no measurable change.
    """

    speedup: float
    low: float
    high: float
    margin: float = MEASURABLE_CHANGE

    @property
    def significant(self) -> bool:
        return self.low > 1.0 + self.margin or self.high < 1.0 / (1.0 + self.margin)

    @property
    def relative_half_width(self) -> float:
        """Half the interval's width as a fraction of the speed-up."""
        return (self.high - self.low) / 2 / self.speedup


def speedup_interval(
    baseline_ms: np.ndarray | list[float],
    model_ms: np.ndarray | list[float],
    *,
    confidence: float = SPEEDUP_CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    margin: float = MEASURABLE_CHANGE,
) -> SpeedupInterval:
    """Speed-up of a model over the baseline with a paired bootstrap interval.

    `baseline_ms[i]` and `model_ms[i]` are the two models' times in round `i` of one
    interleaved run; resampling whole rounds keeps each pair together, so a slow spell of
    the machine that hit both stays in the same resample. The speed-up is the ratio of
    the medians; the interval is the percentile interval of that ratio over `resamples`
    resamples drawn with a generator seeded by `seed`; `margin` sets the band around 1
    that counts as no measurable change (see `MEASURABLE_CHANGE`).
    """
    baseline, model = np.asarray(baseline_ms, dtype=float), np.asarray(model_ms, dtype=float)
    if baseline.shape != model.shape or baseline.ndim != 1 or len(baseline) == 0:
        raise PruneScopeError("A speed-up interval needs the same number of rounds (at least one) for both models.")
    speedup = float(np.median(baseline) / np.median(model))
    picks = np.random.default_rng(seed).integers(0, len(baseline), size=(resamples, len(baseline)))
    ratios = np.median(baseline[picks], axis=1) / np.median(model[picks], axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return SpeedupInterval(speedup=speedup, low=float(min(low, speedup)), high=float(max(high, speedup)), margin=margin)


@dataclass(frozen=True)
class LatencyResult:
    """Latency of several models measured in one interleaved run.

    `table` has one row per model (median, IQR, speed-up vs the first model with its
    interval `speedup_low`…`speedup_high` and whether it is `significant`, i.e. wholly
    beyond ±`MEASURABLE_CHANGE` of 1);
    `samples` one row per timed block (model, round, ms per call) for plots.
    `precise` says whether every interval reached ±`precision` of its speed-up (at
    `confidence`) before the time budget or `MAX_LATENCY_ROUNDS` ended the run.
    """

    table: pd.DataFrame
    samples: pd.DataFrame
    confidence: float = SPEEDUP_CONFIDENCE
    precision: float = SPEEDUP_PRECISION
    precise: bool = True


def batch_of(example_input: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """`example_input` repeated (or cut) along the first dimension to `batch_size` rows."""
    if batch_size is None or batch_size == example_input.shape[0]:
        return example_input
    if batch_size < 1:
        raise DataError(f"Batch size must be at least 1, got {batch_size}.")
    repeats = -(-batch_size // example_input.shape[0])
    return example_input.repeat(repeats, *([1] * (example_input.dim() - 1)))[:batch_size]


def available_devices() -> list[str]:
    """Devices models can be placed and timed on here: always "cpu", "cuda" and "mps" when present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def checked_device(device: str | torch.device) -> torch.device:
    """`device` as a `torch.device` when it is available here; else a PruneScopeError naming those that are."""
    try:
        parsed = torch.device(device)
    except RuntimeError:  # a name torch does not know, e.g. "tpu"
        parsed = None
    if parsed is None or parsed.type not in available_devices():
        raise PruneScopeError(f"Device {device!r} is not available here; use one of {available_devices()}.")
    return parsed


def measure_latency(
    models: Mapping[str, nn.Module],
    example_input: torch.Tensor,
    *,
    batch_size: int | None = None,
    threads: int = 1,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    rounds: int = 15,
    block_seconds: float = 0.02,
    max_seconds: float = LATENCY_BUDGET_S,
    max_rounds: int = MAX_LATENCY_ROUNDS,
    precision: float = SPEEDUP_PRECISION,
    timer: BlockTimer | None = None,
) -> LatencyResult:
    """Time each model's forward pass, interleaved, after a warm-up.

    Each round times one block of calls per model (about `block_seconds` long), the
    order of models rotating between rounds; each block gives its median time per call,
    and the blocks of all rounds give the median and the inter-quartile range. `rounds`
    are timed first (cut to no fewer than `MIN_LATENCY_ROUNDS` when they would take
    longer than `max_seconds`, so a model whose forward pass takes seconds is measured
    in bounded time); then rounds are added while a speed-up's interval is wider than
    ±`precision` of it and the budget (timed seconds) and `max_rounds` allow. The
    table's `rounds` column says how many ran. Models on another device or in another
    `dtype` (e.g. float16 on a GPU; None keeps each model's own) are timed as copies;
    the given models are not moved or changed. Where a model cannot run in `dtype` on
    `device` it is timed in float32 instead, and the table's `dtype` column says which
    dtype each model ran in. `timer` replaces the clock (tests feed it known times).
    """
    if not models:
        raise PruneScopeError("Give at least one model to measure.")
    checked_device(device)
    if rounds < 1 or threads < 1 or max_rounds < 1:
        raise PruneScopeError("Rounds and threads must be at least 1.")
    timer = timer or _call_seconds
    batch = batch_of(example_input, batch_size)
    names = list(models)
    with contextlib.ExitStack() as stack:
        ready, inputs = {}, {}
        for name in names:
            model, inputs[name] = _timed_copy(models[name], batch, torch.device(device), dtype)
            ready[name] = stack.enter_context(eval_mode(model))
        with torch.inference_mode():
            numbers, per_round = _warm_up(ready, inputs, threads, device, block_seconds, timer)
            rounds = min(rounds, max_rounds, max(MIN_LATENCY_ROUNDS, int(max_seconds / per_round)))
            session = _TimingSession(ready, inputs, numbers, threads, device, timer)
            session.run(rounds)
            while (
                len(names) > 1
                and session.rounds < max_rounds
                and session.seconds + per_round <= max_seconds
                and not _precise(session.samples(), names, precision)
            ):
                session.run(min(max(MIN_LATENCY_ROUNDS, session.rounds // 2), max_rounds - session.rounds))
    samples = session.samples()
    table = _latency_table(samples, names, batch.shape[0], threads, device)
    table["dtype"] = [str(model_dtype(ready[name])).removeprefix("torch.") for name in names]
    return LatencyResult(table=table, samples=samples, precision=precision, precise=_precise(samples, names, precision))


def _warm_up(
    ready: dict[str, nn.Module],
    inputs: dict[str, torch.Tensor],
    threads: int,
    device: str,
    block_seconds: float,
    timer: BlockTimer,
) -> tuple[dict[str, int], float]:
    """Run each model once or twice and choose its calls per block; returns them and the seconds per round."""
    numbers, per_round = {}, 0.0
    for name, model in ready.items():
        first = float(np.mean(timer(model, inputs[name], 1, threads, device)))
        numbers[name] = max(1, int(block_seconds / first))
        if numbers[name] > 1:
            first = float(np.mean(timer(model, inputs[name], numbers[name], threads, device)))
        per_round += first * numbers[name]
    return numbers, per_round


class _TimingSession:
    """Interleaved rounds of timed blocks, the order of models rotating between rounds."""

    def __init__(
        self,
        ready: dict[str, nn.Module],
        inputs: dict[str, torch.Tensor],
        numbers: dict[str, int],
        threads: int,
        device: str,
        timer: BlockTimer,
    ) -> None:
        self.ready, self.inputs, self.numbers = ready, inputs, numbers
        self.threads, self.device, self.timer = threads, device, timer
        self.names = list(ready)
        self.records: list[dict[str, object]] = []
        self.rounds = 0
        self.seconds = 0.0

    def run(self, count: int) -> None:
        """Time `count` more rounds."""
        for _ in range(count):
            shift = self.rounds % len(self.names)
            for name in self.names[shift:] + self.names[:shift]:
                calls = self.timer(self.ready[name], self.inputs[name], self.numbers[name], self.threads, self.device)
                self.seconds += float(np.sum(calls))
                self.records.append({"model": name, "round": self.rounds, "ms": float(np.median(calls)) * 1e3})
            self.rounds += 1

    def samples(self) -> pd.DataFrame:
        return pd.DataFrame(self.records)


def _paired_times(samples: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One row per round, one column per model (ms per call)."""
    return samples.pivot(index="round", columns="model", values="ms")[names]


def _intervals(samples: pd.DataFrame, names: list[str]) -> dict[str, SpeedupInterval]:
    paired = _paired_times(samples, names)
    baseline = paired[names[0]].to_numpy()
    return {name: speedup_interval(baseline, paired[name].to_numpy()) for name in names[1:]}


def _precise(samples: pd.DataFrame, names: list[str], precision: float) -> bool:
    return all(interval.relative_half_width <= precision for interval in _intervals(samples, names).values())


def _timed_copy(
    model: nn.Module, batch: torch.Tensor, device: torch.device, dtype: torch.dtype | None
) -> tuple[nn.Module, torch.Tensor]:
    """The model to time (itself when it already sits on `device` in `dtype`, else a copy) and its inputs.

    A copy that cannot run in `dtype` on `device` (no kernel for an op) is timed in float32 instead.
    """
    placed = place_model(model, device, dtype) if _needs_copy(model, device, dtype) else model
    inputs = Placement(device, model_dtype(placed)).inputs(batch)
    if dtype is None or dtype == torch.float32:
        return placed, inputs
    try:
        with eval_mode(placed), torch.inference_mode():
            placed(inputs)
    except (RuntimeError, NotImplementedError):
        float32_fallback(f"Timing {type(model).__name__}", dtype, device)
        placed = place_model(model, device, torch.float32)
        inputs = Placement(device, torch.float32).inputs(batch)
    return placed, inputs


def _needs_copy(model: nn.Module, device: torch.device, dtype: torch.dtype | None) -> bool:
    here = placement(model)
    same_device = here.device.type == device.type and (device.index is None or here.device == device)
    return not same_device or (dtype is not None and here.dtype != dtype)


def _synchronize(device: str) -> None:
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


def _call_seconds(model: nn.Module, inputs: torch.Tensor, number: int, threads: int, device: str) -> np.ndarray:
    """Seconds of each of `number` back-to-back forward passes on `threads` torch threads.

    Each call is timed on its own on the CPU, so a block's median ignores the calls that
    another process pre-empted (on a busy 2-core machine the block means of a 1.7 ms
    digits_cnn call ranged up to 22 ms); on CUDA the block is timed as a whole, between two synchronisations,
    and each call gets the mean. Timed directly, as `torch.utils.benchmark.Timer` does
    inside, but without the two hidden warm-up calls `Timer.timeit` makes before every
    block: on a model whose forward pass takes seconds they tripled the time a measurement took.
    """
    with benchmark.utils.common.set_torch_threads(threads):
        if torch.device(device).type != "cpu":
            _synchronize(device)
            start = time.perf_counter()
            for _ in range(number):
                model(inputs)
            _synchronize(device)
            return np.full(number, max(time.perf_counter() - start, 1e-9) / number)
        seconds = np.empty(number)
        for index in range(number):
            start = time.perf_counter()
            model(inputs)
            seconds[index] = time.perf_counter() - start
        return np.maximum(seconds, 1e-9)


def _latency_table(samples: pd.DataFrame, names: list[str], batch: int, threads: int, device: str) -> pd.DataFrame:
    rows = []
    intervals = _intervals(samples, names)
    for name in names:
        times = samples.loc[samples["model"] == name, "ms"].to_numpy()
        q25, median, q75 = np.percentile(times, [25, 50, 75])
        interval = intervals.get(name, SpeedupInterval(1.0, 1.0, 1.0))
        rows.append(
            {
                "model": name,
                "median_ms": median,
                "iqr_ms": q75 - q25,
                "min_ms": times.min(),
                "speedup_low": interval.low,
                "speedup_high": interval.high,
                "significant": interval.significant,
            }
        )
    table = pd.DataFrame(rows)
    table.insert(4, "speedup", table["median_ms"].iloc[0] / table["median_ms"])
    table["batch_size"] = batch
    table["threads"] = threads
    table["device"] = device
    table["rounds"] = len(samples) // len(names)
    return table


def compare_latency(
    models: Mapping[str, nn.Module],
    example_input: torch.Tensor,
    *,
    batch_size: int | None = None,
    threads: int = 1,
    device: str = "cpu",
    rounds: int = 15,
    max_seconds: float = LATENCY_BUDGET_S,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame:
    """Interleaved latency table: one row per model with median_ms, iqr_ms and speedup
    relative to the first model, the speed-up's interval (`speedup_low`, `speedup_high`)
    and whether it lies wholly beyond ±5 % of 1 (`significant`; otherwise there is no
    measurable change),
    plus the batch size, thread count, device and each model's dtype (`dtype=torch.float16`
    times half-precision copies, e.g. on a GPU)."""
    return measure_latency(
        models,
        example_input,
        batch_size=batch_size,
        threads=threads,
        device=device,
        dtype=dtype,
        rounds=rounds,
        max_seconds=max_seconds,
    ).table


def device_memory(device: str | torch.device) -> dict[str, int | None] | None:
    """Memory of an accelerator in bytes: `allocated` and `reserved` by this process, `peak`
    allocated since the last reset (None where torch does not track it, on MPS), and the
    device's `free` and `total`; None for the CPU (or a device torch reports nothing for)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(device)
        return {
            "allocated": torch.cuda.memory_allocated(device),
            "reserved": torch.cuda.memory_reserved(device),
            "peak": torch.cuda.max_memory_allocated(device),
            "free": free,
            "total": total,
        }
    if device.type == "mps" and torch.backends.mps.is_available():
        allocated = torch.mps.current_allocated_memory()
        return {
            "allocated": allocated,
            "reserved": torch.mps.driver_allocated_memory(),
            "peak": None,
            "free": max(torch.mps.recommended_max_memory() - allocated, 0),
            "total": torch.mps.recommended_max_memory(),
        }
    return None
