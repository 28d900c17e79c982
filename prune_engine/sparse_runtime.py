"""Run very sparse Linear layers on sparse kernels, so unstructured pruning can pay off in time.

Zeros do not make a dense matrix multiply faster. A CSR weight does, once enough of it is
zero and the layer is large enough: on this project's CPU a 3072×768 layer (128 tokens) ran
at 0.5–0.6× dense speed at 50 % sparsity, ~1× at 70 %, 2–3.6× at 90 % and 7–14× at 95 %,
hence the default threshold of 90 %. Sparsity alone does not decide it: on a small layer the
fixed cost of a call dominates. digits_mlp's 128×256 layer at 95 %, one thread: at batch 1 the
CSR product took 5.4 µs and the dense one 5.3 µs (a CSR product with a single non-zero, 3.9 µs)
inside an 8–9 µs `nn.Linear` call; at batch 32, 16 µs against 29 µs. So `sparse_decisions` times
each candidate layer against its sparse form at conversion (batch 1 and 32 by default, cached
by shape, non-zeros, dtype, device and threads) and puts it on the sparse kernel from the batch
size where that is measurably faster. `sparse_runtime` returns the copy; `sparse_decisions` and
`sparse_runtime_report` say per layer what was done and why, in typed fields.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

from .errors import SparseRuntimeError, UnsupportedModelError
from .latency import LAYER_BLOCK_SECONDS, LAYER_CACHE_SIZE, LAYER_TIMING_BLOCKS, _timed_forward
from .metrics import MEASURABLE_CHANGE, _call_seconds

SPARSE_DTYPES = (torch.float32, torch.float64)
"""Weight dtypes the CSR matrix multiply handles on every device."""
FUSED_PARENTS = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
"""Modules that read their Linear layers' weights directly (fused kernels), so those layers must stay dense."""
DECISION_BATCH_SIZES = (1, 32)
"""Batch sizes a candidate layer is timed at: one request, and a batch."""

LayerTimer = Callable[[nn.Module, nn.Module, torch.Tensor, int], tuple[np.ndarray, np.ndarray]]
"""(dense layer, sparse layer, input, threads) -> seconds per call of each in paired blocks; tests pass known times."""
WIN_QUANTILE = 0.25
"""A layer wins at a batch size when this quantile of its paired block ratios (dense ÷ sparse) shows the
measurable change: one block in four may be unlucky, and a 5 % edge measured once is not taken as real."""

_layer_times: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()


class KeptDense(StrEnum):
    """Why `sparse_runtime` left a Linear layer dense."""

    FUSED_KERNEL = "fused_kernel"
    """Its parent reads the weight directly in a fused kernel (attention, transformer layers)."""
    DTYPE = "dtype"
    """Its weight dtype has no CSR matrix multiply (float16, bfloat16, integers)."""
    BELOW_MIN_SPARSITY = "below_min_sparsity"
    """It has fewer zeros than `min_sparsity`."""
    NOT_FASTER = "not_faster"
    """Timed at conversion, its sparse form was not measurably faster at the largest batch size timed."""


@dataclass(frozen=True)
class SparseDecision:
    """What `sparse_runtime` does with one Linear layer, and the timings behind it.

    `sparse_from_batch`: the sparse kernel runs on calls of at least this many rows (1: on every
    call; None: the layer stays dense, `kept_dense_because` says why). `dense_us`/`sparse_us`:
    median µs per call by batch size, timed at conversion (empty when the layer was not timed);
    `speedup_low`: the lower quartile of the paired block ratios dense ÷ sparse, which decides.
    """

    layer: str
    in_features: int
    out_features: int
    sparsity: float
    sparse_from_batch: int | None
    kept_dense_because: KeptDense | None
    dense_us: dict[int, float] = field(default_factory=dict)
    sparse_us: dict[int, float] = field(default_factory=dict)
    speedup_low: dict[int, float] = field(default_factory=dict)
    reason: str = ""

    @property
    def converted(self) -> bool:
        return self.sparse_from_batch is not None


