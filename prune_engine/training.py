"""Training around pruning: fine-tune a pruned model, prune in steps, train for sparsity.

`fine_tune` recovers accuracy after pruning without undoing it: zeroed weights are held
at zero by `torch.nn.utils.prune` masks while training, and removed channels stay
removed because the pruned model's shapes are trained as they are. `iterative_prune`
reaches a plan's ratios in steps that follow a sparsity schedule, fine-tuning between
steps. `train_sparse` adds an L1 penalty that pushes weights (or BatchNorm scales,
"network slimming") towards zero, so that pruning afterwards removes less that matters.
`distill` recovers without labels: the pruned model learns to give the original's outputs
(its logits, or its embeddings) on the same inputs, so any model with inputs can recover.
Every function trains a copy; the model passed in is never changed.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from .calibration import has_batchnorm, recalibrate_batchnorm
from .data import EvalData
from .embedding import is_embedding_model
from .errors import DataError, InvalidPlanError, UnsupportedModelError
from .importance import ProgressFn
from .language import is_language_model
from .layers import LayerInfo, get_layer, prunable_layers
from .metrics import count_parameters, eval_mode, evaluate
from .placement import placement
from .plan import PruningPlan
from .pruning import PruneResult, apply_plan
from .report import layer_report

Penalty = Callable[[nn.Module], torch.Tensor]


def _agp(step: int, steps: int) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i − s_f)(1 − t/n)³ with s_i = 0, s_f = 1."""
    return 1.0 - (1.0 - step / steps) ** 3


def _linear(step: int, steps: int) -> float:
    return step / steps


def _one_shot(step: int, steps: int) -> float:
    return 1.0


SCHEDULES: dict[str, Callable[[int, int], float]] = {"agp": _agp, "linear": _linear, "one_shot": _one_shot}
"""Schedule name → fraction of the final ratios reached after step t of n (t = 1…n).
`agp` prunes fast first and slowly at the end, when fewer weights are left to spare;
`one_shot` prunes everything at step 1 and spends the other steps fine-tuning."""

SPARSE_TARGETS = ("weights", "bn")

DISTILL_LOSSES = ("auto", "logits", "embeddings")
"""logits: KL divergence between the original's and the pruned model's softened output
distributions (over the last dimension: classes, or next tokens); embeddings: 1 − cosine
similarity of the output vectors; auto: embeddings for an embedding model, else logits."""

RECOVERIES = ("fine_tune", "distill")
"""How `iterative_prune` recovers between steps: fine-tuning on labels, or distillation from the original."""


