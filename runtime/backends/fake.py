"""A backend for your own tests: ``runtime.load`` gives a real ``Model`` whose runs return the
outputs you choose, with no framework installed (like httpx's ``MockTransport``).

::

    import numpy as np
    import runtime
    from runtime.backends.fake import faking

    with faking(outputs=lambda feeds: {"logits": np.eye(10, dtype=np.float32)[[3] * len(feeds["image"])]}) as fake:
        model = runtime.load("dist/digits-cnn-rpi4")            # a real bundle, hashes checked
        assert model.run({"image": x})["logits"].argmax(1).tolist() == [3] * len(x)
    assert len(fake.feeds) == 1                                  # what your code fed it

``faking(*names, outputs=...)`` registers a ``FakeBackend`` under each backend name (default:
every backend a bundle may name) until the block ends. ``outputs`` is a function of the feeds
returning ``{output name: array}``, a fixed mapping of arrays, or None for zeros; arrays are cast
to the signature's dtypes and must have its static dims; a symbolic dim (``batch``) takes the
feeds' batch when left to the zeros. It goes through the same seam as the real backends
(``Backend.open``/``run`` check feeds, this class implements the ``*_impl`` methods), so feeds
your code gets wrong fail here as they would on the device.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import BackendError
from ..signature import TensorSpec
from .base import Backend

Outputs = Callable[[dict[str, np.ndarray]], Mapping[str, Any]] | Mapping[str, Any] | None


class FakeBackend(Backend):
    """Returns ``outputs`` (see the module doc) for every run; records every feed in ``feeds``.

    Use a subclass per test (``faking`` makes one), since ``outputs`` and ``feeds`` are
    class-level: the runtime instantiates backends itself."""

    name = "fake"
    providers_pick_one = True
    outputs: ClassVar[Outputs] = None
    feeds: ClassVar[list[dict[str, np.ndarray]]] = []

    def __init__(self) -> None:
        super().__init__()
        self._specs: tuple[TensorSpec, ...] = ()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "fake backend (tests)"

    def open_impl(self, path: Path, *, providers: Sequence[str],
                  provider_options: Sequence[Mapping[str, Any]], threads: int | None,
                  options: Mapping[str, Any], inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec]) -> None:
        if not path.is_file():
            raise BackendError("artifact is missing", where=str(path))
        self._asked = list(providers)
        self._in_use = list(providers[:1]) or ["fake"]
        self._input_names = [s.name for s in inputs]
        self._output_names = [s.name for s in outputs]
        self._specs = tuple(outputs)
        self._version = "fake"

    def run_impl(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False
                 ) -> dict[str, np.ndarray]:
        given = dict(feeds)
        type(self).feeds.append(given)
        source = type(self).outputs
        got = source(given) if callable(source) else source
        batch = _batch(given)
        return {s.name: _conform(s, None if got is None else got.get(s.name), batch)
                for s in self._specs}

    def close_impl(self) -> None:
        self._specs = ()


def _batch(feeds: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feeds.values()), None)
    return int(np.shape(first)[0]) if first is not None and np.ndim(first) else 1


def _conform(spec: TensorSpec, value: Any, batch: int) -> np.ndarray:
    """``value`` as the spec's dtype (zeros when None), its static dims checked."""
    if value is None:
        shape = tuple(d if isinstance(d, int) else batch for d in spec.shape)
        return np.zeros(shape, dtype=spec.dtype)
    arr = np.asarray(value, dtype=spec.dtype)
    fixed = [(i, d) for i, d in enumerate(spec.shape) if isinstance(d, int)]
    if arr.ndim != len(spec.shape) or any(arr.shape[i] != d for i, d in fixed):
        raise BackendError(f"fake output {spec.name!r} has shape {list(arr.shape)}, the "
                           f"signature says {list(spec.shape)}", where="fake")
    return arr


@contextmanager
def faking(*names: str, outputs: Outputs = None) -> Iterator[type[FakeBackend]]:
    """Register a fresh ``FakeBackend`` subclass under each backend name (default: every
    backend a bundle may name) for the block; the real ones are back afterwards."""
    from . import _REGISTRY, backend_names

    cls = type("FakeBackend", (FakeBackend,), {"outputs": outputs, "feeds": []})
    names = names or tuple(backend_names())
    saved = {n: _REGISTRY.get(n) for n in names}
    for n in names:
        _REGISTRY[n] = cls
    try:
        yield cls
    finally:
        for n, entry in saved.items():
            if entry is None:
                _REGISTRY.pop(n, None)
            else:
                _REGISTRY[n] = entry
