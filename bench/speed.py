"""Latency: predicted vs measured, sparse kernels, channel rounding, and how often noise looks like a speed-up.

(a) `predict_latency` against a measured interleaved comparison, error = |predicted − measured| ÷
    measured (the pruned model's ms; also of the speed-up, which does not depend on how busy the
    machine was between the two runs), median and worst, for uniform channel plans 25/40/50/60/75 % on
    digits_cnn and digits_resnet (batch 64) and a ResNet-18-shaped model (3×64×64, batch 32), and
    25/50 % of attention heads on minilm (batch 8 × 128 tokens).
(b) Latency budget: a channel sensitivity scan of digits_resnet (BatchNorm re-estimated, latency
    predicted at batch 64), `suggest_ratios(scan, 0.5, budget="latency")`; its measured latency as a
    share of dense (target 0.5 ± 0.1) and its accuracy against uniform channel plans timed in the same
    interleaved run (target: at least the accuracy of the uniform plan whose latency is closest).
(c) `sparse_runtime` vs the dense pruned copy: digits_mlp at 95 % and mlp_100m at 90 % unstructured
    sparsity, batch 1 and 32; then each layer's decision (timed at conversion) and its timings.
(d) Speed-up of 30 % channels on the ResNet-18 shape against `round_to` (none, 8, 16, 32).
(e) The latency-noise check of issue 14: 10 comparisons each of digits_cnn unstructured 20 % (dense
    kernels, so no real change: target at most 1 flagged significant) and digits_resnet channels 50 %
    (target all 10 significant), batch 32. Significant: the speed-up's whole 95 % interval lies
    beyond ±5 % of 1 (`prune_engine.metrics.MEASURABLE_CHANGE`).
All on one thread by default; speed-ups carry their 95 % interval. Needs a quiet machine: the load
average is printed before and after.
Run: `python -m bench.speed [--threads 1] [--repeats 10] [--quick] [--sections abcde]` (`--quick`: a smoke
run of every section on the smallest cases with short budgets; its numbers mean nothing; `--sections c`:
only table (c)).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd
import torch
from torch import nn

from bench.common import print_table, stopwatch
from bench.structured import ResNet18Shape
from prune_engine.latency import predict_latency
from prune_engine.metrics import LATENCY_BUDGET_S, evaluate, measure_latency
from prune_engine.plan import PruningPlan
from prune_engine.pruning import apply_plan
from prune_engine.sensitivity import SerialExecutor, sensitivity_scan, suggest_ratios
from prune_engine.sparse_runtime import SparseDecision, sparse_decisions, sparse_runtime
from sample_models import load_sample

CHANNEL_RATIOS = (0.25, 0.4, 0.5, 0.6, 0.75)
"""40 and 60 % leave widths between the points of the prediction's width grid, so its interpolation is checked."""
HEAD_RATIOS = (0.25, 0.5)
ROUND_TO = (None, 8, 16, 32)
SPARSE_CASES = (("digits_mlp", 0.95), ("mlp_100m", 0.90))
SPARSE_THRESHOLD = 0.85
"""Below the plans' sparsity, so rounding in a layer's count never leaves a layer dense by a hair."""
NOISE_BATCH = 32


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def interval(row: pd.Series) -> str:
    return f"{row['speedup_low']:.2f}–{row['speedup_high']:.2f}"


def resnet18_shape() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return ResNet18Shape().eval(), torch.randn(1, 3, 64, 64)


