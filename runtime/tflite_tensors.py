"""Every intermediate tensor of a TFLite model on given inputs, by name and as float: what
``verify --explain`` compares with a bundle's float references for a TFLite int8 candidate
(``runtime/explain.py``), and what the build's per-op table compares between a float model and its
int8 twin (``packager.diagnose.tflite_tensors``).

LiteRT frees intermediate tensors as it goes unless asked to keep them
(``experimental_preserve_all_tensors``), and runs without XNNPACK's delegate here (the builtin op
resolver without default delegates): a delegated subgraph computes its tensors inside the delegate,
and its DELEGATE node would stand for the ops it took.
Inputs are fed by signature name as the backend feeds them: floats quantized for an int8 input,
integers narrowed for an int32 one with a range check (an id int32 cannot hold is an error).
The interpreter package is the backend's (``ai_edge_litert``, ``tflite_runtime`` or
``tensorflow.lite``), imported when a model is opened.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backends.tflite_ports import QUANTIZED


def interpreter(model: bytes | str) -> Any:
    """An interpreter for ``model`` (its bytes, or a path) that keeps every tensor."""
    import sys

    from .backends.tflite import _import_interpreter
    cls = _import_interpreter().interpreter
    resolver = getattr(sys.modules[cls.__module__], "OpResolverType", None)
    options: dict[str, Any] = {"model_content": model} if isinstance(model, bytes) else {"model_path": model}
    if resolver is not None:
        options["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = cls(**options, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    return interp


def as_float(interp: Any, detail: dict[str, Any]) -> np.ndarray:
    """Tensor ``detail`` after the last run, dequantized with its scale and zero point."""
    value = np.asarray(interp.get_tensor(detail["index"]))
    if value.dtype in QUANTIZED:
        scale, zero = detail["quantization"]
        return (value.astype(np.float32) - zero) * (scale or 1.0)
    return value.astype(np.float32)


def feed(interp: Any, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the signature on ``values`` (by signature name): its outputs."""
    runner = interp.get_signature_runner()
    details = runner.get_input_details()
    args = {}
    for name, value in values.items():
        want = np.dtype(details[name]["dtype"])
        value = np.asarray(value)
        if want in QUANTIZED and value.dtype.kind == "f":
            scale, zero = details[name]["quantization"]
            info = np.iinfo(want)
            value = np.clip(np.round(value / scale + zero), info.min, info.max).astype(want)
        elif want.kind in "iu" and value.dtype.kind in "iu" and value.dtype != want:
            info = np.iinfo(want)
            if value.size and (value.min() < info.min or value.max() > info.max):
                raise ValueError(f"input {name!r} holds values outside {want} ({value.min()}..{value.max()})")
            value = value.astype(want)
        args[name] = value
    return dict(runner(**args))


def tensors(model: bytes | str, names: Sequence[str], feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The tensors ``names`` of ``model`` on each of ``feeds`` (signature names, one batch each),
    as float, concatenated along a new first axis per feed (KeyError for a name the model lacks)."""
    interp = interpreter(model)
    by_name = {d["name"]: d for d in interp.get_tensor_details()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"the model has no tensor(s) {missing[:3]}")
    got: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for values in feeds:
        feed(interp, values)
        for n in names:
            got[n].append(as_float(interp, by_name[n]))
    return {n: np.stack(v) for n, v in got.items()}
