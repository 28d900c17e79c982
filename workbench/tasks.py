"""The Sensitivity page's long tasks as plain values: what a scan or a training asks for, and what it gave.

Requests are frozen and hashable, so they key the caches of the results; outcomes remember the
model they were made on, so a page can tell a result of the current model from a stale one.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

import prune_engine as pe
from prune_engine.language import is_language_model
from workbench.plans import criterion_label
from workbench.session import LoadedModel

SCAN_GRANULARITIES = {"unstructured": "Single weights", "channel": "Whole channels"}


@dataclass(frozen=True)
class ScanRequest:
    """What the scan settings ask for."""

    ratios: tuple[float, ...]
    granularity: str
    criterion: str
    layers: tuple[str, ...]
    executor: str
    recalibrate_bn: bool = False

    @property
    def jobs(self) -> int:
        return len(self.ratios) * len(self.layers)

    def describe(self) -> str:
        kind = SCAN_GRANULARITIES.get(self.granularity, self.granularity).lower()
        criterion = criterion_label(self.criterion)
        ratios = ", ".join(f"{ratio:.0%}" for ratio in self.ratios)
        batchnorm = batchnorm_words(self.recalibrate_bn)
        return f"{kind} · {criterion} · {batchnorm} · {len(self.layers)} layer(s) · ratios {ratios}"


def batchnorm_words(recalibrate_bn: bool) -> str:
    """The BatchNorm policy of a scan or plan, in words."""
    return "BatchNorm re-estimated" if recalibrate_bn else "BatchNorm statistics as trained"


@dataclass(frozen=True)
class ScanOutcome:
    """A finished scan of one model on its data."""

    fingerprint: str
    data_fingerprint: str
    request: ScanRequest
    table: pd.DataFrame
    ran_on: str


L1_LEARNING_RATE = 1e-2
"""Adam moves a weight by about lr per step whatever λ, so a visible effect in few epochs needs a large lr."""


RECOVERIES = {"fine_tune": "Fine-tuning on the labels", "distill": "Distillation from the original"}
"""How prune-in-steps wins accuracy back between steps."""


def training_problem(loaded: LoadedModel, recovery: str = "fine_tune") -> str | None:
    """Why this model cannot be trained here with `recovery` (distillation needs no labels), or None."""
    bundle = loaded.bundle
    if bundle.train_data is None:
        return (
            "Training needs training examples, and this model has none (the digits samples carry them; an "
            "uploaded model can bring a training file). It can be scanned and pruned, but not trained here."
        )
    if recovery == "distill":
        return None if bundle.eval_data is not None else "Training is judged on test examples; this model has none."
    labels = None if bundle.eval_data is None else bundle.eval_data.labels
    train_labels = bundle.train_data.labels
    if labels is None or train_labels is None or is_language_model(bundle.model) or pe.is_embedding_model(bundle.model):
        return (
            "Fine-tuning learns from class labels, which this model's data does not have: choose distillation "
            "from the original, which needs none."
        )
    return None


def default_recovery(loaded: LoadedModel) -> str:
    """Fine-tuning when the labels allow it, else distillation."""
    return "fine_tune" if training_problem(loaded, "fine_tune") is None else "distill"


def data_key(loaded: LoadedModel) -> str:
    """What training results depend on besides the model: its test and its training examples."""
    train = loaded.bundle.train_data
    return f"{loaded.data_fingerprint}:{None if train is None else train.fingerprint()}"


ESTIMATE_BATCH = 64
"""The batch one timed training step uses to estimate a training's duration (`fine_tune`'s default)."""


def seconds_per_epoch(model: nn.Module, train_data: pe.EvalData) -> float:
    """Estimated seconds of one training epoch: one Adam step on a batch, timed on a copy, times the batches.

    The first step is a warm-up; a rough figure, so a person knows before pressing a button.
    """
    working = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(working.parameters(), lr=1e-6)
    inputs, labels = next(iter(train_data.subset(ESTIMATE_BATCH).batches(ESTIMATE_BATCH)))
    device = next(working.parameters()).device
    inputs, labels = inputs.to(device), labels.to(device)
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        optimizer.zero_grad()
        nn.functional.cross_entropy(working(inputs), labels).backward()
        optimizer.step()
        timings.append(time.perf_counter() - start)
    return timings[-1] * -(-len(train_data) // ESTIMATE_BATCH)


@dataclass(frozen=True)
class IterativeRequest:
    plan_json: str
    steps: int
    schedule: str
    epochs: int
    lr: float
    recovery: str = "fine_tune"
    """How accuracy is won back between steps: `fine_tune` on the labels, or `distill` from the original."""

    def made_by(self) -> str:
        """How a result of this request was made, as the name of its run in the history."""
        how = RECOVERIES.get(self.recovery, self.recovery).lower()
        return f"Prune in steps: {self.steps} × {self.schedule}, {self.epochs} epoch(s) of {how} each, lr {self.lr:g}"


@dataclass(frozen=True)
class IterativeOutcome:
    fingerprint: str
    request: IterativeRequest
    result: pe.PruneResult


@dataclass(frozen=True)
class SparseRequest:
    target: str
    l1_lambda: float
    epochs: int

    def made_by(self) -> str:
        """How a pruned result of this training was made, as the name of its run in the history."""
        penalised = "BatchNorm γ" if self.target == "bn" else "weights"
        return f"Sparsity training: L1 λ={self.l1_lambda:g} on {penalised}, {self.epochs} epoch(s), then pruned"


@dataclass(frozen=True)
class SparseRun:
    """The same training without and with the L1 penalty (read-only models, shared)."""

    plain: nn.Module
    sparse: nn.Module
    sparse_fingerprint: str


@dataclass(frozen=True)
class SparseOutcome:
    fingerprint: str
    request: SparseRequest
    run: SparseRun


def slimming_plan(target: str, ratio: float) -> pe.PruningPlan:
    """How both trainings are pruned: single weights by magnitude, or channels by |γ| with BatchNorm re-estimated."""
    if target == "bn":
        return pe.PruningPlan(
            granularity="channel", criterion="bn_scale", scope="global", global_ratio=ratio, recalibrate_bn=True
        )
    return pe.PruningPlan(granularity="unstructured", criterion="l1", scope="global", global_ratio=ratio)
