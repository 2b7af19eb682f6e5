"""What a zoo entry is, and how its weights are made (a quick seeded training in code) and loaded.

An ``Entry`` names one model: its framework (torch, tensorflow, or onnx: a torch entry exported
by torch.onnx.export at a given opset), how to make the architecture, how to fit it for a few
seconds on data made in code (``zoo.models.data``), its inputs and outputs as the manifest writes
them, and the samples its calibration entry point yields. ``zoo/run.py`` prepares each entry in a
subprocess of its own (``python -m zoo.prepare``: train, save the weights, export ONNX), then
builds it with ``edgepack build``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import batches

TRAIN_SEED, CALIB_SEED = 11, 2024
Targets = Any  # an array of labels, or a dict of arrays (several heads)


def inp(name: str, dtype: str, shape: list[Any], layout: str | None = None) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape, **({"layout": layout} if layout else {})}


def out(name: str, scores: bool, shape: list[Any] | None = None, dtype: str = "float32") -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "scores": scores, **({"shape": shape} if shape else {})}


@dataclass(frozen=True)
class Entry:
    """One zoo model. ``data(n, seed) -> (feeds, targets)``; ``make() -> model`` (random weights,
    seeded); ``train(model, entry)`` fits it in place (None: the random weights are kept)."""

    name: str
    family: str
    framework: str                     # torch | tensorflow | onnx
    arch: str                          # what it is, in a few words
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    data: Callable[[int, int], tuple[dict[str, np.ndarray], Targets]]
    make: Callable[[], Any] | None = None
    train: Callable[[Any, Entry], None] | None = None
    base: str | None = None            # onnx: the torch entry it exports
    opset: int | None = None           # onnx: torch.onnx.export(opset_version=...)
    dynamo: bool = False               # onnx: torch.onnx.export(dynamo=...)
    tags: tuple[str, ...] = ()
    calibration: int = 128               # the packager's defaults: 128 calibration samples,
    golden: int = 32                     # 32 golden ones
    extra: dict[str, Any] = field(default_factory=dict)

    # -- data ------------------------------------------------------------------------------------

    def samples(self, n: int | None = None, seed: int = CALIB_SEED, batch: int = 16) -> Iterator[dict[str, np.ndarray]]:
        """Feed dicts of real-looking samples (never the training draw)."""
        feeds, _ = self.data(n or self.calibration, seed)
        yield from batches({s["name"]: feeds[s["name"]] for s in self.inputs}, batch)

    def example(self, n: int = 2) -> dict[str, np.ndarray]:
        feeds, _ = self.data(n, CALIB_SEED + 1)
        return {s["name"]: feeds[s["name"]] for s in self.inputs}

    # -- weights ---------------------------------------------------------------------------------

    @property
    def weights_suffix(self) -> str:
        return ".weights.h5" if self.framework == "tensorflow" else ".pt"

    def fit(self) -> Any:
        """The model with its weights: made (seeded) and trained when the entry says how."""
        assert self.make is not None, f"{self.name}: an {self.framework} entry has no make()"
        seed_everything(self.framework)
        model = self.make()
        if self.train is not None:
            self.train(model, self)
        return _eval(model)

    def save(self, model: Any, path: Path) -> None:
        if self.framework == "tensorflow":
            model.save_weights(str(path))
        else:
            import torch
            torch.save(model.state_dict(), str(path))

    def load(self, weights: str | Path) -> Any:
        """What the manifest's entry point returns: the architecture with the saved weights."""
        assert self.make is not None
        seed_everything(self.framework)
        model = self.make()
        if self.framework == "tensorflow":
            model.load_weights(str(weights))
            return model
        import torch
        model.load_state_dict(torch.load(str(weights), weights_only=True))
        return _eval(model)


def _eval(model: Any) -> Any:
    if hasattr(model, "eval") and hasattr(model, "state_dict"):
        model.eval()
    return model


def seed_everything(framework: str) -> None:
    if framework == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        keras.utils.set_random_seed(0)
    else:
        import torch
        torch.manual_seed(0)


# -- quick training -------------------------------------------------------------------------------


def train_scale() -> float:
    """$ZOO_TRAIN_SCALE (zoo/prepare.py --quick sets it): a share of the steps and epochs below."""
    return float(os.environ.get("ZOO_TRAIN_SCALE") or 1.0)


def _rows(targets: Targets, idx: np.ndarray) -> Targets:
    return {k: v[idx] for k, v in targets.items()} if isinstance(targets, dict) else targets[idx]


def fit_torch(model: Any, entry: Entry, loss: Callable[[Any, Any], Any], *, steps: int = 120, batch: int = 32,
              lr: float = 3e-3, n: int = 512) -> None:
    """Adam on ``loss(outputs, targets)`` over a seeded training draw (targets as torch tensors)."""
    import torch
    feeds, targets = entry.data(n, TRAIN_SEED)
    rng = np.random.default_rng(TRAIN_SEED)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(max(1, round(steps * train_scale()))):
        idx = rng.choice(n, size=min(batch, n), replace=False)
        args = [torch.from_numpy(feeds[s["name"]][idx]) for s in entry.inputs]
        t = _rows(targets, idx)
        t = {k: torch.from_numpy(v) for k, v in t.items()} if isinstance(t, dict) else torch.from_numpy(t)
        opt.zero_grad()
        value = loss(model(*args), t)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()


def ce(logits: Any, labels: Any) -> Any:
    """Cross-entropy with the classes on the last axis (any leading axes)."""
    import torch
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def fit_keras(model: Any, entry: Entry, loss: Any, *, epochs: int = 4, batch: int = 32, lr: float = 3e-3,
              n: int = 512, bn_momentum: float | None = 0.9) -> None:
    """model.fit over a seeded training draw. Batch norms get ``bn_momentum`` first, so a few
    epochs leave moving statistics that match the data (keras.applications use 0.999)."""
    import keras
    feeds, targets = entry.data(n, TRAIN_SEED)
    if bn_momentum is not None:
        for layer in _all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    x = [feeds[s["name"]] for s in entry.inputs]
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
    model.fit(x if len(x) > 1 else x[0], targets, epochs=max(1, round(epochs * train_scale())), batch_size=batch,
              verbose=0, shuffle=True)


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found += _all_layers(layer)
    return found
