"""Small models of every shape the pruning engine must handle, with example inputs.

Each entry builds a fresh, seeded model in eval mode. `channel_prunable` says whether
channel pruning is expected to shrink it; the last three hold parts the engine must
refuse by name rather than break (attention's packed projection, LSTM hidden state,
tied weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(32, 24)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))


class PlainCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))) + shortcut)


class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layer2(self.layer1(self.stem(x)))).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1×1, depthwise 3×3, project 1×1, residual add."""

    def __init__(self, channels: int, expansion: int = 4) -> None:
        super().__init__()
        hidden = channels * expansion
        self.expand = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()
        )
        self.project = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.depthwise(self.expand(x)))


class MobileNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.block1 = InvertedResidual(16)
        self.block2 = InvertedResidual(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.block1(self.stem(x))).mean(dim=(2, 3)))


class TwoBranchConcat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch_a = nn.Conv2d(3, 12, 3, padding=1)
        self.branch_b = nn.Conv2d(3, 8, 5, padding=2)
        self.act = nn.ReLU()
        self.merge = nn.Conv2d(20, 16, 1)
        self.merge_act = nn.ReLU()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        return self.fc(self.merge_act(self.merge(self.act(merged))).mean(dim=(2, 3)))


class GroupedConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.act1 = nn.ReLU()
        self.grouped = nn.Conv2d(16, 32, 3, padding=1, groups=4)
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act2(self.grouped(self.act1(self.conv1(x)))).mean(dim=(2, 3)))


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(2, 16, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(16)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv1d(16, 24, 3, padding=1)
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act2(self.conv2(self.act1(self.bn1(self.conv1(x))))).mean(dim=2))


class TransformerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.proj(x))
        return self.head(hidden[:, -1])


class TiedLanguageModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(40, 16)
        self.hidden = nn.Linear(16, 16)
        self.act = nn.Tanh()
        self.decoder = nn.Linear(16, 40, bias=False)
        self.decoder.weight = self.embedding.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.act(self.hidden(self.embedding(tokens))))


@dataclass(frozen=True)
class ZooEntry:
    name: str
    build: Callable[[], nn.Module]
    example_input: Callable[[], torch.Tensor]
    channel_prunable: bool = True


def _seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        model = factory()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.data.uniform_(0.2, 1.2)
        return model.eval()

    return build


ZOO = [
    ZooEntry("mlp", _seeded(MLP), lambda: torch.randn(2, 16)),
    ZooEntry("plain_cnn", _seeded(PlainCNN), lambda: torch.randn(2, 3, 8, 8)),
    ZooEntry("residual_cnn", _seeded(ResidualCNN), lambda: torch.randn(2, 3, 8, 8)),
    ZooEntry("mobilenet_like", _seeded(MobileNetLike), lambda: torch.randn(2, 3, 8, 8)),
    ZooEntry("two_branch_concat", _seeded(TwoBranchConcat), lambda: torch.randn(2, 3, 8, 8)),
    ZooEntry("grouped_conv", _seeded(GroupedConvNet), lambda: torch.randn(2, 3, 8, 8)),
    ZooEntry("conv1d", _seeded(Conv1dNet), lambda: torch.randn(2, 2, 20)),
    ZooEntry("transformer", _seeded(TransformerNet), lambda: torch.randn(2, 5, 8)),
    ZooEntry("lstm", _seeded(LSTMNet), lambda: torch.randn(2, 6, 8)),
    ZooEntry("tied_embedding", _seeded(TiedLanguageModel), lambda: torch.randint(0, 40, (2, 7)), False),
]
ZOO_BY_NAME = {entry.name: entry for entry in ZOO}
