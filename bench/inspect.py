"""Inspection speed and memory: layer_stats + every weight_histogram, per sample and on a
synthetic 100M-parameter (≈109M) MLP.

Target (issue 2): the 100M model in under 10 s with peak RSS under 2.5 × its weight
bytes + 1 GB. Run: `python -m bench.inspect`.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import prune_engine as pe
from bench.common import current_rss_mb, peak_rss_mb, print_table, stopwatch
from sample_models import list_samples, load_sample


def hundred_million_mlp() -> nn.Module:
    """Six 4096×4096 layers plus input/output projections: ≈109M parameters, random weights."""
    width = 4096
    layers: list[nn.Module] = [nn.Linear(1024, width), nn.ReLU()]
    for _ in range(6):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 1000))
    return nn.Sequential(*layers).eval()


def inspect_everything(model: nn.Module) -> int:
    """What the Inspect page computes for a model: the stats table and every histogram."""
    stats = pe.layer_stats(model)
    for name in stats["name"]:
        pe.weight_histogram(model, name, bins=200)
    return len(stats)


def measure(name: str, model: nn.Module) -> dict[str, object]:
    weight_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    rss_before = current_rss_mb()
    with stopwatch() as elapsed:
        layers = inspect_everything(model)
        seconds = elapsed()
    peak = peak_rss_mb()
    return {
        "model": name,
        "params": sum(p.numel() for p in model.parameters()),
        "layers": layers,
        "weights_MiB": weight_mb,
        "seconds": seconds,
        "rss_before_MiB": rss_before,
        "peak_rss_MiB": peak,
        "peak_limit_MiB": 2.5 * weight_mb + 1024,
        "within_target": peak <= 2.5 * weight_mb + 1024 and (seconds < 10 or weight_mb < 100),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(name, load_sample(name).model) for name in list_samples()]
    torch.manual_seed(0)
    rows.append(measure("mlp_100m (synthetic)", hundred_million_mlp()))
    print_table(f"layer_stats + all weight_histograms ({args.threads} threads)", rows)


if __name__ == "__main__":
    main()
