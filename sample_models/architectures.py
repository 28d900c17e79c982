"""The sample architectures: three classifiers for 8×8 digit images.

Every model takes inputs of shape (N, 1, 8, 8) and returns logits of shape (N, 10).
Each activation is its own module (never a shared `nn.ReLU`, never `F.relu`), so layer
hooks such as Captum's attach to exactly one place in the network, and every model
traces cleanly with Torch-Pruning's dependency graph.

`ARCHITECTURES` maps an architecture name to a zero-argument factory of an untrained
model; loading a state_dict by architecture name looks it up there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

CLASSES = 10
"""Digits 0–9."""

IMAGE_SIZE = 8
"""Images are 8×8 pixels, one channel."""


class DigitsMLP(nn.Module):
    """A plain multilayer perceptron: flatten the 64 pixels, two hidden layers, ten logits."""

    def __init__(self, hidden: tuple[int, int] = (256, 128)) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(IMAGE_SIZE * IMAGE_SIZE, hidden[0])
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden[1], CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.fc1(self.flatten(x)))
        x = self.relu2(self.fc2(x))
        return self.fc3(x)


class DigitsCNN(nn.Module):
    """Three conv + BatchNorm + ReLU blocks, max-pooling 8×8 → 4×4 → 2×2, then a linear head."""

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 64)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels[0], channels[1], kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[1])
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(channels[1], channels[2], kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[2])
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels[2] * (IMAGE_SIZE // 4) ** 2, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
        return self.fc(self.flatten(x))


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3×3 conv + BatchNorm, added to a shortcut, then ReLU.

    The shortcut is the identity, or a 1×1 conv + BatchNorm (`downsample`) where the
    block changes the stride or the channel count. The inner ReLU (`relu1`) and the
    ReLU after the addition (`relu_out`) are separate modules.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu_out(out + identity)


class DigitsResNet(nn.Module):
    """A small ResNet: a conv stem, two stages of basic blocks (the second halves the
    resolution to 4×4 with stride 2), global average pooling and a linear head.

    The channels are wide enough for compute to outweigh per-layer overhead on a CPU, so
    removing channels shows up as a real speed-up.
    """

    def __init__(self, widths: tuple[int, int] = (64, 128), blocks_per_stage: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu1 = nn.ReLU()
        stages = []
        in_channels = widths[0]
        for index, width in enumerate(widths):
            blocks = [BasicBlock(in_channels, width, stride=1 if index == 0 else 2)]
            blocks += [BasicBlock(width, width) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.layer1, self.layer2 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(self.flatten(self.avgpool(x)))


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "digits_mlp": DigitsMLP,
    "digits_cnn": DigitsCNN,
    "digits_resnet": DigitsResNet,
}
"""Architecture name → factory of an untrained model (weights from the global torch seed)."""