def prediction_cases(quick: bool) -> list[tuple[str, nn.Module, torch.Tensor, int, list[PruningPlan]]]:
    """(name, model, example input, batch, plans) for section (a)."""
    channel = [PruningPlan(granularity="channel", global_ratio=ratio) for ratio in CHANNEL_RATIOS]
    heads = [PruningPlan(granularity="head", global_ratio=ratio) for ratio in HEAD_RATIOS]
    cases = []
    for name in ("digits_cnn", "digits_resnet"):
        bundle = load_sample(name)
        cases.append((name, bundle.model, bundle.example_input, 64, channel))
    cases.append(("resnet18_shape", *resnet18_shape(), 32, channel))
    minilm = load_sample("minilm")
    cases.append(("minilm", minilm.model, minilm.example_input, 8, heads))
    if quick:
        return [(name, model, example, min(batch, 8), plans[1:2]) for name, model, example, batch, plans in cases]
    return cases


def bench_prediction(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for name, model, example, batch, plans in prediction_cases(args.quick):
        for plan in plans:
            with stopwatch() as elapsed:
                prediction = predict_latency(model, plan, example, batch_size=batch, threads=args.threads)
                predict_s = elapsed()
            pruned = apply_plan(model, plan, example).model
            measured = measure_latency(
                {"dense": model, "pruned": pruned},
                example,
                batch_size=batch,
                threads=args.threads,
                max_seconds=args.budget,
            ).table.set_index("model")
            pruned_ms = measured.loc["pruned", "median_ms"]
            rows.append(
                {
                    "model": name,
                    "plan": f"{plan.granularity} {plan.global_ratio:.0%}",
                    "batch": batch,
                    "dense_ms": measured.loc["dense", "median_ms"],
                    "measured_ms": pruned_ms,
                    "predicted_ms": prediction["predicted_ms"],
                    "error": abs(prediction["predicted_ms"] - pruned_ms) / pruned_ms,
                    "measured_speedup": measured.loc["pruned", "speedup"],
                    "interval": interval(measured.loc["pruned"]),
                    "predicted_speedup": prediction["predicted_speedup"],
                    "speedup_error": abs(prediction["predicted_speedup"] - measured.loc["pruned", "speedup"])
                    / measured.loc["pruned", "speedup"],
                    "predict_s": predict_s,
                }
            )
    return rows


BUDGET_BATCH = 64
UNIFORM_RATIOS = (0.3, 0.4, 0.5, 0.6, 0.7)


def bench_budget(args: argparse.Namespace) -> list[dict[str, object]]:
    bundle = load_sample("digits_resnet")
    calibration = bundle.train_data.subset(256)
    batch = 8 if args.quick else BUDGET_BATCH
    scan = sensitivity_scan(
        bundle.model,
        bundle.eval_data,
        (0.25, 0.5, 0.75) if args.quick else (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        granularity="channel",
        executor=SerialExecutor(),
        recalibrate_bn=True,
        calibration_data=calibration,
        latency_batch=batch,
    )
    suggested = suggest_ratios(scan, 0.5, budget="latency", model=bundle.model, example_input=bundle.example_input)
    plans = {"suggested −50 % latency": suggested}
    for ratio in UNIFORM_RATIOS[1:2] if args.quick else UNIFORM_RATIOS:
        plans[f"uniform {ratio:.0%}"] = PruningPlan(granularity="channel", global_ratio=ratio, recalibrate_bn=True)
    models = {"dense": bundle.model}
    models.update(
        {
            label: apply_plan(bundle.model, plan, bundle.example_input, calibration_data=calibration).model
            for label, plan in plans.items()
        }
    )
    table = measure_latency(
        models, bundle.example_input, batch_size=batch, threads=args.threads, max_seconds=args.budget * 2
    ).table.set_index("model")
    dense_ms = table.loc["dense", "median_ms"]
    return [
        {
            "plan": label,
            "batch": batch,
            "median_ms": table.loc[label, "median_ms"],
            "share_of_dense": table.loc[label, "median_ms"] / dense_ms,
            "interval": interval(table.loc[label]) if label != "dense" else "",
            "accuracy": evaluate(model, bundle.eval_data)["accuracy"],
        }
        for label, model in models.items()
    ]


def runs_sparse(decision: SparseDecision, batch: int) -> bool:
    """Whether the layer runs on its sparse kernel at this batch size."""
    return decision.sparse_from_batch is not None and decision.sparse_from_batch <= batch


def bench_sparse(args: argparse.Namespace) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    rows, layers = [], []
    for name, sparsity in SPARSE_CASES:
        bundle = load_sample(name)
        plan = PruningPlan(granularity="unstructured", global_ratio=sparsity)
        pruned = apply_plan(bundle.model, plan, bundle.example_input).model
        example = bundle.example_input[:1]
        del bundle
        with stopwatch() as elapsed:
            runtime = sparse_runtime(pruned, min_sparsity=SPARSE_THRESHOLD, threads=args.threads)
            convert_s = elapsed()
        decisions = sparse_decisions(pruned, min_sparsity=SPARSE_THRESHOLD, threads=args.threads)
        layers += [
            {
                "model": name,
                "layer": decision.layer,
                "shape": f"{decision.out_features}×{decision.in_features}",
                "sparsity": decision.sparsity,
                "sparse_from_batch": decision.sparse_from_batch,
                "kept_dense_because": decision.kept_dense_because,
                **{
                    f"{kind}_b{b}": getattr(decision, kind).get(b)
                    for b in (1, 32)
                    for kind in ("dense_us", "sparse_us", "speedup_low")
                },
            }
            for decision in decisions
        ]
        for batch in (1, 32):
            table = measure_latency(
                {"dense pruned": pruned, "sparse kernels": runtime},
                example,
                batch_size=batch,
                threads=args.threads,
                max_seconds=args.budget,
            ).table.set_index("model")
            sparse = table.loc["sparse kernels"]
            rows.append(
                {
                    "model": name,
                    "sparsity": sparsity,
                    "layers_sparse": f"{sum(runs_sparse(d, batch) for d in decisions)}/{len(decisions)}",
                    "convert_s": convert_s,
                    "batch": batch,
                    "dense_ms": table.loc["dense pruned", "median_ms"],
                    "sparse_ms": sparse["median_ms"],
                    "speedup": sparse["speedup"],
                    "interval": interval(sparse),
                    "significant": bool(sparse["significant"]),
                    "rounds": int(sparse["rounds"]),
                }
            )
    return rows, layers


def bench_round_to(args: argparse.Namespace) -> list[dict[str, object]]:
    model, example = resnet18_shape()
    batch = 8 if args.quick else 32
    models = {"dense": model}
    predicted = {}
    for round_to in ROUND_TO:
        plan = PruningPlan(granularity="channel", global_ratio=0.3, round_to=round_to)
        label = f"round_to={round_to}"
        models[label] = apply_plan(model, plan, example).model
        predicted[label] = predict_latency(model, plan, example, batch_size=batch, threads=args.threads)
    table = measure_latency(
        models, example, batch_size=batch, threads=args.threads, max_seconds=args.budget * 2
    ).table.set_index("model")
    rows = []
    for label, pruned in list(models.items())[1:]:
        row = table.loc[label]
        rows.append(
            {
                "plan": f"channels 30 %, {label}",
                "params": sum(p.numel() for p in pruned.parameters()),
                "median_ms": row["median_ms"],
                "speedup": row["speedup"],
                "interval": interval(row),
                "significant": bool(row["significant"]),
                "predicted_speedup": predicted[label]["predicted_speedup"],
            }
        )
    return rows


def bench_noise(args: argparse.Namespace) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    cases = {
        "digits_cnn unstructured 20 %": ("digits_cnn", PruningPlan(granularity="unstructured", global_ratio=0.2)),
        "digits_resnet channels 50 %": ("digits_resnet", PruningPlan(granularity="channel", global_ratio=0.5)),
    }
    repeats = 2 if args.quick else args.repeats
    runs, summary = [], []
    for label, (name, plan) in cases.items():
        bundle = load_sample(name)
        pruned = apply_plan(bundle.model, plan, bundle.example_input).model
        flagged = []
        for repeat in range(repeats):
            table = measure_latency(
                {"original": bundle.model, "pruned": pruned},
                bundle.example_input,
                batch_size=NOISE_BATCH,
                threads=args.threads,
                max_seconds=args.budget,
            ).table.set_index("model")
            row = table.loc["pruned"]
            flagged.append(bool(row["significant"]))
            runs.append(
                {
                    "case": label,
                    "repeat": repeat + 1,
                    "original_ms": table.loc["original", "median_ms"],
                    "original_iqr_ms": table.loc["original", "iqr_ms"],
                    "pruned_ms": row["median_ms"],
                    "speedup": row["speedup"],
                    "interval": interval(row),
                    "significant": flagged[-1],
                    "rounds": int(row["rounds"]),
                }
            )
        target = "≤ 1" if "unstructured" in label else f"= {repeats}"
        summary.append({"case": label, "comparisons": repeats, "significant": sum(flagged), "target": target})
    return runs, summary


def section_prediction(args: argparse.Namespace) -> None:
    prediction = print_table("(a) predicted vs measured latency of the pruned model", bench_prediction(args))
    for column, what in (("error", "pruned ms"), ("speedup_error", "speed-up")):
        errors = prediction[column].to_numpy()
        print(f"Prediction error of the {what}: median {np.median(errors):.1%}, worst {errors.max():.1%}")


def section_budget(args: argparse.Namespace) -> None:
    budget = print_table("(b) digits_resnet, latency budget −50 % vs uniform channel plans", bench_budget(args))
    suggested = budget[budget["plan"].str.startswith("suggested")].iloc[0]
    uniform = budget[budget["plan"].str.startswith("uniform")]
    closest = uniform.iloc[(uniform["share_of_dense"] - suggested["share_of_dense"]).abs().argmin()]
    print(
        f"Suggested: {suggested['share_of_dense']:.2f} of dense (target 0.5 ± 0.1), accuracy "
        f"{suggested['accuracy']:.1%}; closest uniform ({closest['plan']}, {closest['share_of_dense']:.2f}): "
        f"{closest['accuracy']:.1%}"
    )


def section_sparse(args: argparse.Namespace) -> None:
    models, layers = bench_sparse(args)
    print_table("(c) sparse kernels (sparse_runtime) vs the dense pruned copy", models)
    print_table(
        "(c) each layer: sparse from which batch size; timed at conversion (µs per call, speed-up's lower quartile)",
        layers,
    )


def section_noise(args: argparse.Namespace) -> None:
    runs, summary = bench_noise(args)
    print_table(f"(e) repeated comparisons at batch {NOISE_BATCH}", runs)
    print_table("(e) how many comparisons were flagged significant", summary)


SECTIONS = {
    "a": section_prediction,
    "b": section_budget,
    "c": section_sparse,
    "d": lambda args: print_table(
        "(d) ResNet-18 shape, 30 % channels: speed-up against round_to", bench_round_to(args)
    ),
    "e": section_noise,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads while timing (1 is the stable choice)")
    parser.add_argument("--repeats", type=int, default=10, help="comparisons per case in the noise check (e)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: smallest cases, short budgets")
    parser.add_argument("--sections", default="abcde", help="which tables to run, e.g. c (default: all)")
    args = parser.parse_args()
    args.budget = 1.0 if args.quick else LATENCY_BUDGET_S
    torch.manual_seed(0)
    pd.set_option("display.width", 220)
    print(f"Load average (1, 5, 15 min): {load_average()} on {os.cpu_count()} CPUs; {args.threads} thread(s)")
    with stopwatch() as elapsed:
        for letter, section in SECTIONS.items():
            if letter in args.sections:
                section(args)
    print(f"\nTook {elapsed():.0f} s. Load average after: {load_average()}")


if __name__ == "__main__":
    main()
