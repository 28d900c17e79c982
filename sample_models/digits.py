"""scikit-learn's bundled digits, split and normalised the same way every time.

`load_digits` ships inside scikit-learn (1,797 images of 8×8 pixels, values 0–16), so
the samples need no download. The split is stratified and seeded; pixels are scaled to
0–1 and then standardised with the mean and standard deviation of the train split, so
nothing about the test split leaks into the inputs.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from prune_engine import EvalData

from .architectures import IMAGE_SIZE

SPLIT_SEED = 0
"""`random_state` of the train/test split."""

TEST_FRACTION = 0.2
"""Share of the images held out for evaluation (stratified by digit)."""

PIXEL_MAX = 16.0
"""Brightest pixel value in scikit-learn's digits."""


@functools.cache
def digits_data() -> tuple[EvalData, EvalData]:
    """`(train, test)` splits as float32 inputs of shape (N, 1, 8, 8) and int64 labels.

    Cached because it is deterministic; the tensors are shared, so treat them as read-only.
    """
    digits = load_digits()
    pixels = digits.data.astype(np.float64) / PIXEL_MAX
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, digits.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=digits.target
    )
    mean, std = train_x.mean(), train_x.std()
    return _as_eval_data((train_x - mean) / std, train_y), _as_eval_data((test_x - mean) / std, test_y)


def _as_eval_data(pixels: np.ndarray, labels: np.ndarray) -> EvalData:
    inputs = torch.from_numpy(pixels.astype(np.float32)).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    return EvalData(inputs, torch.from_numpy(labels.astype(np.int64)))
