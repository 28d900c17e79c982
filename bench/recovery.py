"""Recovering accuracy after pruning, and the sensitivity scan's wall time.

(a) `digits_mlp` at 95 % global unstructured sparsity, iterative AGP + fine-tuning:
    ≤ 60 s on the CPU, accuracy drop ≤ 1 point (one-shot with the same epochs beside it).
(b) `digits_resnet` at 50 % global channels + fine-tuning: ≤ 60 s, ≥ 70 % fewer params,
    speed-up ≥ 2× (interleaved latency, batch 64, 1 thread), accuracy drop ≤ 1 point.
(c) `digits_cnn`: L1 on BatchNorm scales (network slimming) then channel pruning with
    `bn_scale`, against the same training without the penalty, pruned alike.
(d) `digits_resnet` sensitivity scan, every layer × 9 ratios, local executors: ≤ 30 s;
    and a suggested allocation against one ratio for every layer.
Timings depend on what else runs on the machine; the load average is printed first.
Run: `python -m bench.recovery [--threads 1] [--rounds 15]`.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd

import prune_engine as pe
from bench.common import print_table, stopwatch
from prune_engine.metrics import count_parameters
from prune_engine.sensitivity import (
    ProcessExecutor,
    SerialExecutor,
    clear_scan_cache,
    sensitivity_scan,
    suggest_ratios,
)
from prune_engine.training import fine_tune, iterative_prune, train_sparse
from sample_models import load_sample

RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def accuracy(model, data: pe.EvalData) -> float:
    return pe.evaluate(model, data)["accuracy"]


def weights_kept(model) -> float:
    """Share of the prunable layers' weights that are non-zero."""
    layers = [pe.get_layer(model, layer.name).weight for layer in pe.prunable_layers(model)]
    return sum(int(weight.count_nonzero()) for weight in layers) / sum(weight.numel() for weight in layers)


def bench_iterative_mlp() -> list[dict[str, object]]:
    """(a): AGP in 10 steps of 10 epochs vs one shot followed by the same 100 epochs."""
    bundle = load_sample("digits_mlp")
    baseline = accuracy(bundle.model, bundle.eval_data)
    plan = pe.PruningPlan(scope="global", global_ratio=0.95)
    rows = []
    for schedule in ("agp", "one_shot"):
        with stopwatch() as elapsed:
            result = iterative_prune(
                bundle.model, plan, bundle.train_data, bundle.eval_data, steps=10, schedule=schedule,
                epochs_per_step=10, lr=3e-3,
            )  # fmt: skip
            seconds = elapsed()
        final = result.history["accuracy"].iloc[-1]
        rows.append(
            {
                "schedule": schedule,
                "weights_kept": weights_kept(result.model),
                "baseline": baseline,
                "accuracy": final,
                "drop_pt": 100 * (baseline - final),
                "seconds": seconds,
                "met (drop ≤ 1 pt, ≤ 60 s)": 100 * (baseline - final) <= 1 and seconds <= 60,
            }
        )
    return rows


def bench_channel_resnet(threads: int, rounds: int) -> list[dict[str, object]]:
    """(b): one shot at 50 % of the channels, BatchNorm re-estimated, then 5 epochs."""
    bundle = load_sample("digits_resnet")
    baseline = accuracy(bundle.model, bundle.eval_data)
    plan = pe.PruningPlan(granularity="channel", scope="global", global_ratio=0.5, recalibrate_bn=True)
    with stopwatch() as elapsed:
        pruned = pe.apply_plan(bundle.model, plan, bundle.example_input, data=bundle.train_data).model
        pruned_accuracy = accuracy(pruned, bundle.eval_data)
        tuned = fine_tune(pruned, bundle.train_data, epochs=5)
        seconds = elapsed()
    latency = pe.compare_latency(
        {"original": bundle.model, "pruned": tuned}, bundle.example_input, batch_size=64, threads=threads, rounds=rounds
    ).set_index("model")
    params_before, params_after = count_parameters(bundle.model)[0], count_parameters(tuned)[0]
    final = accuracy(tuned, bundle.eval_data)
    fewer = 1 - params_after / params_before
    speedup = latency.loc["pruned", "speedup"]
    return [
        {
            "params": f"{params_before} → {params_after}",
            "fewer_params": fewer,
            "original_ms": latency.loc["original", "median_ms"],
            "pruned_ms": latency.loc["pruned", "median_ms"],
            "speedup": speedup,
            "baseline": baseline,
            "pruned_accuracy": pruned_accuracy,
            "accuracy": final,
            "drop_pt": 100 * (baseline - final),
            "seconds": seconds,
            "met": fewer >= 0.7 and speedup >= 2 and 100 * (baseline - final) <= 1 and seconds <= 60,
        }
    ]


