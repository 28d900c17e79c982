"""Structured (channel) pruning speed-ups: PruneScope's engine vs Torch-Pruning's own pruner.

For `digits_resnet` (batch 64) and a ResNet-18-shaped model (3×64×64, batch 32), at
channel ratios 0.25/0.5/0.75: params, MACs, latency measured interleaved in one run
(dense, ours, Torch-Pruning's BasePruner with L1 group magnitude), speed-up and
efficiency = speed-up ÷ MAC reduction. Targets at 0.5 on the ResNet-18 shape: speed-up
≥ 0.9 × the MAC reduction and ≥ 0.95 × Torch-Pruning's own speed-up.
Run: `python -m bench.structured [--threads 1] [--rounds 15]`.
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch
import torch_pruning as tp
from torch import nn

import prune_engine as pe
from bench.common import print_table
from sample_models import load_sample
from sample_models.architectures import BasicBlock


class ResNet18Shape(nn.Module):
    """ResNet-18's layout (ImageNet stem, 2-2-2-2 basic blocks, 64-512 channels), random weights."""

    def __init__(self, classes: int = 100) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, in_channels = [], 64
        for index, width in enumerate((64, 128, 256, 512)):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(in_channels, width, stride), BasicBlock(width, width)))
            in_channels = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def torch_pruning_reference(model: nn.Module, example: torch.Tensor, ratio: float) -> nn.Module:
    """The same ratio done directly with Torch-Pruning's BasePruner (L1 group magnitude)."""
    pruned = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.BasePruner(
            pruned,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=[pruned.fc],
        )
        pruner.step()
    return pruned


def macs(model: nn.Module, example: torch.Tensor) -> float:
    return pe.count_flops(model, example) / 2


def bench_model(name: str, model: nn.Module, example: torch.Tensor, batch: int, args: argparse.Namespace) -> list:
    rows = []
    dense_macs = macs(model, example)
    dense_params = sum(p.numel() for p in model.parameters())
    for ratio in (0.25, 0.5, 0.75):
        plan = pe.PruningPlan(granularity="channel", criterion="l1", global_ratio=ratio)
        ours = pe.apply_plan(model, plan, example).model
        reference = torch_pruning_reference(model, example, ratio)
        latency = pe.compare_latency(
            {"dense": model, "ours": ours, "torch_pruning": reference},
            example,
            batch_size=batch,
            threads=args.threads,
            rounds=args.rounds,
        ).set_index("model")
        for label, pruned in (("ours", ours), ("torch_pruning", reference)):
            reduction = dense_macs / macs(pruned, example)
            rows.append(
                {
                    "model": name,
                    "ratio": ratio,
                    "pruner": label,
                    "params": sum(p.numel() for p in pruned.parameters()),
                    "params_kept": sum(p.numel() for p in pruned.parameters()) / dense_params,
                    "MMACs": macs(pruned, example) / 1e6,
                    "MAC_reduction": reduction,
                    "dense_ms": latency.loc["dense", "median_ms"],
                    "pruned_ms": latency.loc[label, "median_ms"],
                    "iqr_ms": latency.loc[label, "iqr_ms"],
                    "speedup": latency.loc[label, "speedup"],
                    "efficiency": latency.loc[label, "speedup"] / reduction,
                }
            )
        ours_row, reference_row = rows[-2], rows[-1]
        ours_row["vs_torch_pruning"] = ours_row["speedup"] / reference_row["speedup"]
        reference_row["vs_torch_pruning"] = 1.0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads while timing (1 is the stable choice)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds per model")
    args = parser.parse_args()
    torch.manual_seed(0)
    digits = load_sample("digits_resnet")
    rows = bench_model("digits_resnet", digits.model, digits.example_input, 64, args)
    resnet18 = ResNet18Shape().eval()
    rows += bench_model("resnet18_shape", resnet18, torch.randn(1, 3, 64, 64), 32, args)
    table = print_table(f"Channel pruning, ours vs Torch-Pruning ({args.threads} thread(s), CPU)", rows)
    target = table[(table["model"] == "resnet18_shape") & (table["ratio"] == 0.5) & (table["pruner"] == "ours")].iloc[0]
    print(
        f"\nResNet-18 shape at 0.5: efficiency {target['efficiency']:.2f} (target ≥ 0.90), "
        f"speed-up vs Torch-Pruning {target['vs_torch_pruning']:.2f} (target ≥ 0.95)"
    )


if __name__ == "__main__":
    main()
