"""Make the files the README uploads: a trained `small_convnet` state_dict and its data as CSV.

    .venv/bin/python -m docs.examples.make_upload_files OUT_DIR

writes OUT_DIR/small_convnet.pt (the weights), digits_eval.csv and digits_train.csv (64 pixel columns and a
`label` column each; the scikit-learn digits, split 70/30). Training takes a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from docs.examples.my_architectures import SmallConvNet

EPOCHS = 15
BATCH = 64
SEED = 0


def digits_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, eval) tables: pixels scaled to 0–1 in columns p0…p63, and the digit in `label`."""
    digits = load_digits()
    frame = pd.DataFrame(digits.data / 16.0, columns=[f"p{i}" for i in range(64)])
    frame["label"] = digits.target
    train, evaluation = train_test_split(frame, test_size=0.3, random_state=SEED, stratify=frame["label"])
    return train, evaluation


def tensors(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs shaped (N, 1, 8, 8), as the Model page's "Shape of one example: 1, 8, 8" reshapes them, and labels."""
    pixels = torch.tensor(frame.drop(columns="label").to_numpy(), dtype=torch.float32)
    return pixels.reshape(-1, 1, 8, 8), torch.tensor(frame["label"].to_numpy())


def train(frame: pd.DataFrame) -> SmallConvNet:
    """A few epochs of Adam: enough for ~97 % on the held-out digits."""
    torch.manual_seed(SEED)
    model = SmallConvNet()
    inputs, labels = tensors(frame)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(inputs)).split(BATCH):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()
    return model.eval()


def write_files(folder: Path) -> float:
    """Train the model and write the three files into `folder`; returns its accuracy on the evaluation CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    train_frame, eval_frame = digits_frames()
    model = train(train_frame)
    torch.save(model.state_dict(), folder / "small_convnet.pt")
    eval_frame.to_csv(folder / "digits_eval.csv", index=False)
    train_frame.to_csv(folder / "digits_train.csv", index=False)
    inputs, labels = tensors(eval_frame)
    with torch.no_grad():
        return (model(inputs).argmax(1) == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the three files into")
    folder = parser.parse_args().out
    accuracy = write_files(folder)
    print(f"wrote {folder}/small_convnet.pt, digits_eval.csv, digits_train.csv; eval accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
