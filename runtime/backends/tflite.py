"""TFLite backend: LiteRT / tflite_runtime / tf.lite interpreter, delegates, int8 I/O.

Devices ship whichever interpreter package exists for them (``ai_edge_litert`` on current
wheels, ``tflite_runtime`` on older Pi images, full TensorFlow on a host), so all three are
tried. Delegates that fail to load are recorded and skipped, never fatal: select compares the
providers asked with ``providers_in_use`` and records the downgrade (or refuses it, --strict).
Full-integer models are fed and read as floats: the backend (de)quantizes with each tensor's
scale and zero point, so callers never see the artifact's int8 I/O unless they ask (raw=True).
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import BackendError
from ..signature import TensorSpec
from .base import Backend
from .tflite_ports import Port as _Port
from .tflite_ports import dequantize, port_of, quantize

XNNPACK = "XNNPACK"  # the interpreter's built-in default CPU path
DELEGATE_PREFIX = "delegate:"  # "delegate:<library>" is loaded with load_delegate


class _Flavour(NamedTuple):
    """One importable interpreter package."""

    label: str
    version: str
    interpreter: Any  # the Interpreter class
    load_delegate: Any


def _import_interpreter() -> _Flavour:
    """The first interpreter package found, in the order the issue asks for."""
    errors: list[str] = []
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter as litert

        return _Flavour("ai_edge_litert", str(getattr(ai_edge_litert, "__version__", "?")),
                        litert.Interpreter, litert.load_delegate)
    except Exception as exc:  # ImportError, or a broken wheel raising anything
        errors.append(f"ai_edge_litert: {exc}")
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as tflr

        return _Flavour("tflite_runtime", str(getattr(tflite_runtime, "__version__", "?")),
                        tflr.Interpreter, tflr.load_delegate)
    except Exception as exc:
        errors.append(f"tflite_runtime: {exc}")
    try:
        import tensorflow as tf

        return _Flavour("tensorflow.lite", str(getattr(tf, "__version__", "?")),
                        tf.lite.Interpreter, tf.lite.experimental.load_delegate)
    except Exception as exc:
        errors.append(f"tensorflow: {exc}")
    raise ImportError("no TFLite interpreter importable (" + "; ".join(errors) + ")")


class TFLiteBackend(Backend):
    """Runs .tflite artifacts. One interpreter behind a lock: an Interpreter is not
    thread-safe, and the signature runner resizes/allocates on every call."""

    name = "tflite"

    def __init__(self) -> None:
        self._interp: Any = None
        self._runner: Any = None
        self._lock = threading.Lock()
        super().__init__()
        self._inputs: list[_Port] = []
        self._outputs: list[_Port] = []
        self._shapes: dict[int, tuple[int, ...]] = {}  # current input shapes (no runner)
        self._run_all: Any = None  # ordered(all outputs), made once in open()

    framework = "LiteRT"
    install_hint = "pip install ai-edge-litert (or tflite-runtime)"

    @classmethod
    def import_framework(cls) -> _Flavour:
        return _import_interpreter()

    @classmethod
    def describe_framework(cls, module: Any) -> str:
        return f"{module.label} {module.version}"

    @classmethod
    def not_importable(cls, exc: BaseException) -> str:
        return str(exc)  # _import_interpreter names every package it tried

    def open_impl(self, path: Path, *, providers: Sequence[str],
                  provider_options: Sequence[Mapping[str, Any]], threads: int | None,
                  options: Mapping[str, Any], inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec]) -> None:
        where = str(path)
        flavour: _Flavour = self.load_framework(where)
        self._version = f"{flavour.label} {flavour.version}"
        asked = list(providers) or [XNNPACK]
        opts = [dict(o) for o in provider_options] or [{} for _ in asked]
        if len(opts) != len(asked):
            raise BackendError("provider_options must have one entry per provider", where=where)
        delegates: list[tuple[str, Any]] = []
        for name, opt in zip(asked, opts, strict=True):
            if name == XNNPACK:
                continue
            if not name.startswith(DELEGATE_PREFIX) or len(name) == len(DELEGATE_PREFIX):
                raise BackendError(f"unknown TFLite provider {name!r}", where=where,
                                   hint=f"use {XNNPACK!r} or 'delegate:<library.so>'")
            library = name[len(DELEGATE_PREFIX):]
            try:
                delegates.append((name, flavour.load_delegate(
                    library, {str(k): str(v) for k, v in opt.items()} or None)))
            except Exception as exc:  # missing library, bad options, no device attached
                self._notes.append(f"{name} failed to load: {_one_line(exc)}")
        num_threads = int(threads) if threads else None
        try:
            interp = flavour.interpreter(model_path=str(path), num_threads=num_threads,
                                         experimental_delegates=[d for _, d in delegates] or None)
        except Exception as exc:
            if not delegates:
                raise BackendError(f"interpreter creation failed: {_one_line(exc)}",
                                   where=where) from exc
            # A delegate that loads but cannot take this graph: run without delegates.
            self._notes.append("delegates [" + ", ".join(n for n, _ in delegates)
                               + f"] rejected the model: {_one_line(exc)}")
            delegates = []
            try:
                interp = flavour.interpreter(model_path=str(path), num_threads=num_threads)
            except Exception as exc2:
                raise BackendError(f"interpreter creation failed: {_one_line(exc2)}",
                                   where=where) from exc2
        loaded = {n for n, _ in delegates}
        in_use = [p for p in asked if p == XNNPACK or p in loaded]
        if XNNPACK not in in_use:  # ops no delegate takes still run on the CPU path
            in_use.append(XNNPACK)
        self._bind(interp, options, inputs, outputs, where)
        self._interp = interp
        self._asked = asked
        self._in_use = in_use

    def _bind(self, interp: Any, options: Mapping[str, Any], inputs: Sequence[TensorSpec],
              outputs: Sequence[TensorSpec], where: str) -> None:
        """Signature runner when the model has a signature, else tensor names; ports + dtypes."""
        specs = {s.name: s for s in (*inputs, *outputs)}
        try:
            signatures = dict(interp.get_signature_list() or {})
        except Exception:  # interpreters too old for signatures
            signatures = {}
        if signatures:
            key = options.get("signature_key")
            if key is None:
                key = "serving_default" if "serving_default" in signatures or \
                    len(signatures) != 1 else next(iter(signatures))
            if key not in signatures:
                raise BackendError(f"model has no signature {key!r} (has {sorted(signatures)})",
                                   where=where, hint="set the candidate's 'signature_key'")
            try:
                runner = interp.get_signature_runner(key)
                in_details = runner.get_input_details()
                out_details = runner.get_output_details()
            except Exception as exc:
                raise BackendError(f"signature {key!r} unusable: {_one_line(exc)}",
                                   where=where) from exc
            self._runner = runner
            if len(signatures) == 1 and self._same_tensors(interp, in_details, out_details):
                # The one signature is the primary subgraph: drive its tensors directly
                # (set_tensor/invoke/get_tensor); the runner would resize and allocate on
                # every call. The runner holds views of the tensors: drop it first.
                self._runner = runner = None
                try:
                    interp.allocate_tensors()
                    self._shapes = {int(d["index"]): tuple(int(x) for x in d["shape"])
                                    for d in interp.get_input_details()}
                except Exception:  # still referenced somewhere: keep the signature runner
                    self._runner = interp.get_signature_runner(key)
        else:
            try:
                interp.allocate_tensors()
            except Exception as exc:
                raise BackendError(f"allocate_tensors failed: {_one_line(exc)}",
                                   where=where) from exc
            in_details = {d["name"]: d for d in interp.get_input_details()}
            self._shapes = {int(d["index"]): tuple(int(x) for x in d["shape"])
                            for d in in_details.values()}
            out_details = {d["name"]: d for d in interp.get_output_details()}
        # Signature order first (positional meaning), then any extra artifact tensors.
        order_in = [s.name for s in inputs if s.name in in_details]
        order_in += [n for n in in_details if n not in order_in]
        order_out = [s.name for s in outputs if s.name in out_details]
        order_out += [n for n in out_details if n not in order_out]
        self._inputs = [port_of(n, in_details[n], specs.get(n)) for n in order_in]
        self._outputs = [port_of(n, out_details[n], specs.get(n)) for n in order_out]
        self._input_names = [p.name for p in self._inputs]
        self._output_names = [p.name for p in self._outputs]
        self._run_all = self.ordered_impl(self._output_names, None)

    @staticmethod
    def _same_tensors(interp: Any, in_details: Mapping[str, Any],
                      out_details: Mapping[str, Any]) -> bool:
        """Whether the signature's tensors are the interpreter's own inputs and outputs."""
        try:
            main_in = sorted(int(d["index"]) for d in interp.get_input_details())
            main_out = sorted(int(d["index"]) for d in interp.get_output_details())
        except Exception:
            return False
        return (main_in == sorted(int(d["index"]) for d in in_details.values())
                and main_out == sorted(int(d["index"]) for d in out_details.values()))

    def run_impl(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False
                 ) -> dict[str, np.ndarray]:
        run_all = self._run_all
        if run_all is None:
            raise BackendError("interpreter is not open",
                               hint="open() first, or the model was closed")
        return dict(zip(self._output_names, run_all(feeds, raw), strict=True))

    def ordered_impl(self, output_names: list[str],
                     input_names: Mapping[str, str] | None) -> Any:
        """The hot path ``Model`` uses: a function ``(feeds, raw=False) -> [arrays]`` returning
        ``output_names`` in that order, with every lookup done here, once. ``input_names``
        maps an artifact input to the key it has in the feeds (``io_map``), if not its own."""
        by_name = {p.name: p for p in self._outputs}
        outs = tuple(by_name[n] for n in output_names)  # KeyError: not an output
        ins = tuple(self._inputs)
        # (feed key, tensor index, port to quantize with or None, port) per input
        plan = tuple(((input_names or {}).get(p.name, p.name), p.tensor, p if p.convert else None,
                      p) for p in ins)
        out_index = tuple(p.tensor for p in outs)
        dequant = tuple(p if p.convert else None for p in outs)
        any_dequant = any(q is not None for q in dequant)
        shapes = self._shapes
        lock = self._lock
        contiguous = np.ascontiguousarray
        direct = _has_inner(self._interp)

        if len(plan) == 1:
            return self._ordered_one(plan[0], ins[0], outs, out_index, dequant, any_dequant)

        def run(feeds: Mapping[str, np.ndarray], raw: bool = False) -> list[np.ndarray]:
            ready = []
            for key, _, qport, port in plan:
                try:
                    arr = feeds[key]
                except KeyError:
                    raise BackendError(f"missing input {port.name!r}") from None
                if qport is not None and not raw:
                    arr = quantize(arr, qport)
                ready.append(arr)
            with lock:
                interp = self._interp
                if interp is None:
                    raise BackendError("interpreter is not open",
                                       hint="open() first, or the model was closed")
                try:
                    runner = self._runner
                    if runner is not None:  # resizes + allocates as needed itself
                        got = runner(**{p.name: contiguous(a) for p, a in zip(ins, ready, strict=True)})
                        results = [got[p.name] for p in outs]
                    else:
                        # set_tensor copies (and makes contiguous) what it is given
                        resized = False
                        for (_, index, _, _), arr in zip(plan, ready, strict=True):
                            shape = arr.shape
                            if shapes.get(index) != shape:
                                interp.resize_tensor_input(index, list(shape))
                                shapes[index] = shape
                                resized = True
                        if resized:
                            interp.allocate_tensors()
                        inner = interp._interpreter if direct else _Public(interp)
                        for (_, index, _, _), arr in zip(plan, ready, strict=True):
                            inner.SetTensor(index, arr)
                        inner.Invoke()
                        results = [inner.GetTensor(i, 0) for i in out_index]
                except Exception as exc:
                    raise BackendError(f"inference failed: {_one_line(exc)}") from exc
            if raw or not any_dequant:
                return results
            return [a if q is None else dequantize(a, q) for a, q in zip(results, dequant, strict=True)]
        return run

    def _ordered_one(self, plan: tuple[str, int, _Port | None, _Port], port: _Port,
                     outs: tuple[_Port, ...], out_index: tuple[int, ...],
                     dequant: tuple[_Port | None, ...], any_dequant: bool) -> Any:
        """``ordered`` for the common single-input model: the same steps, no loops over inputs."""
        key, index, qport, _ = plan
        name = port.name
        shapes = self._shapes
        lock = self._lock
        direct = _has_inner(self._interp)

        def run(feeds: Mapping[str, np.ndarray], raw: bool = False) -> list[np.ndarray]:
            try:
                arr = feeds[key]
            except KeyError:
                raise BackendError(f"missing input {name!r}") from None
            if qport is not None and not raw:
                arr = quantize(arr, qport)
            with lock:
                interp = self._interp
                if interp is None:
                    raise BackendError("interpreter is not open",
                                       hint="open() first, or the model was closed")
                try:
                    runner = self._runner
                    if runner is not None:  # resizes + allocates as needed itself
                        got = runner(**{name: np.ascontiguousarray(arr)})
                        results = [got[p.name] for p in outs]
                    else:
                        shape = arr.shape  # set_tensor copies (and makes contiguous) arr
                        if shapes.get(index) != shape:
                            interp.resize_tensor_input(index, list(shape))
                            shapes[index] = shape
                            interp.allocate_tensors()
                        inner = interp._interpreter if direct else _Public(interp)
                        inner.SetTensor(index, arr)
                        inner.Invoke()
                        results = [inner.GetTensor(i, 0) for i in out_index]
                except Exception as exc:
                    raise BackendError(f"inference failed: {_one_line(exc)}") from exc
            if raw or not any_dequant:
                return results
            return [a if q is None else dequantize(a, q) for a, q in zip(results, dequant, strict=True)]
        return run

    def close_impl(self) -> None:
        with self._lock:  # never free the interpreter under a running invoke
            self._interp = None
            self._runner = None




    @property
    def raw_input_dtypes(self) -> dict[str, str]:
        return {p.name: p.dtype.name for p in self._inputs if p.convert}





class _Public:
    """The public Interpreter methods under the C++ wrapper's names (for builds without one)."""

    __slots__ = ("_interp",)

    def __init__(self, interp: Any) -> None:
        self._interp = interp

    def SetTensor(self, index: int, value: np.ndarray) -> None:  # noqa: N802
        self._interp.set_tensor(index, value)

    def Invoke(self) -> None:  # noqa: N802
        self._interp.invoke()

    def GetTensor(self, index: int, subgraph: int) -> np.ndarray:  # noqa: N802
        return self._interp.get_tensor(index, subgraph)


def _has_inner(interp: Any) -> bool:
    """Whether the interpreter's C++ wrapper can be called directly on the hot path.

    ``Interpreter.invoke()`` first checks (with ``sys.getrefcount``) that no numpy view of an
    internal buffer is alive; this backend never makes one (no ``tensor()``), so the check and
    three Python frames per call can go: about half a microsecond. Looked up per call, never
    held: a held bound method would itself count as such a reference for the public methods.
    """
    inner = getattr(interp, "_interpreter", None)
    return all(hasattr(inner, n) for n in ("SetTensor", "Invoke", "GetTensor"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
