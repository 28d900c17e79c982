"""An example `PRUNESCOPE_ARCHITECTURES` file: the model classes PruneScope may load your weights into.

A weights-only file (safetensors, or `torch.save(model.state_dict(), path)`) holds numbers but no code,
so PruneScope needs the class the weights came from. It imports the files the operator lists in
`PRUNESCOPE_ARCHITECTURES` (never an uploaded file) and reads `ARCHITECTURES` from each: a dict of
name → zero-argument callable returning an untrained model. The names appear in the Model page's
"Architecture" list and are what `prunescope … --architecture NAME` accepts.
"""

from torch import nn


class SmallConvNet(nn.Module):
    """8×8 grey images (N, 1, 8, 8) → 10 class logits: two conv + BatchNorm + ReLU blocks and a linear head."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 4 * 4, 10))

    def forward(self, x):
        return self.head(self.features(x))


ARCHITECTURES = {
    "small_convnet": SmallConvNet,  # a class whose arguments all have defaults is a zero-argument factory
    "small_convnet_wide": lambda: SmallConvNet(width=32),  # other settings: wrap them in a lambda
}
