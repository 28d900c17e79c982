"""Attention-head pruning on `minilm`: quality and measured speed-up against the share of heads removed.

For 0, 1, 2, 3, 4 and 6 of the 12 heads per layer (by L1 magnitude per layer, and by head
ablation ranked globally): mean cosine, retrieval agreement (same nearest neighbour) and
paraphrase accuracy on the sample's 276 sentences, parameters, FLOPs, and latency at batch
8 × 128 tokens with every model timed interleaved in one run (median and, for a busy machine,
the fastest block too). Also 30 % unstructured pruning.
Targets (issue 9): 30 % unstructured keeps mean cosine ≥ 0.9; 25 % of heads gives a speed-up
> 1.1× with retrieval agreement ≥ 0.9.
Run: `python -m bench.heads [--threads 1] [--rounds 15]`.
"""

from __future__ import annotations

import argparse

import torch

import prune_engine as pe
from bench.common import print_table, stopwatch
from sample_models import load_sample

HEADS_REMOVED = (1, 2, 3, 4, 6)
PLANS = {
    "l1 per layer": {"criterion": "l1", "scope": "layer"},
    "ablation global": {"criterion": "ablation", "scope": "global"},
}
BATCH = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_sample("minilm")
    data, example = bundle.eval_data, bundle.example_input
    reference = pe.model_outputs(bundle.model, data)
    base = pe.model_summary(bundle.model, example)
    models = {"original": bundle.model}
    rows = [{"plan": "original", "heads removed": 0, "seconds": 0.0, **_quality(bundle.model, data, reference)}]
    rows[0].update(params=base["params"], gflops=base["flops"] / 1e9)
    for label, settings in PLANS.items():
        for removed in HEADS_REMOVED:
            plan = pe.PruningPlan(granularity="head", global_ratio=removed / 12, **settings)
            with stopwatch() as elapsed:
                pruned = pe.apply_plan(bundle.model, plan, example, data).model
                seconds = elapsed()
            summary = pe.model_summary(pruned, example)
            name = f"{label} · {removed}/12"
            models[name] = pruned
            rows.append(
                {
                    "plan": label,
                    "heads removed": removed,
                    "seconds": seconds,
                    **_quality(pruned, data, reference),
                    "params": summary["params"],
                    "gflops": summary["flops"] / 1e9,
                }
            )
    latency = pe.measure_latency(models, example, batch_size=BATCH, threads=args.threads, rounds=args.rounds).table
    for row, (_, measured) in zip(rows, latency.iterrows(), strict=True):
        row.update(
            median_ms=measured["median_ms"],
            iqr_ms=measured["iqr_ms"],
            speedup=measured["speedup"],
            min_ms=measured["min_ms"],
            speedup_of_min=latency["min_ms"].iloc[0] / measured["min_ms"],
        )
    print_table(f"Head pruning on minilm (batch {BATCH} × 128 tokens, {args.threads} thread(s))", rows)
    unstructured = pe.apply_plan(bundle.model, pe.PruningPlan(granularity="unstructured", global_ratio=0.3), example)
    print_table("30 % unstructured (L1 per layer)", [_quality(unstructured.model, data, reference)])


def _quality(model: torch.nn.Module, data: pe.EvalData, reference: torch.Tensor) -> dict[str, float]:
    metrics = pe.evaluate(model, data, reference=reference)
    return {key: metrics[key] for key in ("cosine", "retrieval_agreement", "paraphrase_accuracy")}


if __name__ == "__main__":
    main()
