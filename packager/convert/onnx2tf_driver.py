"""Runs inside the isolated onnx2tf environment (see converter_env), never in edgepack's: one ONNX
file -> the .tflite files a job asks for, and a result.json the packager reads.

Standalone on purpose: the packager is not installed there, so this imports only the standard
library, numpy, onnx2tf and ai_edge_litert. Run as ``python -I onnx2tf_driver.py job.json``.

Two things are adjusted here rather than in onnx2tf's options:
- float16: onnx2tf 2.6.9's float16 model computes in float16 with float16 inputs/outputs, which
  the runtime does not feed; its float16 hook is replaced by one keeping the graph float32 with
  float16 weights dequantized at load (what TFLiteConverter's float16 mode makes).
- every file is loaded with LiteRT here (tensors allocated), so a model onnx2tf writes but LiteRT
  rejects is reported with LiteRT's reason, and its signature names travel back for the io_map.
"""
from __future__ import annotations

import json
import platform
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

# onnx2tf's output files by kind (<model stem><suffix>)
SUFFIXES = {"float32": "_float32.tflite", "float16": "_float16.tflite",
            "dynamic_range": "_dynamic_range_quant.tflite"}
MIN_FP16_ELEMENTS = 16  # smaller float constants (scalars, tiny vectors) stay float32


def fp16_weights(model_ir: Any) -> Any:
    """A float32 copy of onnx2tf's ModelIR whose float constants of MIN_FP16_ELEMENTS or more are
    stored as float16 and DEQUANTIZEd to float32 when the model loads."""
    import numpy as np
    from onnx2tf.tflite_builder.ir import OperatorIR, TensorIR, clone_model_ir_with_float32
    clone = clone_model_ir_with_float32(model_ir)
    dequantize = []
    for name, tensor in list(clone.tensors.items()):
        data = tensor.data
        if tensor.dtype != "FLOAT32" or tensor.is_variable or not isinstance(data, np.ndarray) \
                or data.size < MIN_FP16_ELEMENTS:
            continue
        half = f"{name}__fp16"
        clone.tensors[half] = TensorIR(name=half, dtype="FLOAT16", shape=list(tensor.shape),
                                       shape_signature=list(tensor.shape_signature or tensor.shape),
                                       data=data.astype(np.float16), logical_layout=tensor.logical_layout,
                                       physical_layout=tensor.physical_layout)
        tensor.data = None  # now made by the DEQUANTIZE op below
        dequantize.append(OperatorIR(op_type="DEQUANTIZE", inputs=[half], outputs=[name]))
    clone.operators = dequantize + clone.operators
    return clone


def load_check(path: Path) -> dict[str, Any]:
    """Load ``path`` with LiteRT and allocate its tensors; its serving signature's names."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    signatures = interp.get_signature_list() or {}
    sig = signatures.get("serving_default") or next(iter(signatures.values()), None)
    if sig is None:
        return {"inputs": [d["name"] for d in interp.get_input_details()],
                "outputs": [d["name"] for d in interp.get_output_details()]}
    return {"inputs": list(sig["inputs"]), "outputs": list(sig["outputs"])}


def reason(exc: BaseException) -> str:
    """The most specific line: the first "Type: message" of the innermost cause."""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def convert(job: dict[str, Any]) -> dict[str, Any]:
    """Run onnx2tf once for every file the job asks for; per kind its path and names, or why not."""
    import onnx2tf
    import onnx2tf.tflite_builder as builder
    builder.clone_model_ir_with_float16 = fp16_weights
    kinds = list(job["kinds"])
    out = Path(job["out"])
    onnx2tf.convert(
        input_onnx_file_path=job["model"], output_folder_path=str(out),
        keep_ncw_or_nchw_or_ncdhw_input_names=list(job["inputs"]) or None,
        output_dynamic_range_quantized_tflite="dynamic_range" in kinds,
        quant_type=job.get("quant_type", "per-channel"), non_verbose=True)
    stem = Path(job["model"]).stem
    files: dict[str, Any] = {}
    for kind in kinds:
        path = out / f"{stem}{SUFFIXES[kind]}"
        if not path.is_file():
            files[kind] = {"error": f"onnx2tf wrote no {kind} model"}
            continue
        try:
            files[kind] = {"path": str(path), **load_check(path)}
        except Exception as exc:
            files[kind] = {"error": f"LiteRT cannot load onnx2tf's {kind} model: {reason(exc)}"}
    return files


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result: dict[str, Any] = {"python": platform.python_version()}
    for name in ("onnx2tf", "ai-edge-litert"):
        try:
            result[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            result[name] = None
    try:
        result.update(ok=True, files=convert(job))
    except BaseException as exc:  # SystemExit too: onnx2tf exits on some errors after printing them
        result.update(ok=False, error=reason(exc), traceback=traceback.format_exc()[-6000:])
    Path(job["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
