"""Shared fixtures: small real models and manifests written into a temp folder."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

TINY_MODEL = '''
import numpy as np
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def build(seed=0):
    torch.manual_seed(seed)
    return Tiny().eval()


def samples(n=64):
    rng = np.random.default_rng(1)
    # "real" data for the tiny model: smooth blobs, not white noise
    base = rng.random((n, 1, 1, 1)).astype(np.float32)
    grid = np.linspace(0, 1, 4, dtype=np.float32)
    x = base * grid[None, None, :, None] + (1 - base) * grid[None, None, None, :]
    yield {"x": x.astype(np.float32)}


def single_samples(n=20):
    """The same data one sample per feed, for a model with a fixed batch of 1."""
    for batch in samples(n):
        for i in range(len(batch["x"])):
            yield {"x": batch["x"][i:i + 1]}
'''


def tiny_manifest(folder: Path, **overrides: Any) -> Path:
    """Write the tiny model's manifest into ``folder`` (an override of None removes that key)."""
    doc: dict[str, Any] = {
        "name": "tiny",
        "source": {"framework": "torch", "entry": "tiny.py:build"},
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 4, 4]}],
        "outputs": ["scores"],
        "calibration": {"entry": "tiny.py:samples", "samples": 64},
        "golden": {"samples": 16},
        "targets": ["x86-cpu"],
    }
    for key, value in overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def tiny_project(tmp_path: Path) -> Callable[..., Path]:
    """Write the tiny torch model and a manifest; returns a function giving the manifest path."""
    (tmp_path / "tiny.py").write_text(TINY_MODEL)
    return lambda **overrides: tiny_manifest(tmp_path, **overrides)


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


DICT_MODEL = '''
import torch
from torch import nn


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        return {"probs": torch.softmax(logits, -1), "logits": logits}


def build():
    torch.manual_seed(0)
    return TwoHeads().eval()
'''


def build_example(out: Path, train_script: str, manifest: str) -> Path:
    """Train a shipped example (skipped when its weights exist) and build its manifest into ``out``."""
    import subprocess
    import sys
    subprocess.run([sys.executable, train_script], cwd=REPO, check=True, timeout=600)
    proc = subprocess.run([sys.executable, "-m", "packager", "build", manifest, "--out", str(out), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


@pytest.fixture(scope="session", autouse=True)
def _build_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """CLI builds in tests use a cache of their own, never the user's ~/.cache/edgepack."""
    import os
    os.environ["EDGEPACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgepack-cache"))
