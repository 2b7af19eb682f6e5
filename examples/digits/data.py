"""Real data for the digits example: scikit-learn's digits (shipped inside the package, no download).

The split is fixed (seeded), so training, calibration and evaluation never overlap by accident:
calibration samples come from the training split, accuracy is measured on the held-out test split.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # (n, 1, 8, 8) in [0, 1]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, random_state=0, stratify=labels)
    return x_train, x_test, y_train, y_test


def train_split() -> tuple[np.ndarray, np.ndarray]:
    x_train, _, y_train, _ = _split()
    return x_train, y_train


def calibration(batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
    """Manifest calibration entry point: batches of real training images."""
    x_train, _, _, _ = _split()
    for start in range(0, len(x_train), batch_size):
        yield {"image": x_train[start:start + batch_size]}


def test_split() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Manifest evaluation entry point: held-out images and their labels."""
    _, x_test, _, y_test = _split()
    return {"image": x_test}, y_test