def bench_sparsity_training() -> list[dict[str, object]]:
    """(c): 5 epochs with L1 on BatchNorm γ vs 5 plain epochs, then the same channel pruning."""
    bundle = load_sample("digits_cnn")
    trained = {
        "plain": fine_tune(bundle.model, bundle.train_data, epochs=5, lr=1e-2),
        "L1 on γ (λ=1e-2)": train_sparse(
            bundle.model, bundle.train_data, l1_lambda=1e-2, epochs=5, lr=1e-2, target="bn"
        ),
    }
    rows = []
    for ratio in (0.5, 0.7):
        plan = pe.PruningPlan(
            granularity="channel", criterion="bn_scale", scope="global", global_ratio=ratio, recalibrate_bn=True
        )
        for training, model in trained.items():
            pruned = pe.apply_plan(model, plan, bundle.example_input, data=bundle.train_data).model
            rows.append(
                {
                    "channels_removed": ratio,
                    "training": training,
                    "trained_accuracy": accuracy(model, bundle.eval_data),
                    "pruned_accuracy": accuracy(pruned, bundle.eval_data),
                    "after_1_epoch": accuracy(fine_tune(pruned, bundle.train_data, epochs=1), bundle.eval_data),
                }
            )
    return rows


def bench_scan() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(d): scan wall time per granularity and executor; then a suggestion from the channel scan."""
    bundle = load_sample("digits_resnet")
    rows, scans = [], {}
    for granularity in ("unstructured", "channel"):
        for label, executor in (("process pool (default)", ProcessExecutor()), ("serial", SerialExecutor())):
            clear_scan_cache()
            with stopwatch() as elapsed:
                scan = sensitivity_scan(
                    bundle.model, bundle.eval_data, RATIOS, granularity=granularity, executor=executor
                )
                seconds = elapsed()
            scans[granularity] = scan
            rows.append(
                {
                    "granularity": granularity,
                    "executor": label,
                    "workers": executor.workers if isinstance(executor, ProcessExecutor) else 1,
                    "rows": len(scan),
                    "jobs": scan.drop_duplicates(["group", "ratio"])["metric"].notna().sum(),
                    "seconds": seconds,
                    "met (≤ 30 s)": seconds <= 30,
                }
            )
    total = count_parameters(bundle.model)[1]
    suggestion_rows = []
    suggested = suggest_ratios(scans["channel"], 0.5, model=bundle.model, example_input=bundle.example_input)
    for label, plan in (
        ("suggest_ratios(0.5 params)", suggested),
        ("one ratio for all (0.3)", pe.PruningPlan(granularity="channel", global_ratio=0.3)),
    ):
        pruned = pe.apply_plan(bundle.model, plan, bundle.example_input).model
        suggestion_rows.append(
            {
                "plan": label,
                "fewer_params": 1 - count_parameters(pruned)[1] / total,
                "accuracy_before_fine_tuning": accuracy(pruned, bundle.eval_data),
            }
        )
    return rows, suggestion_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads while timing latency")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved latency rounds per model")
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"Load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    pd.set_option("display.width", 200)
    print_table("(a) digits_mlp, 95 % global unstructured sparsity + fine-tuning", bench_iterative_mlp())
    print_table(
        f"(b) digits_resnet, 50 % channels + 5 epochs (latency: batch 64, {args.threads} thread(s))",
        bench_channel_resnet(args.threads, args.rounds),
    )
    print_table("(c) digits_cnn, L1 on BatchNorm γ then bn_scale channel pruning vs plain", bench_sparsity_training())
    scan_rows, suggestion_rows = bench_scan()
    print_table("(d) digits_resnet sensitivity scan, 11 layers × 9 ratios", scan_rows)
    print_table("(d) an allocation from the channel scan vs one ratio for all (no fine-tuning)", suggestion_rows)


if __name__ == "__main__":
    main()
