"""ONNX -> TFLite with onnx2tf, run as a subprocess in its own environment (converter_env).

The input is the build's base ONNX model (loaded, prepared, simplified). onnx2tf's
flatbuffer_direct backend keeps the model's input layout (``keep_ncw_or_nchw_or_ncdhw_input_names``
for every input: no NCHW -> NHWC transpose) and names, so the runtime feeds the same arrays as
to the ONNX candidates; names it changes (``seg:0`` -> ``seg__0``, int8 outputs'
``_dequantized_output``) are mapped in the io_map. A symbolic batch is fixed to 1 (onnx2tf's
integer quantization needs static shapes, and a static graph needs none of the shape arithmetic
a symbolic batch adds): the runtime feeds larger batches one sample at a time (``static_batch``).

Precisions: fp32; fp16 (float16 weights, float32 compute and I/O: see onnx2tf_driver); int8
dynamic (int8 weights, per-tensor); int8 static with float or int8 I/O: onnx2tf's float32 model,
quantized by ai-edge-quantizer (tflite_quantize) calibrated on the manifest's calibration samples
(global min/max ranges), with every symbolic input axis fixed to the samples' length. Whether a
converted model is right is the parity check's call: onnx2tf gets some models wrong.

What cannot be had is an UnsupportedError with the reason (no Python >= 3.12, onnx2tf's own
error's first useful line): the route does not exist for that model or machine, so the target
ships its other candidates instead of turning PARTIAL for every ONNX model onnx2tf cannot take.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UnsupportedError
from . import TFLiteArtifact
from .converter_env import ONNX2TF, ConverterEnv, ensure
from .tflite_io import edge_dtypes, with_io_dtypes

if TYPE_CHECKING:
    import onnx

    from ..config.manifest import Manifest
    from ..config.targets import Quantization
    from ..passes.quantize import Repair

DRIVER = Path(__file__).with_name("onnx2tf_driver.py")
CONVERT_TIMEOUT_S = 1800
WHERE = "tflite (onnx2tf)"
HINT = "use onnx candidates for this model, or give the original PyTorch/TensorFlow model as the source"

# the onnx2tf file each candidate takes, by precision (int8 static: the float32 one, then quantized)
KIND = {"fp32": "float32", "fp16": "float16", "int8-dynamic": "dynamic_range", "int8-static": "float32",
        "int8-static-int8io": "float32"}

# one onnx2tf run makes every file of its options: fp32 and fp16 come from one run (and the float
# model int8 static quantizes, when no input axis had to be fixed). Runs are kept for this
# process, for the last model converted: model hash -> run key (options) -> the run's result
_RUNS: dict[str, dict[str, dict[str, Any]]] = {}


def onnx_to_tflite(model: onnx.ModelProto, manifest: Manifest, *, precision: str,
                   quantization: Quantization | None, io: str, calibration: dict[str, np.ndarray] | None = None,
                   calibration_batched: bool = True, random_data: bool = False,
                   on_create: Callable[[str], AbstractContextManager[Any]] | None = None,
                   repair: Repair | None = None, golden: list[dict[str, np.ndarray]] | None = None
                   ) -> TFLiteArtifact:
    """Convert the base ONNX model at ``precision`` (int8: ``quantization.mode``; ``io`` float/int8).
    With ``repair`` (int8 static, ``fallback: mixed``), the ops that add the most error stay float
    until parity holds on its golden feeds; with ``golden`` (int8 static), the int8 model's per-op
    table on those feeds is in ``details["per_op"]``. Every refusal and every onnx2tf failure is an
    UnsupportedError with the reason."""
    mode = quantization.mode if quantization else None
    column = precision if precision != "int8" else f"int8-{mode}" + ("-int8io" if mode == "static" and io == "int8"
                                                                      else "")
    kind = KIND[column]
    notes: list[str] = []
    options: dict[str, Any] = {}
    rows = None
    if column == "int8-dynamic":
        options["quant_type"] = "per-tensor"
        if quantization and quantization.per_channel:
            notes.append("int8 weights per tensor, not per channel: onnx2tf 2.6.9's per-channel dynamic-range "
                         "convolutions do not load in LiteRT (quantized_dimension)")
    elif precision == "int8":
        assert quantization is not None
        rows = _calibration_rows(quantization, calibration, calibration_batched)
        from .tflite_quantize import quantizer_version
        quantizer_version()
    _host_can_check()
    env = ensure(ONNX2TF, on_create=on_create)
    from .layernorm import decompose_layernorm
    model, lowered = decompose_layernorm(model)
    if lowered:
        notes.append(f"{lowered} LayerNormalization node(s) handed to onnx2tf as the primitive ops they stand for "
                     "(it emits some as a custom op LiteRT cannot run)")
    fixed, static_batch = fix_batch(model)
    static_axes: dict[str, dict[str, int]] = {}
    if rows is not None:
        fixed, static_axes = fix_axes(fixed, rows[0])
    run = _run_once(env, fixed, kind, options)
    got = run["files"].get(kind) or {"error": f"onnx2tf made no {kind} model"}
    if "error" in got:
        raise UnsupportedError(f"onnx2tf could not make this model's {column} TFLite: {got['error']}",
                               where=WHERE, hint=HINT)
    data = got["data"]
    inputs = match_names([s.name for s in manifest.inputs], got["inputs"], "inputs")
    # the base model's names are the manifest's (the ONNX candidates are fed by them)
    outputs = match_names([o.name for o in manifest.outputs], got["outputs"], "outputs")
    mixed: tuple[dict[str, Any] | None, list[str]] = (None, [])
    per_op: dict[str, Any] | None = None
    if rows is not None:
        assert quantization is not None
        from .tflite_quantize import quantize_static
        checks = None
        if repair is not None:
            budget = _feeds(data, _one_batch(repair.budget.feeds, static_batch), inputs) if repair.budget else None
            checks = (repair, _feeds(data, _one_batch(repair.feeds, static_batch), inputs), outputs, budget)
        table_feeds = _feeds(data, _one_batch(golden, static_batch), inputs) if golden else None
        data, record, mixed_notes, per_op = quantize_static(data, _feeds(data, rows, inputs),
                                                            per_channel=quantization.per_channel,
                                                            int8_io=io == "int8", repair=checks,
                                                            table_feeds=table_feeds)
        mixed = (record, mixed_notes)
    io_map, dtype_notes = with_io_dtypes(data, {"inputs": inputs, "outputs": outputs}, manifest)
    details: dict[str, Any] = {
        "converter": f"onnx2tf {run['onnx2tf']} (own Python {run['python']} environment)",
        "backend": "flatbuffer_direct",
        "converter_env": {"python": run["python"], "ai-edge-litert": run["ai-edge-litert"], **env.packages},
        "layout": "the ONNX model's (inputs kept as they are: no NCHW -> NHWC transpose)", "io": "float32"}
    if static_batch:
        details["static_batch"] = 1
        notes.append("converted for a batch of 1 (the ONNX batch dim is symbolic; onnx2tf's quantization needs "
                     "static shapes): the runtime runs a larger batch one sample at a time")
    if static_axes:
        details["static_axes"] = static_axes
        notes.append("compiled for fixed " + ", ".join(f"{n} axis {a} = {length}" for n, axes in static_axes.items()
                                                        for a, length in axes.items())
                     + " (the calibration samples' length; int8 ranges are calibrated for it): the runtime "
                       "refuses other lengths for this candidate; the ONNX candidates keep those axes dynamic")
    if precision == "fp16":
        details["weights"] = "float16 (dequantized to float32 at load)"
        notes.append("float16 weights with float32 compute and I/O, as TFLiteConverter makes them: onnx2tf's own "
                     "float16 model computes in float16 end to end, with float16 inputs and outputs")
    elif column == "int8-dynamic":
        details["weights"] = "int8 (dynamic range, per tensor)"
    elif rows is not None:
        assert quantization is not None
        from .tflite_quantize import quantizer_version
        details.update(converter=f"{details['converter']}, float32; int8 by ai-edge-quantizer {quantizer_version()}",
                       weights="int8 (" + ("per channel; " if quantization.per_channel else "") +
                       "BATCH_MATMUL per tensor)", activations="int8 where LiteRT has an int8 kernel, else float",
                       quantization="per-channel" if quantization.per_channel else "per-tensor",
                       calibration_samples=len(rows), calibration_method="minmax")
        if io == "int8":
            details["io"] = "int8 (quantized by the runtime)"
        record, mixed_notes = mixed
        if record is not None:
            details["mixed"] = record
            notes.extend(mixed_notes)
            if record["kept_float_added"]:
                details["kept_float"] = list(record["kept_float_added"])
        if random_data:
            notes.append("calibrated on RANDOM data (manifest asked for random: true)")
        if per_op is not None:
            details["per_op"] = per_op  # the build shows it when parity fails (not written to bundle.json)
    return TFLiteArtifact(data=data, io_map=io_map, details=details, notes=notes + dtype_notes)


def _run_once(env: ConverterEnv, model: onnx.ModelProto, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The onnx2tf run that makes ``kind``, made once per model and options."""
    from ..onnx_utils import serialize
    data = serialize(model)
    model_key = hashlib.sha256(data).hexdigest()
    run_key = json.dumps(options, sort_keys=True)
    for other in [k for k in _RUNS if k != model_key]:
        del _RUNS[other]
    runs = _RUNS.setdefault(model_key, {})
    if run_key not in runs:
        kinds = ["float32", "float16"] if kind in ("float32", "float16") else [kind]
        runs[run_key] = run_onnx2tf(env, data, [i.name for i in model.graph.input], kinds, options)
    return runs[run_key]


