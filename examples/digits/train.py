"""Train the digits CNN on scikit-learn's digits (a few seconds on a CPU) and save its weights.

    python examples/digits/train.py [--epochs 30] [--force]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import test_split, train_split  # noqa: E402
from model import WEIGHTS, DigitsCNN  # noqa: E402


def train(epochs: int = 30, seed: int = 0) -> tuple[DigitsCNN, float]:
    torch.manual_seed(seed)
    x, y = train_split()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    feeds, labels = test_split()
    with torch.no_grad():
        pred = model(torch.from_numpy(feeds["image"])).argmax(1).numpy()
    return model, float(np.mean(pred == labels))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--force", action="store_true", help="retrain even if weights exist")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    if args.out.is_file() and not args.force:
        print(f"weights already at {args.out} (use --force to retrain)")
        return 0
    model, acc = train(args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"trained DigitsCNN: test accuracy {acc:.4f}; weights saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