class SparseLinear(nn.Module):
    """A Linear layer whose weight is kept in CSR form and multiplied with a sparse kernel.

    The CSR parts and the bias are stored as ordinary buffers (`crow_indices`, `col_indices`,
    `values`, `bias`) so the module copies, moves and saves like any other (a CSR tensor itself
    cannot be deep-copied); the sparse matrix is a view of them, assembled at the first call.
    Indices are int32 where they fit: the product ran ~20–50 % faster than with int64. The
    forward pass reads tensors kept on the instance, not through module attributes (each lookup
    costs a fraction of a µs, and a small layer's whole product costs a few).

    With `sparse_from_batch` above 1 the layer also keeps its dense `weight` (a Parameter, as in
    `nn.Linear`, so that path costs what the dense layer did) for calls of fewer rows: on a small
    layer the sparse kernel can lose at one row and win at 32.
    """

    def __init__(self, linear: nn.Linear, sparse_from_batch: int = 1) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.sparse_from_batch = sparse_from_batch
        weight = linear.weight
        dense = (
            nn.Parameter(weight.detach().clone(), requires_grad=weight.requires_grad) if sparse_from_batch > 1 else None
        )
        self.register_parameter("weight", dense)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            csr = linear.weight.detach().to_sparse_csr()
        index_dtype = torch.int32 if csr.values().numel() < 2**31 else torch.int64
        self.register_buffer("crow_indices", csr.crow_indices().to(index_dtype))
        self.register_buffer("col_indices", csr.col_indices().to(index_dtype))
        self.register_buffer("values", csr.values().clone())
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self._kernel: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None = None

    def weight_csr(self) -> torch.Tensor:
        """The weight as a sparse CSR tensor of shape (out_features, in_features), a view of the buffers."""
        return self._assembled()[0]

    def _assembled(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The CSR weight, the bias and the bias as a column, all views of the buffers, made once."""
        if self._kernel is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                weight = torch.sparse_csr_tensor(
                    self.crow_indices,
                    self.col_indices,
                    self.values,
                    size=(self.out_features, self.in_features),
                    check_invariants=False,
                )
            bias = self.bias
            self._kernel = (weight, bias, None if bias is None else bias.unsqueeze(1))
        return self._kernel

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """One input row: a sparse matrix-vector product. More rows: the sparse weight times the rows as
        columns, returned as a transposed view; element-wise layers keep that layout, so the next
        SparseLinear reads its input's columns without a copy (128×256 at batch 32: 8 µs against 16 µs).
        Fewer rows than `sparse_from_batch`: the dense product."""
        weight, bias, bias_column = self._kernel or self._assembled()
        flat = inputs if inputs.dim() == 2 else inputs.reshape(-1, self.in_features)
        if flat.shape[0] < self.sparse_from_batch:
            return F.linear(inputs, self.weight, bias)
        if flat.shape[0] == 1:
            row = flat[0]
            output = (torch.mv(weight, row) if bias is None else torch.addmv(bias, weight, row)).unsqueeze(0)
        elif bias_column is None:
            output = torch.mm(weight, flat.T).T
        else:
            output = torch.addmm(bias_column, weight, flat.T).T
        return output if inputs.dim() == 2 else output.reshape(*inputs.shape[:-1], self.out_features)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        """Moving or casting the buffers (`.to`, `.cuda`, `.double`) makes new tensors: assemble again."""
        self._kernel = None
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, object]:
        """A CSR tensor cannot be copied or pickled; the buffers are, and the views are assembled again."""
        state = super().__getstate__()
        return {**state, "_kernel": None}

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"nonzero={self.values.numel()}, bias={self.bias is not None}, sparse_from_batch={self.sparse_from_batch}"
        )


def sparse_decisions(
    model: nn.Module,
    min_sparsity: float = 0.9,
    *,
    batch_sizes: Sequence[int] = DECISION_BATCH_SIZES,
    threads: int = 1,
    timer: LayerTimer | None = None,
) -> list[SparseDecision]:
    """For each Linear layer of `model`: whether `sparse_runtime` puts it on a sparse kernel, and why.

    A layer of a supported dtype, outside fused modules and at least `min_sparsity` zero is timed
    against its `SparseLinear` on `threads` threads at each of `batch_sizes` (random rows on its
    device; cached). It runs sparse from the smallest batch size at which the sparse form was at
    least `MEASURABLE_CHANGE` faster (in three paired blocks of four, `WIN_QUANTILE`) there and at
    every larger one timed (from 1 row when that is the smallest timed), dense below; dense
    throughout when it was not faster at the largest. The rows are timed row-major, the layout a
    dense layer hands on, so a layer that follows a converted one (and gets its transposed
    output) runs faster still than timed.
    """
    _check_min_sparsity(min_sparsity)
    _check_batch_sizes(batch_sizes, threads)
    parents = dict(model.named_modules())
    decisions = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or not name:
            continue
        weight = module.weight.detach()
        sparsity = 1.0 - int(torch.count_nonzero(weight)) / max(weight.numel(), 1)
        parent = parents[name.rpartition(".")[0]]
        untimed = _kept_dense_untimed(parent, weight.dtype, sparsity, min_sparsity)
        if untimed is None:
            decisions.append(_timed_decision(name, module, sparsity, batch_sizes, threads, timer))
        else:
            cause, reason = untimed
            decisions.append(
                SparseDecision(name, module.in_features, module.out_features, sparsity, None, cause, reason=reason)
            )
    return decisions


def sparse_runtime_report(
    model: nn.Module,
    min_sparsity: float = 0.9,
    *,
    batch_sizes: Sequence[int] = DECISION_BATCH_SIZES,
    threads: int = 1,
    timer: LayerTimer | None = None,
) -> pd.DataFrame:
    """`sparse_decisions` as a table: `layer`, `in_features`, `out_features`, `sparsity`, `converted`,
    `sparse_from_batch`, `kept_dense_because` (a `KeptDense`, None when converted), `dense_us_b<n>`,
    `sparse_us_b<n>` and `speedup_low_b<n>` for each batch size timed (NaN where not timed), and
    `reason`, a sentence for people."""
    decisions = sparse_decisions(model, min_sparsity, batch_sizes=batch_sizes, threads=threads, timer=timer)
    timed = [
        (f"{kind}_b{batch}", kind, batch) for batch in batch_sizes for kind in ("dense_us", "sparse_us", "speedup_low")
    ]
    rows = [
        {
            "layer": decision.layer,
            "in_features": decision.in_features,
            "out_features": decision.out_features,
            "sparsity": decision.sparsity,
            "converted": decision.converted,
            "sparse_from_batch": decision.sparse_from_batch,
            "kept_dense_because": decision.kept_dense_because,
            **{column: getattr(decision, kind).get(batch, np.nan) for column, kind, batch in timed},
            "reason": decision.reason,
        }
        for decision in decisions
    ]
    columns = [
        "layer",
        "in_features",
        "out_features",
        "sparsity",
        "converted",
        "sparse_from_batch",
        "kept_dense_because",
    ]
    columns += [column for column, _, _ in timed] + ["reason"]
    return pd.DataFrame(rows, columns=columns).astype({"converted": bool})


def sparse_runtime(
    model: nn.Module,
    min_sparsity: float = 0.9,
    *,
    batch_sizes: Sequence[int] = DECISION_BATCH_SIZES,
    threads: int = 1,
    timer: LayerTimer | None = None,
) -> nn.Module:
    """A copy of `model` whose Linear layers with at least `min_sparsity` zero weights, where their
    sparse form timed faster (`sparse_decisions`), run on CSR sparse kernels (`SparseLinear`); the
    outputs stay equal to the dense model's (up to float rounding) and `model` is untouched.
    `sparse_runtime_report` gives the same decisions as a table (the timings are cached).
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise UnsupportedModelError(
            "A TorchScript model's layers cannot be swapped for sparse ones; load the Python model instead."
        )
    decisions = sparse_decisions(model, min_sparsity, batch_sizes=batch_sizes, threads=threads, timer=timer)
    try:
        runtime = copy.deepcopy(model)
    except Exception as error:  # deepcopy runs the model's own __deepcopy__/__reduce__ code
        raise UnsupportedModelError(f"The model cannot be copied for the sparse runtime: {error}") from error
    for decision in decisions:
        if decision.converted:
            parent_name, _, child = decision.layer.rpartition(".")
            parent = runtime.get_submodule(parent_name)
            setattr(parent, child, SparseLinear(parent.get_submodule(child), decision.sparse_from_batch))
    return runtime


def _kept_dense_untimed(
    parent: nn.Module, dtype: torch.dtype, sparsity: float, min_sparsity: float
) -> tuple[KeptDense, str] | None:
    """Why a layer stays dense without being timed, or None when it is a candidate."""
    if isinstance(parent, FUSED_PARENTS):
        return KeptDense.FUSED_KERNEL, f"{type(parent).__name__} reads this layer's weight directly in a fused kernel"
    if dtype not in SPARSE_DTYPES:
        return KeptDense.DTYPE, f"sparse kernels here take float32 or float64 weights, not {dtype}"
    if sparsity < min_sparsity:
        return KeptDense.BELOW_MIN_SPARSITY, f"sparsity {sparsity:.1%} is below the threshold {min_sparsity:.0%}"
    return None


def _timed_decision(
    name: str, linear: nn.Linear, sparsity: float, batch_sizes: Sequence[int], threads: int, timer: LayerTimer | None
) -> SparseDecision:
    """Time `linear` against its sparse form at each batch size; convert where it is measurably faster at all."""
    sparse = SparseLinear(linear)
    weight = linear.weight
    dense_us, sparse_us, speedup_low = {}, {}, {}
    for batch in batch_sizes:
        rows = torch.randn(batch, linear.in_features, dtype=weight.dtype, device=weight.device)
        dense_s, sparse_s = (timer or _cached_times)(linear, sparse, rows, threads)
        dense_us[batch], sparse_us[batch] = float(np.median(dense_s)) * 1e6, float(np.median(sparse_s)) * 1e6
        speedup_low[batch] = float(np.quantile(np.asarray(dense_s) / np.asarray(sparse_s), WIN_QUANTILE))
    timings = ", ".join(f"{sparse_us[b]:.1f} µs sparse vs {dense_us[b]:.1f} µs dense at batch {b}" for b in batch_sizes)
    timings += f", {threads} thread(s)"
    sparse_from = _sparse_from_batch(speedup_low)
    if sparse_from is None:
        reason = (
            f"the sparse kernel was not at least {MEASURABLE_CHANGE:.0%} faster at batch {max(batch_sizes)} ({timings})"
        )
        cause = KeptDense.NOT_FASTER
    else:
        rows = "every call" if sparse_from == 1 else f"calls of {sparse_from} rows or more, dense below"
        reason, cause = f"sparse kernel on {rows} ({timings})", None
    return SparseDecision(
        name,
        linear.in_features,
        linear.out_features,
        sparsity,
        sparse_from,
        cause,
        dense_us,
        sparse_us,
        speedup_low,
        reason,
    )


def _sparse_from_batch(speedup_low: dict[int, float]) -> int | None:
    """The smallest timed batch size from which the sparse form wins at every larger one (1 when that is the
    smallest timed), or None when it does not win at the largest."""
    sparse_from = None
    for batch in sorted(speedup_low, reverse=True):
        if speedup_low[batch] < 1 / (1 - MEASURABLE_CHANGE):
            break
        sparse_from = batch
    return 1 if sparse_from == min(speedup_low) else sparse_from


def _cached_times(
    dense: nn.Module, sparse: SparseLinear, rows: torch.Tensor, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """`_interleaved_times`, cached by what speed depends on: shape, non-zeros, bias, dtype, device, rows, threads."""
    key = (
        dense.in_features,
        dense.out_features,
        sparse.values.numel(),
        sparse.bias is not None,
        rows.dtype,
        rows.device,
        rows.shape[0],
        threads,
    )
    if key in _layer_times:
        _layer_times.move_to_end(key)
        return _layer_times[key]
    times = _interleaved_times(dense, sparse, rows, threads)
    _layer_times[key] = times
    while len(_layer_times) > LAYER_CACHE_SIZE:
        _layer_times.popitem(last=False)
    return times


def _interleaved_times(
    dense: nn.Module, sparse: nn.Module, rows: torch.Tensor, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each layer's median seconds per call in each of paired blocks taking turns, after two warm-up calls each.

    Each call is timed on its own (`metrics._call_seconds`): on a busy 2-core machine a 5 ms block
    of a 10 µs layer often holds one pre-emption, and block means flipped decisions between runs.
    """
    device = rows.device.type
    with torch.inference_mode():
        with benchmark.utils.common.set_torch_threads(threads):
            warm_up = [_timed_forward(layer, rows, device) for layer in (dense, sparse, dense, sparse)]
        number = max(1, int(LAYER_BLOCK_SECONDS / max(*warm_up[2:], 1e-9)))
        blocks: dict[nn.Module, list[float]] = {dense: [], sparse: []}
        for block in range(LAYER_TIMING_BLOCKS):
            for layer in (dense, sparse) if block % 2 == 0 else (sparse, dense):
                blocks[layer].append(float(np.median(_call_seconds(layer, rows, number, threads, device))))
    return np.array(blocks[dense]), np.array(blocks[sparse])


def _check_min_sparsity(min_sparsity: float) -> None:
    if isinstance(min_sparsity, bool) or not isinstance(min_sparsity, (int, float)) or not 0 < min_sparsity <= 1:
        raise SparseRuntimeError(
            f"min_sparsity must be a fraction above 0 and at most 1 (e.g. 0.9 for 90 % zeros), got {min_sparsity!r}."
        )


def _check_batch_sizes(batch_sizes: Sequence[int], threads: int) -> None:
    if not batch_sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise SparseRuntimeError(f"batch_sizes must be whole numbers of at least 1, e.g. (1, 32); got {batch_sizes!r}.")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SparseRuntimeError(f"threads must be a whole number of at least 1, got {threads!r}.")
