"""The one seam every backend implements: open an artifact, run feeds, close.

Backends import their framework lazily (inside ``available``/``open``) so that importing the
runtime costs only numpy, and a device without, say, torch can still use onnxruntime.

Backends speak the artifact's names: ``open`` receives the signature's input/output specs
already renamed through the candidate's ``io_map``, and ``run`` takes and returns arrays keyed by
those names; ``Model`` translates to and from the bundle's signature names.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from ..signature import TensorSpec

EMPTY_OPTIONS: Mapping[str, Any] = MappingProxyType({})


def copy_into(dest: np.ndarray, value: np.ndarray, name: str) -> None:
    """``value`` into the caller's preallocated ``dest`` (``run_into``), shapes checked."""
    if dest.shape != value.shape:
        from ..errors import FeedError
        raise FeedError(f"has shape {list(dest.shape)}, this inference gives {list(value.shape)}",
                        where=f"out[{name!r}]", hint="allocate the output with the shape for this batch")
    np.copyto(dest, value, casting="same_kind")


class Backend:
    """Base class for backends. Subclasses set ``name`` and implement the four methods.

    Lifecycle: ``available()`` (class-level, cheap) -> ``open(...)`` -> ``run(...)``* ->
    ``close()``. Instances are context managers. ``run`` must be safe to call from several
    threads at once after ``open``.
    """

    name: ClassVar[str] = "base"
    # True: ``providers`` is a preference list and the session runs on the first one available
    # (TorchScript devices); False: all of them are used together (onnxruntime's CUDA + CPU).
    providers_pick_one: ClassVar[bool] = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether the framework can be imported here, and why not (or its version) as text."""
        raise NotImplementedError

    def open(self, path: str | Path, *, providers: Sequence[str] = (),
             provider_options: Sequence[Mapping[str, Any]] = (),
             threads: int | None = None, options: Mapping[str, Any] = EMPTY_OPTIONS,
             inputs: Sequence[TensorSpec] = (), outputs: Sequence[TensorSpec] = ()) -> None:
        """Load the artifact. Raise BackendError when it cannot run as asked.

        ``options`` is the candidate's whole bundle.json object (read-only), so a backend can
        read its own fields (``precision``, ``quantized_engine``, ...) without the selector
        knowing them. ``inputs``/``outputs`` are the bundle signature's specs in signature order,
        named with the artifact's names (``io_map`` applied): backends whose format has no
        names (TorchScript) use the order, others use the dtypes (TFLite int8 I/O).
        """
        raise NotImplementedError

    def run(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False
            ) -> dict[str, np.ndarray]:
        """One inference: outputs keyed by the artifact's output names.

        ``raw=True`` skips any dtype conversion the backend does on the way (TFLite int8 I/O
        (de)quantization); backends that convert nothing ignore it. ``Model`` passes it only
        when the caller asked for raw I/O, so older backends without the keyword still work.
        """
        raise NotImplementedError

    def run_into(self, feeds: Mapping[str, np.ndarray], out: Mapping[str, np.ndarray]) -> None:
        """One inference written into ``out`` (artifact output name -> preallocated array).
        Backends that can write into caller memory override this; the default runs and copies."""
        got = self.run(feeds)
        for name, dest in out.items():
            copy_into(dest, got[name], name)

    def close(self) -> None:
        """Release the session; safe to call twice."""
        raise NotImplementedError

    def __init__(self) -> None:
        # What ``open`` found out; subclasses fill these in and the properties below report them.
        self._asked: list[str] = []
        self._in_use: list[str] = []
        self._notes: list[str] = []
        self._input_names: list[str] = []
        self._output_names: list[str] = []
        self._version: str | None = None

    @property
    def providers_in_use(self) -> list[str]:
        """Execution providers/delegates the open session actually runs on."""
        return list(self._in_use)

    @property
    def providers_asked(self) -> list[str]:
        """Providers requested in ``open``."""
        return list(self._asked)

    @property
    def notes(self) -> list[str]:
        """What happened while opening that the decision table should show (a failed delegate)."""
        return list(self._notes)

    @property
    def raw_input_dtypes(self) -> dict[str, str]:
        """Artifact input dtypes that ``run(raw=True)`` expects where they differ from the
        signature's (quantized int8 inputs); empty when raw I/O is the signature's I/O."""
        return {}

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    @property
    def version(self) -> str | None:
        """Framework version, for reports."""
        return self._version

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
