"""The one seam every backend implements: open an artifact, run feeds, close.

Backends import their framework lazily (inside ``available``/``open``) so that importing the
runtime costs only numpy, and a device without, say, torch can still use onnxruntime.
"""
from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np


class Backend:
    """Base class for backends. Subclasses set ``name`` and implement the four methods.

    Lifecycle: ``available()`` (class-level, cheap) -> ``open(...)`` -> ``run(...)``* ->
    ``close()``. Instances are context managers. ``run`` must be safe to call from several
    threads at once after ``open``.
    """

    name: ClassVar[str] = "base"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether the framework can be imported here, and why not (or its version) as text."""
        raise NotImplementedError

    def open(self, path: str | Path, *, providers: Sequence[str] = (),
             provider_options: Sequence[Mapping[str, Any]] = (),
             threads: int | None = None) -> None:
        """Load the artifact. Raise BackendError when it cannot run as asked."""
        raise NotImplementedError

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference: outputs keyed by the artifact's output names."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the session; safe to call twice."""
        raise NotImplementedError

    @property
    def providers_in_use(self) -> list[str]:
        """Execution providers/delegates the open session actually runs on."""
        return []

    @property
    def providers_asked(self) -> list[str]:
        """Providers requested in ``open``."""
        return []

    @property
    def input_names(self) -> list[str]:
        return []

    @property
    def output_names(self) -> list[str]:
        return []

    @property
    def version(self) -> str | None:
        """Framework version, for reports."""
        return None

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