def _calibration_rows(quantization: Quantization, calibration: dict[str, np.ndarray] | None,
                      batched: bool) -> list[dict[str, np.ndarray]]:
    """The calibration samples as feeds of one model batch each (manifest names), or what int8
    static cannot do here, refused before the long steps."""
    if quantization.calibration_method != "minmax":
        raise UnsupportedError(f"TFLite int8 of an ONNX model is calibrated with min/max ranges only, not "
                               f"{quantization.calibration_method}", where=WHERE,
                               hint="use calibration_method: minmax for TFLite candidates of ONNX models")
    if not calibration:
        raise UnsupportedError("full int8 TFLite needs calibration data", where=WHERE,
                               hint="add calibration: to the manifest")
    count = len(next(iter(calibration.values())))
    # batched: axis 0 is the symbolic batch (fixed to 1 for conversion); else each row is one feed
    return [{name: np.ascontiguousarray(array[i:i + 1] if batched else array[i]) for name, array in
             calibration.items()} for i in range(count)]


def _one_batch(feeds: list[dict[str, np.ndarray]], static_batch: bool) -> list[dict[str, np.ndarray]]:
    """Feeds of model batches as the converted model takes them: one sample at a time where the
    batch was symbolic (and fixed to 1)."""
    if not static_batch:
        return list(feeds)
    return [{k: v[i:i + 1] for k, v in feed.items()} for feed in feeds for i in range(len(next(iter(feed.values()))))]


