"""Load the original model and run it: the reference every artifact is judged against."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..config.manifest import Manifest
from ..errors import SourceError


class Source(Protocol):
    """An original model: its identity and a reference runner."""

    @property
    def framework(self) -> str:
        """"torch", "tensorflow" or "onnx"."""
        ...

    @property
    def sha256(self) -> str:
        """A hash of the model's weights (or its file)."""
        ...

    @property
    def description(self) -> str:
        """Where the model came from, for the bundle's provenance."""
        ...

    @property
    def cache_key(self) -> str:
        """What identifies the model for the build cache (weights and, where it can, code)."""
        ...

    def reference(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs of the original model, keyed by the manifest's output names."""
        ...


def load_source(manifest: Manifest) -> Source:
    """The manifest's source model, loaded and checked against its signature."""
    if manifest.source.framework == "torch":
        from .torch_source import TorchSource
        return TorchSource.load(manifest)
    if manifest.source.framework == "onnx":
        from .onnx_source import OnnxSource
        return OnnxSource.load(manifest)
    if manifest.source.framework == "tensorflow":
        from .tf_source import TensorFlowSource
        return TensorFlowSource.load(manifest)
    raise SourceError(f"unsupported framework {manifest.source.framework!r}",
                      where=f"{manifest.file}: source.framework")
