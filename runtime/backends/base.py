"""The one seam every backend implements: open an artifact, run feeds, close.

Backends import their framework lazily (inside ``available``/``open``) so that importing the
runtime costs only numpy, and a device without, say, torch can still use onnxruntime.

Backends speak the artifact's names: ``open`` receives the signature's input/output specs
already renamed through the candidate's ``io_map``, and ``run`` takes and returns arrays keyed by
those names; ``Model`` translates to and from the bundle's signature names.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


OrderedRun = Callable[..., list[np.ndarray]]
"""What ``Backend.ordered`` returns: ``run(feeds, raw=False) -> [arrays]`` in the order asked."""


class Backend:
    """Base class for backends: the whole seam between ``Model`` and a framework.

    Lifecycle: ``available()`` (class-level, cheap) -> ``open(...)`` -> ``run(...)``* /
    ``ordered(...)`` / ``run_into(...)`` -> ``close()``. Instances are context managers, and
    ``run`` must be safe to call from several threads at once after ``open``.

    The public methods check their arguments and the backend's state, then call the matching
    ``*_impl`` method, which is what a backend overrides (as Polygraphy's runners do):
    ``open_impl``, ``run_impl`` and ``close_impl`` always; ``ordered_impl`` (the hot path) and
    ``run_into_impl`` (writing into the caller's arrays) when the framework can do better than
    the defaults here. ``runtime.backends.fake.FakeBackend`` is a complete small example.
    """

    name: ClassVar[str] = "base"
    # True: ``providers`` is a preference list and the session runs on the first one available
    # (TorchScript devices); False: all of them are used together (onnxruntime's CUDA + CPU).
    providers_pick_one: ClassVar[bool] = False
    _open: bool = False  # between a successful open() and close()

    # The framework the backend runs on, imported on first use (never by ``import runtime``):
    # a backend names it and says how to import it; "not importable" is handled here, once.
    framework: ClassVar[str] = ""
    install_hint: ClassVar[str] = "pip install -r requirements.txt"

    @classmethod
    def import_framework(cls) -> Any:
        """Import and return the framework (override). Any exception means: not on this device."""
        raise NotImplementedError

    @classmethod
    def describe_framework(cls, module: Any) -> str:
        return f"{cls.framework} {getattr(module, '__version__', '?')}"

    @classmethod
    def not_importable(cls, exc: BaseException) -> str:
        return f"{cls.framework} not importable: {exc}"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether the framework can be imported here, and why not (or its version) as text."""
        try:
            module = cls.import_framework()
        except Exception as exc:  # ImportError, or a broken install raising anything
            return False, cls.not_importable(exc)
        return True, cls.describe_framework(module)

    def load_framework(self, where: str) -> Any:
        """The framework, for ``open_impl``: a BackendError naming it and the fix when missing."""
        try:
            return type(self).import_framework()
        except Exception as exc:
            from ..errors import BackendError
            raise BackendError(self.not_importable(exc), where=where, hint=self.install_hint) from exc

    # ------------------------------------------------------------------ public: checks, then *_impl

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
        from ..errors import BackendError
        where = str(path)
        if self._open:
            raise BackendError("this backend is already open", where=where,
                               hint="open each artifact with a new backend instance")
        if provider_options and len(provider_options) != len(providers):
            raise BackendError(f"{len(provider_options)} provider_options for {len(providers)} "
                               "providers: give one mapping per provider", where=where)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 0):
            raise BackendError(f"threads must be a whole number >= 0, not {threads!r}", where=where)
        self.open_impl(Path(path), providers=tuple(providers),
                       provider_options=tuple(provider_options), threads=threads,
                       options=options, inputs=tuple(inputs), outputs=tuple(outputs))
        self._open = True

    def run(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False
            ) -> dict[str, np.ndarray]:
        """One inference: outputs keyed by the artifact's output names.

        ``raw=True`` skips any dtype conversion the backend does on the way (TFLite int8 I/O
        (de)quantization); backends that convert nothing ignore it. Checked: the backend is
        open, the feeds are exactly its inputs, and every output came back.
        """
        self._check_open()
        self._check_feeds(feeds)
        out = self.run_impl(feeds, raw=raw)
        missing = [n for n in self._output_names if n not in out]
        if missing:
            from ..errors import BackendError
            raise BackendError(f"backend returned no output {missing[0]!r}", where=self.name)
        return out

    def ordered(self, output_names: Sequence[str],
                input_names: Mapping[str, str] | None = None) -> OrderedRun:
        """The hot path ``Model`` uses: a function ``(feeds, raw=False) -> [arrays]`` returning
        ``output_names`` in that order, every lookup done once, here. ``input_names`` maps an
        artifact input to the key it has in the feeds (``io_map``), if not its own. KeyError
        for an output the artifact does not have. The function itself checks nothing: ``Model``
        checked the feeds."""
        self._check_open()
        names = list(output_names)
        if self._output_names:
            missing = [n for n in names if n not in self._output_names]
            if missing:
                raise KeyError(missing[0])
        return self.ordered_impl(names, dict(input_names) if input_names else None)

    def run_into(self, feeds: Mapping[str, np.ndarray], out: Mapping[str, np.ndarray]) -> None:
        """One inference written into ``out`` (artifact output name -> preallocated array)."""
        self._check_open()
        self._check_feeds(feeds)
        unknown = [n for n in out if self._output_names and n not in self._output_names]
        if unknown:
            from ..errors import FeedError
            raise FeedError(f"not an output of the artifact (outputs: {self._output_names})",
                            where=f"out[{unknown[0]!r}]")
        self.run_into_impl(feeds, out)

    def close(self) -> None:
        """Release the session; safe to call twice. A run in flight completes."""
        self._open = False
        self.close_impl()

    # ------------------------------------------------------------------ what a backend implements

    def open_impl(self, path: Path, *, providers: Sequence[str],
                  provider_options: Sequence[Mapping[str, Any]], threads: int | None,
                  options: Mapping[str, Any], inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec]) -> None:
        """Load the artifact (arguments checked by ``open``) and fill in what it found:
        ``_asked``, ``_in_use``, ``_notes``, ``_input_names``, ``_output_names``, ``_version``."""
        raise NotImplementedError

    def run_impl(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False
                 ) -> dict[str, np.ndarray]:
        """One inference on checked feeds: outputs keyed by the artifact's output names."""
        raise NotImplementedError

    def ordered_impl(self, output_names: list[str],
                     input_names: Mapping[str, str] | None) -> OrderedRun:
        """Default: ``run_impl`` and pick the outputs; backends with a faster call override it."""
        rename = {key: art for art, key in (input_names or {}).items() if key != art} or None
        run_impl = self.run_impl

        def run(feeds: Mapping[str, np.ndarray], raw: bool = False) -> list[np.ndarray]:
            if rename is not None:
                feeds = {rename.get(k, k): v for k, v in feeds.items()}
            got = run_impl(feeds, raw=raw)
            return [got[n] for n in output_names]
        return run

    def run_into_impl(self, feeds: Mapping[str, np.ndarray], out: Mapping[str, np.ndarray]) -> None:
        """Default: run, then copy into ``out``; backends that can write into caller memory
        override it."""
        got = self.run_impl(feeds)
        for name, dest in out.items():
            copy_into(dest, got[name], name)

    def close_impl(self) -> None:
        """Release the session; called by ``close`` (possibly twice)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ checks

    def _check_open(self) -> None:
        if not self._open:
            from ..errors import BackendError
            raise BackendError(f"{self.name} backend is not open",
                               hint="open() first, or the model was closed")

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> None:
        names = self._input_names
        if names and (len(feeds) != len(names) or any(n not in feeds for n in names)):
            from ..errors import FeedError
            missing = [n for n in names if n not in feeds]
            extra = [str(k) for k in feeds if k not in names]
            raise FeedError(f"feeds must be exactly the artifact's inputs {names}"
                            + (f"; missing {missing}" if missing else "")
                            + (f"; unexpected {extra}" if extra else ""), where=self.name)

    def __init__(self) -> None:
        self._open = False
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