def _feeds(data: bytes, rows: list[dict[str, np.ndarray]], names: dict[str, str]) -> list[dict[str, np.ndarray]]:
    """``rows`` by the float TFLite model's signature names and input dtypes (token ids may be
    int32 there: converted with a range check, never wrapped)."""
    from runtime.errors import RuntimeBundleError
    from runtime.iocast import cast_checked
    dtypes = edge_dtypes(data)[0]
    try:
        return [{names[name]: cast_checked(array, np.dtype(dtypes[names[name]]), f"calibration input {name!r}")
                 for name, array in row.items()} for row in rows]
    except RuntimeBundleError as exc:
        raise UnsupportedError(exc.message, where=WHERE, hint=exc.hint) from None


def _host_can_check() -> None:
    """The parity check runs the artifact here: without a TFLite interpreter, creating the 2.7 GB
    converter environment would be for nothing."""
    from runtime.backends import get_backend
    backend = get_backend("tflite")
    ok, why = backend.available() if backend else (False, "no tflite backend")
    if not ok:
        raise UnsupportedError(f"the build checks every TFLite artifact on this machine, and no TFLite "
                               f"interpreter is installed here ({why})", where=WHERE,
                               hint="pip install ai-edge-litert (or edgepack[tensorflow])")


def fix_batch(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """A copy with every symbolic axis 0 of the graph inputs and outputs set to 1 (and whether any was)."""
    import onnx
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    changed = False
    for value in (*fixed.graph.input, *fixed.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
            changed = True
    return fixed, changed


def fix_axes(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, dict[str, dict[str, int]]]:
    """A copy with every other symbolic axis of the graph inputs set to ``feed``'s length there
    (the calibrated int8 ranges hold for that length), and the axes fixed. The copy is simplified
    again: the shape arithmetic the symbolic axis needed folds to constants, which onnx2tf
    otherwise lowers wrongly (a BERT's mask Reshape failed with 16 != 1 elements)."""
    import onnx
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    axes: dict[str, dict[str, int]] = {}
    for value in fixed.graph.input:
        if value.name not in feed:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis > 0 and not dim.HasField("dim_value") and axis < feed[value.name].ndim:
                dim.Clear()
                dim.dim_value = int(feed[value.name].shape[axis])
                axes.setdefault(value.name, {})[str(axis)] = dim.dim_value
    if not axes:
        return fixed, {}
    for value in fixed.graph.value_info:  # inferred again from the fixed inputs
        value.type.tensor_type.ClearField("shape")
    from ..passes.simplify import simplify
    return simplify(onnx.shape_inference.infer_shapes(fixed)).model, axes


def run_onnx2tf(env: ConverterEnv, model: bytes, inputs: list[str], kinds: list[str],
                options: dict[str, Any]) -> dict[str, Any]:
    """One onnx2tf run through the driver: the files' bytes and names per kind, or UnsupportedError
    with onnx2tf's reason."""
    with tempfile.TemporaryDirectory(prefix="edgepack-onnx2tf-") as tmp:
        folder = Path(tmp)
        (folder / "model.onnx").write_bytes(model)
        job = {"model": str(folder / "model.onnx"), "out": str(folder / "out"), "result": str(folder / "result.json"),
               "inputs": inputs, "kinds": kinds, **options}
        (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
        # -I: neither PYTHONPATH nor the driver's folder on sys.path (packager/convert is no package there);
        # CPU only: conversion needs no GPU, and TensorFlow would take one's memory
        env_vars = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        try:
            proc = subprocess.run([str(env.python), "-I", str(DRIVER), str(folder / "job.json")], cwd=folder,
                                  capture_output=True, text=True, errors="replace", timeout=CONVERT_TIMEOUT_S,
                                  env=env_vars, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise UnsupportedError(f"onnx2tf did not finish within {CONVERT_TIMEOUT_S // 60} minutes", where=WHERE,
                                   hint=HINT) from None
        try:
            result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UnsupportedError(f"onnx2tf's process ended without a result (exit status {proc.returncode}"
                                   f"{_signal(proc.returncode)}): {first_error(proc.stdout + proc.stderr)}",
                                   where=WHERE, hint=HINT) from None
        if not result.get("ok"):
            message = result.get("error") or ""
            if not message or message.startswith(("SystemExit", "RuntimeError")):
                # onnx2tf printed the reason, then exited or raised a generic error
                message = first_error(f"{proc.stdout}\n{proc.stderr}\n{result.get('traceback', '')}",
                                      default=message or "failed")
            raise UnsupportedError(f"onnx2tf cannot convert this model: {message}", where=WHERE, hint=HINT)
        for entry in result["files"].values():
            if "path" in entry:
                entry["data"] = Path(entry.pop("path")).read_bytes()
        return result


def _signal(code: int) -> str:
    return f", killed by signal {-code}" if code < 0 else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception)): (.+)$")


def first_error(output: str, *, default: str = "no error message") -> str:
    """The first useful line of onnx2tf's output: the first exception line (a chained traceback
    prints the innermost cause first), with the ONNX node onnx2tf names in an ``ERROR:`` line;
    else its first other ``ERROR:`` line; else the last line."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    errors = [line[len("ERROR:"):].strip() for line in lines if line.startswith("ERROR:")]
    node = next((e.split(":", 1)[1].strip() for e in errors if e.startswith("onnx_op_name:")), None)
    found = next((m for line in lines if (m := _EXCEPTION.match(line))), None)
    if found:
        text = f"{found.group(1).split('.')[-1]}: {found.group(3)}"
        return (text + (f" (ONNX node {node})" if node else ""))[:400]
    boilerplate = ("input_onnx_file_path", "Read this", "The trace log")
    useful = [e for e in errors if e and not e.startswith(boilerplate)]
    return (useful[0] if useful else next((ln for ln in reversed(lines) if ln), default))[:400]


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def match_names(ours: list[str], theirs: list[str], kind: str) -> dict[str, str]:
    """Our tensor names -> the TFLite signature's: the same name, else the same once onnx2tf's
    renaming is undone (``:`` -> ``__``, ``_dequantized_output``), else the one name left."""
    found: dict[str, str] = {}
    left = list(theirs)
    for strict in (True, False):
        for name in ours:
            if name in found:
                continue
            for t in left:
                base = t.removesuffix("_dequantized_output")
                if (t == name or base == name) if strict else _norm(base) == _norm(name):
                    found[name] = t
                    left.remove(t)
                    break
    missing = [n for n in ours if n not in found]
    if len(missing) == 1 and len(left) == 1:
        found[missing[0]] = left[0]
    elif missing:
        raise UnsupportedError(f"the TFLite model's {kind} {theirs} do not match the ONNX model's {ours}",
                               where=WHERE, hint=HINT)
    return {n: found[n] for n in ours}
