"""Pruning methods compared fairly: magnitude, Wanda, SparseGPT, depth pruning, distillation.

(a) minilm, 50 % unstructured and 2:4: retrieval agreement of magnitude (l1), Wanda and
    SparseGPT (targets: Wanda ≥ magnitude + 0.05, SparseGPT ≥ Wanda) and their wall times
    (SparseGPT ≤ 60 s, Wanda ≤ 10 s on 2 cores).
(b) tiny_gpt, 50 % unstructured and 2:4: perplexity of magnitude, Wanda and SparseGPT
    against dense (target: Wanda/SparseGPT ≤ 1.3× dense, magnitude clearly worse).
(c) Depth: tiny_gpt and minilm with 1/3 of the blocks removed by block influence and by
    random choice (3 seeds), before and after distillation from the original.
(d) digits_cnn, 30 % channels with BatchNorm re-estimated: L1, Taylor, activation and
    conductance against random (3 seeds; data-driven criteria over 3 calibration subsets),
    with and without a short fine-tuning: mean, lowest and highest accuracy.
Timings depend on what else runs on the machine; the load average is printed first.
Run: `python -m bench.methods [--quick]` (--quick: fewer examples, ratios and epochs; a smoke run).
"""

from __future__ import annotations

import argparse
import os

import torch

import prune_engine as pe
from bench.common import print_table, stopwatch
from prune_engine.comparison import Method, compare_methods, summarise
from sample_models import load_sample


def _one_shot_rows(name: str, quick: bool) -> list[dict[str, object]]:
    bundle = load_sample(name)
    evaluation = bundle.eval_data.subset(32) if quick else bundle.eval_data
    calibration = (bundle.train_data or bundle.eval_data).subset(16 if quick else 128)
    dense = pe.recovery_metric(bundle.model, evaluation, bundle.model)
    rows = [{"model": name, "pattern": "dense", "criterion": "-", dense[0]: dense[1], "seconds": 0.0}]
    for pattern, options in (("50 %", {"global_ratio": 0.5}), ("2:4", {"granularity": "n:m", "n": 2, "m": 4})):
        for criterion in ("l1", "wanda", "sparsegpt"):
            plan = pe.PruningPlan(criterion=criterion, **options)
            with stopwatch() as elapsed:
                pruned = pe.apply_plan(bundle.model, plan, bundle.example_input, data=calibration)
            seconds = elapsed()
            metric, value = pe.recovery_metric(pruned.model, evaluation, bundle.model)
            rows.append({"model": name, "pattern": pattern, "criterion": criterion, metric: value, "seconds": seconds})
    return rows


def _depth_rows(name: str, quick: bool) -> list[dict[str, object]]:
    bundle = load_sample(name)
    evaluation = bundle.eval_data.subset(32) if quick else bundle.eval_data
    calibration = (bundle.train_data or bundle.eval_data).subset(16 if quick else 128)
    methods = [Method("block_influence", "block"), Method("random", "block")]
    runs = compare_methods(
        bundle.model,
        bundle.example_input,
        evaluation,
        calibration,
        methods,
        ratios=[1 / 3],
        repeats=1 if quick else 3,
        calibration_size=len(calibration) if quick else 128,
        recovery="distill",
        recovery_epochs=1 if quick else 3,
    )
    table = summarise(runs)
    table.insert(0, "model", name)
    return table.to_dict("records")


def _channel_rows(quick: bool) -> list[dict[str, object]]:
    bundle = load_sample("digits_cnn")
    criteria = ["l1", "random", "taylor", "activation"] + ([] if quick else ["conductance"])
    methods = [Method(criterion, "channel", (("recalibrate_bn", True),)) for criterion in criteria]
    runs = compare_methods(
        bundle.model,
        bundle.example_input,
        bundle.eval_data,
        bundle.train_data,
        methods,
        ratios=[0.3] if quick else [0.1, 0.3, 0.5],
        repeats=1 if quick else 3,
        calibration_size=64 if quick else 256,
        recovery="fine_tune",
        recovery_data=bundle.train_data,
        recovery_epochs=1,
        recovery_lr=1e-3,
    )
    return summarise(runs).to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer examples, ratios and repeats")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()}, {args.threads} threads{' (quick)' if args.quick else ''}")
    print_table("(a) minilm: one-shot pruning", _one_shot_rows("minilm", args.quick))
    print_table("(b) tiny_gpt: one-shot pruning", _one_shot_rows("tiny_gpt", args.quick))
    print_table("(c) depth: 1/3 of the blocks", _depth_rows("tiny_gpt", args.quick) + _depth_rows("minilm", args.quick))
    print_table("(d) digits_cnn: 30 % channels, BatchNorm re-estimated", _channel_rows(args.quick))


if __name__ == "__main__":
    main()
