"""Pruning methods compared fairly: magnitude, Wanda, SparseGPT, depth pruning, distillation.

(a) minilm, 50 % unstructured and 2:4: retrieval agreement of magnitude (l1), Wanda and
    SparseGPT (targets: Wanda ≥ magnitude + 0.05, SparseGPT ≥ Wanda) and their wall times
    (SparseGPT ≤ 60 s, Wanda ≤ 10 s on 2 cores).
(b) tiny_gpt, 50 % unstructured and 2:4: perplexity of magnitude, Wanda and SparseGPT
    against dense (target: Wanda/SparseGPT ≤ 1.3× dense, magnitude clearly worse).
    In (a) and (b) every criterion prunes the same layers at the same ratio: the Linear
    layers inside the transformer blocks (as the Wanda and SparseGPT papers do; never an
    LM head). Wanda and SparseGPT calibrate on 3 disjoint sets of 128 training examples
    (minilm: sentences of Python's documentation, never its evaluation sentences), so each
    row gives the mean, lowest and highest over them; magnitude needs no data and runs once.
    The first table says how uneven each model's input features are (Wanda's premise).
(c) Depth: tiny_gpt and minilm with 1/3 of the blocks removed by block influence and by
    random choice (3 seeds), before and after distillation from the original.
(d) digits_cnn, 10/30/50 % channels with BatchNorm re-estimated: L1, Taylor, activation and
    conductance against random (3 seeds; data-driven criteria over 3 calibration subsets),
    with and without a short fine-tuning: mean, lowest and highest accuracy.
Ratios are shown as percentages, metrics as the engine gives them (agreement and accuracy
as fractions 0–1, perplexity per byte). Timings depend on what else runs on the machine;
the load average is printed first and last.
Run: `python -m bench.methods [--quick]` (--quick: fewer examples, ratios and epochs; a smoke run).
"""

from __future__ import annotations

import argparse
import os

import pandas as pd
import torch

import prune_engine as pe
from bench.common import print_table, stopwatch
from prune_engine.blocks import candidate_blocks
from prune_engine.comparison import Method, calibration_subsets, compare_methods, summarise
from prune_engine.oneshot import input_norms
from sample_models import load_sample
from sample_models.minilm import calibration_data as minilm_calibration

PATTERNS = {"50 % unstructured": {}, "2:4": {"granularity": "n:m", "n": 2, "m": 4}}
ONE_SHOT_CRITERIA = ("l1", "wanda", "sparsegpt")
SUBSETS = 3
"""Disjoint calibration sets for data-driven criteria, seeds for random."""


def _data(name: str, quick: bool) -> tuple[pe.ModelBundle, pe.EvalData, pe.EvalData]:
    """The sample, its evaluation data and its calibration pool (training data, never evaluation data)."""
    bundle = load_sample(name)
    evaluation = bundle.eval_data.subset(32) if quick else bundle.eval_data
    pool = minilm_calibration() if name == "minilm" else bundle.train_data
    assert pool is not None, f"{name} has no training data to calibrate on"
    return bundle, evaluation, pool


def _block_layers(model: torch.nn.Module) -> list[str]:
    """The prunable layers inside the model's transformer blocks."""
    return [layer for layers in candidate_blocks(model).values() for layer in layers]


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}".replace("%", " %")


def _outlier_rows(name: str, quick: bool) -> list[dict[str, object]]:
    """How much the largest input feature of each pruned layer stands out: max/median of ‖X_j‖₂."""
    bundle, _, pool = _data(name, quick)
    layers = _block_layers(bundle.model)
    norms = input_norms(bundle.model, layers, pool.subset(16 if quick else 128).inputs)
    ratios = torch.tensor([float(norms[layer].max() / norms[layer].median()) for layer in layers])
    return [
        {
            "model": name,
            "layers": len(layers),
            "max/median, median layer": float(ratios.median()),
            "max/median, largest": float(ratios.max()),
        }
    ]


