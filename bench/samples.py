"""The sample models' figures: accuracy, params, FLOPs, latency at batch 64, and the
accuracy left after pruning without fine-tuning (50 % global unstructured l1, 30 %
channels l1, with and without re-estimating BatchNorm statistics). Run: `python -m bench.samples [--threads 1]`.
"""

from __future__ import annotations

import argparse

import torch

import prune_engine as pe
from bench.common import print_table
from sample_models import list_samples, load_sample

PRUNINGS = {
    "unstructured 50% global": pe.PruningPlan(granularity="unstructured", scope="global", global_ratio=0.5),
    "channel 30%": pe.PruningPlan(granularity="channel", global_ratio=0.3),
    "channel 30% + BN recal.": pe.PruningPlan(granularity="channel", global_ratio=0.3, recalibrate_bn=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for name in list_samples():
        bundle = load_sample(name)
        summary = pe.model_summary(bundle.model, bundle.example_input)
        latency = pe.compare_latency({name: bundle.model}, bundle.example_input, batch_size=64, threads=args.threads)
        row = {
            "sample": name,
            "accuracy": pe.evaluate(bundle.model, bundle.eval_data)["accuracy"],
            "params": summary["params"],
            "MFLOPs/example": summary["flops"] / 1e6,
            "latency_ms@64": latency["median_ms"].iloc[0],
            "iqr_ms": latency["iqr_ms"].iloc[0],
        }
        for label, plan in PRUNINGS.items():
            pruned = pe.apply_plan(bundle.model, plan, bundle.example_input, calibration_data=bundle.train_data).model
            row[f"acc {label}"] = pe.evaluate(pruned, bundle.eval_data)["accuracy"]
            row[f"params {label}"] = pe.model_summary(pruned, bundle.example_input)["nonzero_params"]
        rows.append(row)
    torch.set_num_threads(args.threads)
    print_table(f"Sample models (latency: batch 64, {args.threads} thread(s), CPU)", rows)


if __name__ == "__main__":
    main()
