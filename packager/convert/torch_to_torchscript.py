"""torch -> TorchScript: torch.jit.trace, and torch.jit.script when the trace warns that it may be
wrong (a Python branch on a tensor's value: the trace keeps only the branch the example took) or
when the manifest asks (``export.torchscript``: auto | trace | script).

Precisions: fp32; int8 dynamic (quantize_dynamic on Linear/LSTM/GRU with the quantized engine of
the target's CPU: qnnpack on ARM, x86 on x86-64); fp16 (for CUDA targets: the module in half).
"""
from __future__ import annotations

import copy
import hashlib
import io
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.manifest import Manifest
from ..errors import ConversionError


@dataclass
class TorchScriptResult:
    """Serialized TorchScript and how it was made."""

    data: bytes
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def quantized_engine_for(arch: str) -> str:
    """The quantized kernel library of a CPU architecture."""
    return "qnnpack" if arch in ("aarch64", "armv7l") else "x86"


def to_torchscript(module: Any, manifest: Manifest, feeds: dict[str, np.ndarray], *, precision: str,
                   arch: str, method: str = "trace") -> TorchScriptResult:
    """Script or trace ``module`` at ``precision`` and serialize it with torch.jit.save."""
    import torch
    where = f"{manifest.file}: source"
    from ..sources.torch_source import ordered_outputs
    example = tuple(torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in manifest.inputs)
    model = ordered_outputs(copy.deepcopy(module).eval(), [o.name for o in manifest.outputs], example)
    details: dict[str, Any] = {}
    if precision == "int8":
        model, quantized = quantize_dynamic(model, arch, where)
        details.update(quantized)
    args = tuple(torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in manifest.inputs)
    if precision == "fp16":
        model = model.half()
        args = tuple(a.half() if a.is_floating_point() else a for a in args)
        details["dtype"] = "float16 (inputs cast by the runtime)"
    notes: list[str] = []
    first = "script" if method == "script" else "trace"
    try:
        compiled, warned = compile_module(torch, model, args, first)
    except Exception as exc:
        failed = f"torch.jit.{first} failed: {type(exc).__name__}: {_first_line(exc)}"
        if method != "auto":
            other = "trace" if method == "script" else "script"
            raise ConversionError(failed, where=where,
                                  hint=f"try export.torchscript: {other} in the manifest") from None
        try:
            compiled, warned = compile_module(torch, model, args, "script")
        except Exception as exc2:
            raise ConversionError(f"{failed}; torch.jit.script failed too: {type(exc2).__name__}: "
                                  f"{_first_line(exc2)}", where=where,
                                  hint="use an onnx candidate for this model") from None
        first = "script"
        notes.append(f"{failed}: made with torch.jit.script instead (export.torchscript: auto)")
    if warned:  # the trace took the branch the example took: it may be wrong for other inputs
        notes.append(f"torch.jit.trace warned that the trace may be incorrect: {warned}")
        if method == "auto":
            try:
                compiled, _ = compile_module(torch, model, args, "script", fresh=False)
                first = "script"
                notes.append("made with torch.jit.script instead (export.torchscript: auto), which keeps the "
                             "branch as control flow")
            except Exception as exc:
                notes.append(f"torch.jit.script failed too ({type(exc).__name__}: {_first_line(exc)}): kept the "
                             "trace; golden parity decides. Make the branch scriptable, or use torch.where / "
                             "torch.cond for it")
        else:
            notes.append("export.torchscript: auto (or script) compiles the branch with torch.jit.script")
    buf = io.BytesIO()
    torch.jit.save(compiled, buf)
    details["method"] = f"torch.jit.{first}"
    return TorchScriptResult(data=canonical_zip(buf.getvalue()), method=f"torch.jit.{first}", details=details,
                             notes=notes)


def quantize_dynamic(model: Any, arch: str, where: str) -> tuple[Any, dict[str, Any]]:
    """``model``'s Linear/LSTM/GRU layers int8 (dynamic quantization with the quantized engine of
    ``arch``), and what was done; ConversionError when it fails or finds nothing to quantize."""
    import torch
    details: dict[str, Any] = {}
    engine = quantized_engine_for(arch)
    if engine not in torch.backends.quantized.supported_engines:
        engine = "fbgemm" if "fbgemm" in torch.backends.quantized.supported_engines else engine
    previous = torch.backends.quantized.engine
    try:
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():  # torch's deprecation notice for quantized tensors
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU}, dtype=torch.qint8)
    except Exception as exc:
        raise ConversionError(f"int8 dynamic quantization of the torch model failed: {exc}",
                              where=where) from None
    finally:
        torch.backends.quantized.engine = previous
    details.update(quantization="dynamic (Linear/LSTM/GRU weights int8)", quantized_engine=engine)
    quantized = sum(1 for m in model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized"))
    if quantized == 0:
        raise ConversionError("int8 dynamic quantization changed nothing: the model has no "
                              "Linear/LSTM/GRU layers", where=where,
                              hint="use onnx int8 static for convolutional models")
    details["quantized_modules"] = quantized
    return model, details


def compile_module(torch: Any, model: Any, args: tuple[Any, ...], method: str, *,
             fresh: bool = True) -> tuple[Any, str | None]:
    """``model`` scripted or traced, and where the trace warned it may be incorrect (a Python
    branch or conversion on a tensor's value: ``file:line: code``), or None."""
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        if fresh:
            fresh_jit(torch)
        compiled = torch.jit.script(model) if method == "script" else torch.jit.trace(model, args)
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    return compiled, (trace_warning(tracer[0]) if tracer else None)


def fresh_jit(torch: Any) -> None:
    """Make the next script/trace a process's first.

    TorchScript names a class it has seen before in this process `___torch_mangle_N` (N a
    process-wide counter): the second build of a model in one process would give other bytes
    than the first, or than a worker process. An empty class registry makes every conversion a
    first one; the concrete-type cache goes with it, or scripting a module class scripted before
    the clear reads freed types (a segfault). Only before a conversion's first compile: scripting
    a transformers model right after a clear-and-trace segfaulted too, so the script retry after a
    warned trace keeps the registry as the trace left it. Compiled modules keep their own types.
    """
    torch._C._jit_clear_class_registry()
    torch.jit._recursive.concrete_type_store.type_store.clear()


def trace_warning(w: warnings.WarningMessage) -> str:
    """``file:line: `code` (what the tracer said)`` for a TracerWarning: where the model branched."""
    import linecache
    code = linecache.getline(w.filename, w.lineno).strip()
    said = str(w.message).split(".")[0]
    return f"{w.filename}:{w.lineno}: `{code}` ({said})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def canonical_zip(data: bytes) -> bytes:
    """torch.jit.save's archive made reproducible: the random ``.data/serialization_id`` becomes a
    hash of the content, and the ``*.debug_pkl`` files (source ranges with absolute paths, only
    used for error messages) are left out. torch.jit.load reads the result as before."""
    src = zipfile.ZipFile(io.BytesIO(data))
    names = [n for n in src.namelist() if not n.endswith(".debug_pkl")]
    digest = hashlib.sha256()
    for name in names:
        if not name.endswith(".data/serialization_id"):
            digest.update(name.encode())
            digest.update(src.read(name))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in names:
            content = src.read(name)
            if name.endswith(".data/serialization_id"):
                content = str(int(digest.hexdigest()[:16], 16)).encode()
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return out.getvalue()