def _one_shot_rows(name: str, quick: bool) -> list[dict[str, object]]:
    bundle, evaluation, pool = _data(name, quick)
    layers = _block_layers(bundle.model)
    subsets = calibration_subsets(pool, SUBSETS, 16 if quick else 128)
    metric, dense = pe.recovery_metric(bundle.model, evaluation, bundle.model)
    rows: list[dict[str, object]] = [
        {"model": name, "pattern": "dense", "criterion": "-", "metric": metric}
        | {"mean": dense, "low": dense, "high": dense, "runs": 1, "mean_seconds": 0.0, "max_seconds": 0.0}
    ]
    for pattern, options in PATTERNS.items():
        for criterion in ONE_SHOT_CRITERIA:
            values, seconds = [], []
            for subset in subsets if pe.get_criterion(criterion).needs_data else subsets[:1]:
                plan = pe.PruningPlan(criterion=criterion, ratios=dict.fromkeys(layers, 0.5), **options)
                with stopwatch() as elapsed:
                    pruned = pe.apply_plan(bundle.model, plan, bundle.example_input, data=subset)
                seconds.append(elapsed())
                values.append(pe.recovery_metric(pruned.model, evaluation, bundle.model)[1])
            rows.append(
                {
                    "model": name,
                    "pattern": pattern,
                    "criterion": criterion,
                    "metric": metric,
                    "mean": sum(values) / len(values),
                    "low": min(values),
                    "high": max(values),
                    "runs": len(values),
                    "mean_seconds": sum(seconds) / len(seconds),
                    "max_seconds": max(seconds),
                }
            )
    return rows


def _with_percent_ratios(table: pd.DataFrame) -> pd.DataFrame:
    table["ratio"] = table["ratio"].map(_percent)
    return table


def _depth_rows(name: str, quick: bool) -> list[dict[str, object]]:
    bundle, evaluation, pool = _data(name, quick)
    calibration = pool.subset(3 * 16 if quick else 3 * 128)
    methods = [Method("block_influence", "block"), Method("random", "block")]
    runs = compare_methods(
        bundle.model,
        bundle.example_input,
        evaluation,
        calibration,
        methods,
        ratios=[1 / 3],
        repeats=1 if quick else SUBSETS,
        calibration_size=16 if quick else 128,
        recovery="distill",
        recovery_data=pool.subset(16 if quick else 128),
        recovery_epochs=1 if quick else 3,
    )
    table = _with_percent_ratios(summarise(runs))
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
        repeats=1 if quick else SUBSETS,
        calibration_size=64 if quick else 256,
        recovery="fine_tune",
        recovery_data=bundle.train_data,
        recovery_epochs=1,
        recovery_lr=1e-3,
    )
    return _with_percent_ratios(summarise(runs)).to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer examples, ratios and repeats")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()}, {args.threads} threads{' (quick)' if args.quick else ''}")
    with stopwatch() as elapsed:
        print_table(
            "input features: largest ‖X_j‖₂ / median, per pruned layer",
            _outlier_rows("minilm", args.quick) + _outlier_rows("tiny_gpt", args.quick),
            float_format="{:.2f}",
        )
        print_table("(a) minilm: one-shot pruning of the block layers", _one_shot_rows("minilm", args.quick))
        print_table("(b) tiny_gpt: one-shot pruning of the block layers", _one_shot_rows("tiny_gpt", args.quick))
        print_table(
            "(c) depth: 33 % of the blocks", _depth_rows("tiny_gpt", args.quick) + _depth_rows("minilm", args.quick)
        )
        channel_title = "30 %" if args.quick else "10, 30 and 50 %"
        print_table(f"(d) digits_cnn: {channel_title} of channels, BatchNorm re-estimated", _channel_rows(args.quick))
    print(f"\nload average {os.getloadavg()}, {elapsed():.0f} s in all")


if __name__ == "__main__":
    main()