def schedule_fractions(schedule: str, steps: int) -> list[float]:
    """The fraction of the plan's ratios reached after each of `steps` steps; the last is 1."""
    if schedule not in SCHEDULES:
        raise InvalidPlanError(f"Unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidPlanError(f"The number of steps must be a whole number ≥ 1, got {steps!r}.")
    return [SCHEDULES[schedule](step, steps) for step in range(1, steps + 1)]


def fine_tune(
    model: nn.Module,
    train_data: EvalData,
    epochs: int = 3,
    lr: float = 1e-3,
    progress: ProgressFn | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> nn.Module:
    """A fine-tuned copy of `model` (Adam, cross-entropy on class labels).

    Weights that are zero in a prunable layer stay exactly zero, and the shapes of a
    channel-pruned model never change. BatchNorm statistics are re-estimated on
    `train_data` with the final weights. The result is a plain module (no masks, no
    hooks) in the same train/eval mode as `model`; the same seed gives the same result.
    """
    working = _plain_copy(model)
    return _train(working, train_data, epochs, lr, batch_size, seed, _cross_entropy(working, train_data), progress)


def train_sparse(
    model: nn.Module,
    train_data: EvalData,
    l1_lambda: float,
    epochs: int,
    target: str = "weights",
    lr: float = 1e-3,
    progress: ProgressFn | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> nn.Module:
    """A copy of `model` trained with `l1_lambda` × the L1 norm of its prunable weights
    (`target="weights"`, before unstructured pruning) or of its BatchNorm scales γ
    (`target="bn"`, network slimming, before channel pruning with `bn_scale`).

    Weights already zero stay zero, as in `fine_tune`. Adam moves each value by about
    `lr` per step at most, so the shrinkage is bounded by `lr` × steps whatever the
    strength: for a strong effect in few epochs raise `lr` (e.g. 1e-2) with `l1_lambda`.
    """
    if target not in SPARSE_TARGETS:
        raise InvalidPlanError(f"Unknown sparsity target {target!r}; choose weights or bn.")
    if l1_lambda < 0:
        raise InvalidPlanError(f"The L1 strength must be at least 0, got {l1_lambda}.")
    working = _plain_copy(model)
    if target == "bn":
        scales = [m.weight for m in working.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
        if not scales:
            raise UnsupportedModelError("This model has no BatchNorm scales to make sparse; use target='weights'.")
    else:
        scales = [get_layer(working, layer.name).weight for layer in prunable_layers(working)]
    tensors = [scale for scale in scales if scale.requires_grad]

    def penalty(_: nn.Module) -> torch.Tensor:
        return l1_lambda * sum(tensor.abs().sum() for tensor in tensors)

    loss = _cross_entropy(working, train_data, penalty)
    return _train(working, train_data, epochs, lr, batch_size, seed, loss, progress)


def distill(
    model: nn.Module,
    teacher: nn.Module,
    train_data: EvalData,
    epochs: int = 3,
    lr: float = 1e-4,
    loss: str = "auto",
    temperature: float = 2.0,
    progress: ProgressFn | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> nn.Module:
    """A copy of `model` trained to give `teacher`'s outputs on `train_data`'s inputs (labels unused).

    The usual recovery after pruning when there are no labels (an embedding model, an uploaded
    model with inputs only): `teacher` is the original, which is only run, never changed.
    Zeros stay zero and shapes stay as they are, as in `fine_tune`; BatchNorm statistics are
    re-estimated afterwards. Same seed, same result.
    """
    if loss not in DISTILL_LOSSES:
        raise InvalidPlanError(f"Unknown distillation loss {loss!r}; choose one of {', '.join(DISTILL_LOSSES)}.")
    _check_training_settings(epochs, lr, batch_size)
    if temperature <= 0:
        raise InvalidPlanError(f"The temperature must be above 0, got {temperature}.")
    if loss == "auto":
        loss = "embeddings" if is_embedding_model(model) else "logits"
    working = _plain_copy(model)

    def batch_loss(student: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        inputs = placement(student).inputs(train_data.inputs[batch])
        with torch.no_grad():
            target = _first_tensor(teacher(placement(teacher).inputs(train_data.inputs[batch]))).float()
        return _distillation_loss(_first_tensor(student(inputs)).float(), target, loss, temperature)

    with eval_mode(teacher):
        return _train(working, train_data, epochs, lr, batch_size, seed, batch_loss, progress, "distillation loss")


def _first_tensor(output: object) -> torch.Tensor:
    output = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(output, torch.Tensor):
        raise DataError(f"Distillation needs a model that returns a tensor, not {type(output).__name__}.")
    return output


def _distillation_loss(student: torch.Tensor, teacher: torch.Tensor, loss: str, temperature: float) -> torch.Tensor:
    if student.shape != teacher.shape:
        raise DataError(
            f"The pruned model gives outputs of shape {tuple(student.shape)}, the original {tuple(teacher.shape)}."
        )
    if loss == "embeddings":
        flat, target = student.reshape(len(student), -1), teacher.reshape(len(teacher), -1)
        return (1.0 - F.cosine_similarity(flat, target, dim=1)).mean()
    classes = student.shape[-1]
    log_student = F.log_softmax(student.reshape(-1, classes) / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.reshape(-1, classes) / temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


def _check_training_settings(epochs: int, lr: float, batch_size: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise InvalidPlanError(f"Epochs must be a whole number ≥ 0, got {epochs!r}.")
    if batch_size < 1 or lr <= 0:
        raise InvalidPlanError("The batch size must be at least 1 and the learning rate above 0.")


def _plain_copy(model: nn.Module) -> nn.Module:
    for name, module in model.named_modules():
        if any(key.endswith("_orig") for key, _ in module.named_parameters(recurse=False)):
            raise UnsupportedModelError(
                f"Layer {name!r} still carries torch.nn.utils.prune masks; call prune.remove on it first."
            )
    return copy.deepcopy(model)


def _class_labels(data: EvalData, what: str) -> torch.Tensor:
    if data.labels is None or data.labels.dtype.is_floating_point or data.labels.dtype == torch.bool:
        raise DataError(f"{what} needs data with class labels (whole numbers 0…classes−1); this data has none.")
    return data.labels.long().reshape(-1)


def _check_outputs(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> None:
    with torch.no_grad():
        try:
            output = model(placement(model).inputs(inputs[:2]))
        except Exception as error:  # a shape or dtype mismatch raised deep inside the model
            raise DataError(f"The model cannot run on inputs of shape {tuple(inputs.shape)}: {error}") from error
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        raise DataError("Training with class labels needs a model that returns (examples, classes) logits.")
    if int(labels.min()) < 0 or int(labels.max()) >= output.shape[1]:
        raise DataError(
            f"Labels run from {int(labels.min())} to {int(labels.max())} but the model has {output.shape[1]} outputs."
        )


def _hold_zeros(model: nn.Module) -> list[nn.Module]:
    """Mask every prunable weight that has zeros with its own zero pattern; the masked modules."""
    masked, seen = [], set()
    for layer in prunable_layers(model):
        module = get_layer(model, layer.name)
        weight = module.weight
        if id(weight) in seen or not isinstance(weight, nn.Parameter):
            continue
        seen.add(id(weight))
        mask = weight.detach() != 0
        if not bool(mask.all()):
            prune.custom_from_mask(module, "weight", mask)
            masked.append(module)
    return masked


BatchLoss = Callable[[nn.Module, torch.Tensor], torch.Tensor]
"""The loss of a model on a batch of example indices (labels, a teacher, a penalty: the caller's business)."""


def _train(
    model: nn.Module,
    data: EvalData,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    batch_loss: BatchLoss,
    progress: ProgressFn | None,
    what: str = "loss",
) -> nn.Module:
    """Train `model` (Adam) on `batch_loss` over shuffled batches of `data`, holding its zeros, then re-estimate
    its BatchNorm statistics: the running averages lag behind weights that moved, which after a fast L1 run can
    cost half the accuracy until they are refreshed. Same seed, same result."""
    _check_training_settings(epochs, lr, batch_size)
    place = placement(model)
    was_training = model.training
    masked = _hold_zeros(model)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    try:
        with torch.random.fork_rng(devices=[place.device] if place.device.type == "cuda" else []):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            optimizer = torch.optim.Adam(parameters, lr=lr)
            model.train()
            for epoch in range(epochs):
                order = torch.randperm(len(data), generator=generator)
                total, batches = 0.0, 0
                for start in range(0, len(order), batch_size):
                    batch = order[start : start + batch_size]
                    if len(batch) < 2 < len(order):
                        continue  # BatchNorm cannot train on a single example
                    loss = batch_loss(model, batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total, batches = total + float(loss.detach()), batches + 1
                if progress is not None:
                    progress((epoch + 1) / epochs, f"Epoch {epoch + 1}/{epochs}: {what} {total / max(batches, 1):.4f}")
    finally:
        for module in masked:
            prune.remove(module, "weight")
    if epochs and has_batchnorm(model):
        model = recalibrate_batchnorm(model, data)
    return model.train(was_training)


def _cross_entropy(model: nn.Module, data: EvalData, penalty: Penalty | None = None) -> BatchLoss:
    """Cross-entropy with the class labels of `data` (plus an optional penalty on the model), once `model`'s
    outputs are checked to fit those labels."""
    labels = _class_labels(data, "Training")
    _check_outputs(model.eval(), data.inputs, labels)

    def batch_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        place = placement(model)
        loss = F.cross_entropy(model(place.inputs(data.inputs[batch])), place.labels(labels[batch]))
        return loss if penalty is None else loss + penalty(model)

    return batch_loss


def iterative_prune(
    model: nn.Module,
    plan: PruningPlan,
    train_data: EvalData,
    eval_data: EvalData,
    steps: int = 5,
    schedule: str = "agp",
    epochs_per_step: int = 1,
    lr: float = 1e-3,
    progress: ProgressFn | None = None,
    example_input: torch.Tensor | None = None,
    recovery: str = "fine_tune",
) -> PruneResult:
    """Reach `plan` in `steps` prune-then-fine-tune rounds whose ratios follow `schedule`.

    `recovery="distill"` recovers between steps by distillation from `model` instead of
    fine-tuning on labels, so neither data set needs labels; the history then follows the
    model's own figure (see `recovery_metric`).

    At step t every ratio of the plan (and its global ratio) is scaled by
    `schedule_fractions(schedule, steps)[t]`. Unstructured: each step prunes the model
    of the step before to that total sparsity; its zeros score lowest under magnitude
    criteria, so they stay and only new weights join them (a criterion that does not rank
    zeros lowest overshoots, which the history's `nonzero` shows). Channel: each step
    removes channels from the current model so that the removed share of the *original*
    channels follows the schedule: a layer's own ratio exactly (by channel counts), a
    global ratio up to rounding (step ratio = (c_t − c_{t−1}) / (1 − c_{t−1})).

    The result's `report` compares the final model with `model` (the columns of
    `apply_plan`'s; assigned ratios are NaN, as no single ranking made it); its `history` has one
    row per step (step 0 = the original): step, ratio_fraction, pruned_accuracy (before
    fine-tuning), accuracy (after), params and nonzero, and `metric`, `pruned_value` and `value`:
    the figure followed (accuracy with class labels, else see `recovery_metric`) before and after
    recovery; without class labels the accuracy columns are NaN.
    """
    plan.validate()
    fractions = schedule_fractions(schedule, steps)
    if recovery not in RECOVERIES:
        raise InvalidPlanError(f"Unknown recovery {recovery!r}; choose one of {', '.join(RECOVERIES)}.")
    if plan.granularity in ("n:m", "block"):
        raise InvalidPlanError(
            f"{plan.granularity} pruning cannot be reached in steps; apply it, then fine_tune or distill."
        )
    if plan.granularity == "channel" and (plan.min_ratio is not None or plan.max_ratio is not None):
        raise InvalidPlanError("Iterative channel pruning does not take min/max ratios; set per-layer ratios instead.")
    if recovery == "fine_tune":
        _class_labels(train_data, "Iterative pruning")
        _class_labels(eval_data, "Iterative pruning")
    example_input = eval_data.inputs[:1] if example_input is None else example_input
    original = {layer.name: layer for layer in prunable_layers(model)}
    plan.check_layers(original)
    current, previous, skipped, last_step = model, 0.0, {}, None
    history = [_history_row(0, 0.0, model, eval_data, None, model)]
    for step, fraction in enumerate(fractions, start=1):
        report = _step_progress(progress, step, len(fractions))
        step_plan = _step_plan(plan, fraction, previous, original, current)
        if report is not None:
            report(0.0, "pruning")
        pruned = apply_plan(current, step_plan, example_input, data=train_data)
        skipped.update(pruned.skipped)
        last_step = pruned.report
        pruned_value = recovery_metric(pruned.model, eval_data, model)[1]
        if recovery == "distill":
            current = distill(
                pruned.model, model, train_data, epochs=epochs_per_step, lr=lr, seed=plan.seed + step, progress=report
            )
        else:
            current = fine_tune(
                pruned.model, train_data, epochs=epochs_per_step, lr=lr, seed=plan.seed + step, progress=report
            )
        history.append(_history_row(step, fraction, current, eval_data, pruned_value, model))
        previous = fraction
    return PruneResult(
        model=current,
        plan=plan,
        report=_final_report(model, current, plan, last_step),
        skipped=skipped,
        history=pd.DataFrame(history),
    )


def _step_progress(progress: ProgressFn | None, step: int, steps: int) -> ProgressFn | None:
    """`progress` for one step: the step's own 0…1 mapped into its share of the whole."""
    if progress is None:
        return None
    return lambda done, message: progress((step - 1 + done) / steps, f"Step {step}/{steps}: {message}")


def _step_plan(
    plan: PruningPlan, fraction: float, previous: float, original: dict[str, LayerInfo], current: nn.Module
) -> PruningPlan:
    """The plan of one step: cumulative ratios for masks, ratios of what is left for channels."""
    if plan.granularity != "channel":
        return dataclasses.replace(
            plan,
            ratios={layer: ratio * fraction for layer, ratio in plan.ratios.items()},
            global_ratio=None if plan.global_ratio is None else plan.global_ratio * fraction,
            min_ratio=None if plan.min_ratio is None else plan.min_ratio * fraction,
        )
    ratios = {}
    for layer, ratio in plan.ratios.items():
        channels = original[layer].out_channels
        kept = channels - round(ratio * fraction * channels)
        now = get_layer(current, layer).weight.shape[0]
        ratios[layer] = max(now - kept, 0) / now
    global_ratio = None
    if plan.global_ratio is not None:
        done, goal = plan.global_ratio * previous, plan.global_ratio * fraction
        global_ratio = max(goal - done, 0.0) / (1.0 - done)
    return dataclasses.replace(plan, ratios=ratios, global_ratio=global_ratio)


def recovery_metric(model: nn.Module, data: EvalData, original: nn.Module) -> tuple[str, float]:
    """The one figure a recovery is followed by: `accuracy` with class labels, `perplexity` for a
    language model, `retrieval_agreement` with the original for an embedding model, else
    top-1 `agreement` with the original (or `cosine` for one-number outputs)."""
    labelled = data.labels is not None and not data.labels.dtype.is_floating_point
    if is_language_model(model):
        return "perplexity", evaluate(model, data)["perplexity"]
    if labelled and not is_embedding_model(model):
        return "accuracy", evaluate(model, data)["accuracy"]
    figures = evaluate(model, data, reference=original)
    for name in ("retrieval_agreement", "agreement", "cosine"):
        if name in figures:
            return name, figures[name]
    raise DataError("The model's outputs give no figure to follow; give data with class labels.")


def _history_row(
    step: int, fraction: float, model: nn.Module, data: EvalData, pruned_value: float | None, original: nn.Module
) -> dict[str, float | int | str | None]:
    params, nonzero = count_parameters(model)
    metric, value = recovery_metric(model, data, original)
    pruned_value = value if pruned_value is None else pruned_value
    is_accuracy = metric == "accuracy"
    return {
        "step": step,
        "ratio_fraction": fraction,
        "pruned_accuracy": pruned_value if is_accuracy else float("nan"),
        "accuracy": value if is_accuracy else float("nan"),
        "params": params,
        "nonzero": nonzero,
        "metric": metric,
        "pruned_value": pruned_value,
        "value": value,
    }


def _final_report(model: nn.Module, pruned: nn.Module, plan: PruningPlan, last_step: pd.DataFrame) -> pd.DataFrame:
    """The report comparing the final model with the original; blocked layers and notes come
    from the last step (what stayed blocked then stays blocked)."""
    step = last_step.set_index("layer")
    blocked = {layer: by for layer, by in step["blocked_by"].items() if by is not None}
    return layer_report(model, pruned, plan, blocked=blocked, notes=step["note"].to_dict())
