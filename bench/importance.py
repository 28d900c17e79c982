"""Importance criteria: how long each takes, and how much accuracy each keeps when it chooses
which half of the channels to remove.

1. Seconds per criterion to score every layer of each sample on its evaluation set
   (channel level, cache cleared, up to 256 examples). Target: every Captum criterion on
   `digits_resnet` in under 5 s on 2 threads.
2. Test accuracy after removing 50 % of the channels of every layer (`global_ratio=0.5`,
   layer and global scope), no fine-tuning, with and without re-estimating BatchNorm
   statistics. Data-driven criteria score on the *training* split (scoring on the test
   split would leak it into the choice); `random` is the mean over 5 seeds. Targets: some
   data-driven criterion beats l1 on some sample; every criterion beats random.

Run: `python -m bench.importance [--threads 2] [--seeds 5]`.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

import prune_engine as pe
from bench.common import print_table, stopwatch
from prune_engine.importance import CRITERIA, clear_importance_cache, importance
from sample_models import list_samples, load_sample

RATIO = 0.5
CAPTUM = ("grad_x_activation", "conductance", "deeplift")


def timing_rows(bundle: pe.ModelBundle) -> list[dict[str, object]]:
    rows = []
    for criterion in CRITERIA:
        clear_importance_cache()
        with stopwatch() as elapsed:
            try:
                scores = importance(bundle.model, criterion, bundle.eval_data)
                layers: object = len(scores)
            except pe.CriterionError as error:
                layers = f"refused: {str(error)[:60]}…"
            seconds = elapsed()
        rows.append({"sample": bundle.name, "criterion": criterion, "seconds": seconds, "layers": layers})
    return rows


def pruned_accuracy(bundle: pe.ModelBundle, criterion: str, scope: str, recalibrate: bool, seed: int = 0) -> float:
    plan = pe.PruningPlan(
        granularity="channel",
        criterion=criterion,
        scope=scope,
        global_ratio=RATIO,
        recalibrate_bn=recalibrate,
        seed=seed,
    )
    result = pe.apply_plan(
        bundle.model, plan, bundle.example_input, data=bundle.train_data, calibration_data=bundle.train_data
    )
    return pe.evaluate(result.model, bundle.eval_data)["accuracy"]


def accuracy_rows(bundle: pe.ModelBundle, seeds: int) -> list[dict[str, object]]:
    rows = []
    for scope in ("layer", "global"):
        for criterion in CRITERIA:
            row: dict[str, object] = {"sample": bundle.name, "scope": scope, "criterion": criterion}
            for recalibrate, column in ((False, "acc"), (True, "acc_bn_recal")):
                runs = range(seeds) if criterion == "random" else range(1)
                try:
                    accuracies = [pruned_accuracy(bundle, criterion, scope, recalibrate, seed) for seed in runs]
                except pe.PruneScopeError as error:
                    row[column] = f"refused ({type(error).__name__})"
                    continue
                row[column] = statistics.mean(accuracies)
                row[f"{column}_seed_range"] = (
                    f"{min(accuracies):.3f}–{max(accuracies):.3f}" if len(accuracies) > 1 else ""
                )
            rows.append(row)
    return rows


def verdicts(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per sample, scope and column: which criteria beat l1, and which fail to beat random."""
    found = []
    keys = sorted({(row["sample"], row["scope"]) for row in rows})
    for sample, scope in keys:
        group = {row["criterion"]: row for row in rows if row["sample"] == sample and row["scope"] == scope}
        for column in ("acc", "acc_bn_recal"):
            scored = {name: row[column] for name, row in group.items() if isinstance(row[column], float)}
            data_driven = [name for name in scored if CRITERIA[name].needs_data]
            found.append(
                {
                    "sample": sample,
                    "scope": scope,
                    "column": column,
                    "random": scored["random"],
                    "l1": scored["l1"],
                    "beat_l1": ", ".join(n for n in data_driven if scored[n] > scored["l1"]) or "-",
                    "not_above_random": ", ".join(n for n in scored if n != "random" and scored[n] <= scored["random"])
                    or "-",
                }
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5, help="seeds averaged for the random criterion")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads}  load average (1/5/15 min)={os.getloadavg()}")
    bundles = [load_sample(name) for name in list_samples()]

    timings = [row for bundle in bundles for row in timing_rows(bundle)]
    print_table("Seconds to score every layer (channel level, eval split, ≤ 256 examples)", timings)
    resnet_captum = {row["criterion"]: row["seconds"] for row in timings if row["sample"] == "digits_resnet"}
    slow = [name for name in CAPTUM if resnet_captum[name] >= 5]
    print(
        f"\nTarget: Captum criteria on digits_resnet under 5 s — {'met' if not slow else 'missed: ' + ', '.join(slow)}"
    )

    clear_importance_cache()
    originals = [{"sample": b.name, "accuracy": pe.evaluate(b.model, b.eval_data)["accuracy"]} for b in bundles]
    print_table("Test accuracy before pruning", originals)
    accuracies = [row for bundle in bundles for row in accuracy_rows(bundle, args.seeds)]
    print_table(
        f"Test accuracy after removing {RATIO:.0%} of channels, no fine-tuning (random: mean of {args.seeds} seeds)",
        accuracies,
    )
    print_table("Which data-driven criteria beat l1, and which criteria do not beat random", verdicts(accuracies))
    print(f"\nload average after (1/5/15 min)={os.getloadavg()}")


if __name__ == "__main__":
    main()
