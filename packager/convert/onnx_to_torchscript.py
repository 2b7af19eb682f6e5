"""ONNX -> TorchScript: the base ONNX model as an ``nn.Module`` (``onnx_torch``, edgepack's op
table), traced with ``torch.jit.trace`` on the golden samples.

A trace records the shapes of the example unless the graph computed them, so every symbolic axis
of the manifest's inputs (batch, sequence, ...) is checked after tracing: the traced module and
the module itself run on inputs twice as long along that axis (the golden samples repeated) and
must agree. An axis where they do not is recorded as fixed (``static_axes``; a batch axis: the
artifact is traced for one sample and run sample by sample, ``static_batch``), so the runtime
refuses or splits other lengths instead of computing something else.

Precisions: fp32; fp16 (the module in half, for CUDA targets); int8 dynamic (Gemm / MatMul by
constant weights are ``nn.Linear``, LSTM / GRU are ``nn.LSTM`` / ``nn.GRU``: quantize_dynamic
takes them, as on the PyTorch route).
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import onnx

from ..config.manifest import Manifest
from ..errors import ConversionError, UnsupportedError, not_installed
from .torch_to_torchscript import TorchScriptResult, canonical_zip, compile_module, quantize_dynamic

CONVERTER = "edgepack onnx->torch + torch.jit.trace"


def onnx_to_torchscript(model: onnx.ModelProto, manifest: Manifest, feeds: dict[str, np.ndarray], *,
                        precision: str, arch: str) -> TorchScriptResult:
    """The base ONNX ``model`` as TorchScript at ``precision`` (``feeds``: golden samples, one batch)."""
    where = f"{manifest.file}: source"
    try:
        import torch
    except ImportError:  # an ONNX-only install: the route needs the torch extra
        raise not_installed("ONNX -> TorchScript", "torch", "torch", cls=UnsupportedError, where=where) from None

    from .onnx_torch import Unconvertible, to_module
    inputs, outputs = [s.name for s in manifest.inputs], [o.name for o in manifest.outputs]
    try:
        module = to_module(model, inputs, outputs)
    except Unconvertible as exc:
        raise UnsupportedError(f"ONNX -> TorchScript: {exc}", where=where,
                               hint="give the original PyTorch model as the source for TorchScript; use onnx or "
                                    "tflite candidates for this model") from None
    except Exception as exc:  # a node the op table has but cannot evaluate on these values
        raise ConversionError(f"ONNX -> torch conversion failed: {type(exc).__name__}: {_line(exc)}", where=where,
                              hint="use onnx or tflite candidates for this model") from None
    details: dict[str, Any] = {"converter": CONVERTER, "submodules": len(module.blocks)}
    if precision == "int8":
        module, quantized = quantize_dynamic(module, arch, where)
        details.update(quantized)
    half = precision == "fp16"
    if half:
        module = module.half()
        details["dtype"] = "float16 (inputs cast by the runtime)"
    feeds = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
    compiled, warned = _trace(torch, module, feeds, inputs, half, where)
    fixed, static_batch, checked = _check_axes(torch, compiled, module, manifest, feeds, half)
    notes: list[str] = []
    if static_batch:  # traced again for one sample: the runtime feeds a batch sample by sample
        compiled, warned = _trace(torch, module, {k: v[:1] for k, v in feeds.items()}, inputs, half, where)
        details["static_batch"] = True
    if fixed:
        details["static_axes"] = fixed
    frozen = ([f"batch ({manifest.inputs[0].shape[0]})"] if static_batch else []) + \
        [f"{n} axis {a} = {length}" for n, axes in fixed.items() for a, length in axes.items()]
    if frozen:
        notes.append("the trace fixed " + ", ".join(frozen) + ": at another length it computed something else"
                     + (f" (torch.jit.trace warned: {warned})" if warned else "")
                     + "; the runtime refuses other lengths" + (", and feeds one sample at a time" if static_batch
                                                                else ""))
    if checked:
        details["dynamic_axes_checked"] = checked
    buf = io.BytesIO()
    torch.jit.save(compiled, buf)
    details["method"] = "torch.jit.trace"
    return TorchScriptResult(data=canonical_zip(buf.getvalue()), method=CONVERTER, details=details, notes=notes)


def _args(torch: Any, feeds: dict[str, np.ndarray], inputs: list[str], half: bool) -> tuple[Any, ...]:
    args = tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in inputs)
    return tuple(a.half() if half and a.is_floating_point() else a for a in args)


def _trace(torch: Any, module: Any, feeds: dict[str, np.ndarray], inputs: list[str], half: bool,
           where: str) -> tuple[Any, str | None]:
    try:
        return compile_module(torch, module, _args(torch, feeds, inputs, half), "trace")
    except Exception as exc:
        raise ConversionError(f"torch.jit.trace of the converted ONNX graph failed: {type(exc).__name__}: "
                              f"{_line(exc)}", where=where,
                              hint="use onnx or tflite candidates for this model") from None


def _check_axes(torch: Any, compiled: Any, module: Any, manifest: Manifest, feeds: dict[str, np.ndarray],
                half: bool) -> tuple[dict[str, dict[str, int]], bool, list[str]]:
    """Per symbolic axis: does the traced module agree with the module at twice the length?
    Returns the axes it fixed (input -> {axis: length}, axes >= 1), whether the batch axis is
    fixed, and the axes that passed ("seq ×2")."""
    inputs = [s.name for s in manifest.inputs]
    symbols: dict[str, list[tuple[str, int]]] = {}
    for spec in manifest.inputs:
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str) and spec.name in feeds and axis < feeds[spec.name].ndim:
                symbols.setdefault(dim, []).append((spec.name, axis))
    fixed: dict[str, dict[str, int]] = {}
    static_batch, checked = False, []
    for symbol, places in symbols.items():
        longer = dict(feeds)
        for name, axis in places:
            longer[name] = np.concatenate([longer[name], longer[name]], axis=axis)
        args = _args(torch, longer, inputs, half)
        if _agree(torch, compiled, module, args):
            checked.append(f"{symbol} x2")
            continue
        for name, axis in places:
            if axis == 0:
                static_batch = True
            else:
                fixed.setdefault(name, {})[str(axis)] = int(feeds[name].shape[axis])
    return fixed, static_batch, checked


def _agree(torch: Any, compiled: Any, module: Any, args: tuple[Any, ...]) -> bool:
    with torch.no_grad():
        try:
            got, want = compiled(*args), module(*args)
        except Exception:
            return False
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        g, w = g.float().numpy(), w.float().numpy()
        if g.shape != w.shape or not np.allclose(g, w, rtol=1e-3, atol=1e-5 * max(1.0, float(np.abs(w).max(
                initial=0.0)))):
            return False
    return True


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
