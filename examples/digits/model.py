"""A small CNN for scikit-learn's 8x8 digits, and the manifest's entry point that loads it."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

WEIGHTS = Path(__file__).resolve().parent / "artifacts" / "digits_cnn.pt"


class DigitsCNN(nn.Module):
    """Two conv layers and a small classifier head: about 40k parameters, trains in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


def build_model(weights: str | None = None) -> nn.Module:
    """The trained model (manifest entry point). Weights come from train.py."""
    path = Path(weights) if weights else WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no trained weights at {path}; run: python examples/digits/train.py")
    model = DigitsCNN()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
