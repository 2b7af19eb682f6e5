"""The parts of a manifest as typed values (its source, outputs, data and evaluation), which
``manifest.parse_manifest`` makes and the build reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class OutputSpec:
    """An output as the manifest declares it. Unlike an input its shape may be left out: the
    build observes it from the reference run, and only then does it become the bundle's
    ``TensorSpec`` (inputs are ``TensorSpec`` from the start: the one class, shared with the
    runtime)."""

    name: str
    dtype: str = "float32"
    shape: tuple[int | str, ...] | None = None  # None: observed at build time
    layout: str | None = None
    scores: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype,
                               "shape": list(self.shape) if self.shape is not None else None}
        if self.layout:
            out["layout"] = self.layout
        if self.scores is not None:
            out["scores"] = self.scores
        return out


@dataclass(frozen=True)
class SourceSpec:
    """Where the original model comes from."""

    framework: str
    entry: str | None = None      # torch: "file.py:function" or "module:function"
    path: Path | None = None      # onnx: model file
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """Real data: an .npz file, an entry point yielding feed dicts, a folder of images (or random, if asked)."""

    file: Path | None = None
    entry: str | None = None
    random: bool = False
    images: Path | None = None  # a folder of images, pre-processed as the manifest declares
    texts: Path | None = None  # a text file, one sample per line, tokenized as the manifest declares
    samples: int = 128
    batch_size: int = 16
    seed: int = 0


@dataclass(frozen=True)
class EvaluationSpec:
    """Held-out data for each artifact's metric (accuracy or an entry point) and its budget."""

    entry: str
    output: str
    metric: str = "accuracy"
    higher_is_better: bool = True
    max_drop: float | None = None  # points (hundredths of the metric)

    @property
    def metric_name(self) -> str:
        return self.metric if self.metric == "accuracy" else self.metric.rpartition(":")[2]
