"""onnxruntime backend: checks providers before creating a session and reports what it got.

onnxruntime silently falls back to CPU when a provider fails to initialise; we check the asked
providers up front and compare ``session.get_providers()`` afterwards so nobody is fooled.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError
from ..signature import TensorSpec
from .base import Backend
from .ort_providers import TRT, options_for_providers


def _import_ort() -> Any:
    import onnxruntime  # lazy: only when this backend is tried

    return onnxruntime


def _direct_run(session: Any) -> Any:
    """The session's ``run(output_names, feeds, run_options)`` without the Python wrapper.

    ``InferenceSession.run`` re-checks the feed names (``Model`` already did, against
    precomputed expectations) and, on an execution-provider failure, silently retries on other
    providers. Going straight to the C++ session skips both: about a microsecond per call, and
    an EP failure is raised, never hidden. Falls back to the public method when an onnxruntime
    build lacks the private attribute.
    """
    disable = getattr(session, "disable_fallback", None)
    if callable(disable):
        disable()
    inner = getattr(session, "_sess", None)
    c_run = getattr(inner, "run", None)
    if callable(c_run):
        return c_run
    return lambda names, feeds, options: session.run(names, feeds, options)


class OnnxRuntimeBackend(Backend):
    """Runs .onnx artifacts with onnxruntime InferenceSession."""

    name = "onnxruntime"

    def __init__(self) -> None:
        self._session: Any = None
        self._c_run: Any = None
        super().__init__()

    framework = "onnxruntime"

    @classmethod
    def import_framework(cls) -> Any:
        return _import_ort()

    def open_impl(self, path: Path, *, providers: Sequence[str],
                  provider_options: Sequence[Mapping[str, Any]], threads: int | None,
                  options: Mapping[str, Any], inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec]) -> None:
        # inputs/outputs are not needed: ONNX artifacts carry their own names.
        ort = self.load_framework(str(path))
        self._version = getattr(ort, "__version__", None)
        asked = list(providers) or ["CPUExecutionProvider"]
        given = [dict(o) for o in provider_options] or [{} for _ in asked]
        available = list(ort.get_available_providers())
        if asked[0] not in available:
            # the candidate exists for its first provider; the next candidate covers its absence
            raise BackendError(f"provider {asked[0]} not available (available: {available})",
                               where=str(path),
                               hint="install the onnxruntime build for this provider, or "
                                    "let the runtime fall back to the next candidate")
        usable = [(p, o) for p, o in zip(asked, given, strict=False) if p in available]
        self._notes = [f"{p} is not in this onnxruntime build" for p in asked if p not in available]
        names = [p for p, _ in usable]
        opts = options_for_providers(names, [o for _, o in usable], model_path=Path(path),
                                precision=options.get("precision"), ort_version=str(self._version))
        if TRT in names:
            Path(opts[names.index(TRT)]["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3  # we report provider fallbacks ourselves
        try:
            session = ort.InferenceSession(str(path), sess_options=so, providers=names,
                                           provider_options=opts)
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise BackendError(f"session creation failed: {text}", where=str(path)) from exc
        self._session = session
        self._c_run = _direct_run(session)
        self._asked = asked
        self._in_use = list(session.get_providers())
        self._input_names = [i.name for i in session.get_inputs()]
        self._output_names = [o.name for o in session.get_outputs()]

    def run_impl(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False
                 ) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.run_ordered(feeds, self._output_names), strict=True))

    def run_ordered(self, feeds: Mapping[str, np.ndarray], output_names: list[str],
                    raw: bool = False) -> list[np.ndarray]:
        """Outputs as a list in ``output_names`` order; feeds passed through without a copy
        when they already are a dict."""
        c_run = self._c_run
        if c_run is None:
            raise BackendError("session is not open", hint="open() first, or the model was closed")
        try:
            return c_run(output_names, feeds if type(feeds) is dict else dict(feeds), None)
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise BackendError(f"inference failed: {text}") from exc

    def ordered_impl(self, output_names: list[str],
                     input_names: Mapping[str, str] | None) -> Any:
        """The hot path ``Model`` uses: a function ``(feeds, raw=False) -> [arrays]`` with the
        output names list built once, here. ``input_names`` maps an artifact input to the key
        it has in the feeds (``io_map``), if not its own."""
        names = list(output_names)
        missing = [n for n in names if n not in self._output_names]
        if missing:
            raise KeyError(missing[0])
        rename = {key: art for art, key in (input_names or {}).items() if key != art} or None

        def run(feeds: Mapping[str, np.ndarray], raw: bool = False) -> list[np.ndarray]:
            c_run = self._c_run
            if c_run is None:
                raise BackendError("session is not open",
                                   hint="open() first, or the model was closed")
            if rename is not None:
                feeds = {rename.get(k, k): v for k, v in feeds.items()}
            try:
                return c_run(names, feeds if type(feeds) is dict else dict(feeds), None)
            except Exception as exc:
                text = " ".join(str(exc).split())
                raise BackendError(f"inference failed: {text}") from exc
        return run

    def run_into_impl(self, feeds: Mapping[str, np.ndarray], out: Mapping[str, np.ndarray]) -> None:
        """IOBinding: inputs bound to their numpy memory, outputs written straight into ``out``
        (no output allocated by onnxruntime). A binding per call keeps it thread-safe."""
        session = self._session
        if session is None:
            raise BackendError("session is not open", hint="open() first, or the model was closed")
        try:
            binding = session.io_binding()
            for name, arr in feeds.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(arr))
            for name, dest in out.items():
                binding.bind_output(name, "cpu", 0, dest.dtype, list(dest.shape), dest.ctypes.data)
            session.run_with_iobinding(binding)
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise BackendError(f"inference into the given outputs failed: {text}",
                               hint="check each out array's shape against this batch's output "
                                    "shape (model.outputs)") from exc

    def close_impl(self) -> None:
        # A run already in flight keeps its own reference to the session and completes.
        self._c_run = None
        self._session = None
