"""The dtypes a TFLite converter gave the model's edge, recorded where they differ from the manifest.

litert-torch turns int64 token ids into int32 inputs, a converter may take bool as int8 or give
float16: the candidate's ``io_map`` then says so (``input_dtypes`` / ``output_dtypes``) and the
runtime converts, range-checked (``runtime.iocast``). Full-integer int8 I/O of a float tensor is
not a dtype change: the runtime (de)quantizes it with the tensor's scale and zero point.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from runtime.iocast import IO_DTYPES

from ..config.manifest import Manifest
from ..errors import ConversionError

_QUANTIZED = ("int8", "uint8", "int16")


def edge_dtypes(data: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """(inputs, outputs): name -> dtype as the runtime's TFLite backend sees them (the signature's
    keys when the model has one signature, else tensor names)."""
    interp = _interpreter(data)
    signatures = dict(interp.get_signature_list() or {})
    if signatures:
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        runner = interp.get_signature_runner(key)
        ins, outs = runner.get_input_details(), runner.get_output_details()
        return ({n: np.dtype(d["dtype"]).name for n, d in ins.items()},
                {n: np.dtype(d["dtype"]).name for n, d in outs.items()})
    return ({d["name"]: np.dtype(d["dtype"]).name for d in interp.get_input_details()},
            {d["name"]: np.dtype(d["dtype"]).name for d in interp.get_output_details()})


def with_io_dtypes(data: bytes, io_map: dict[str, dict[str, str]],
                   manifest: Manifest) -> tuple[dict[str, dict[str, str]], list[str]]:
    """``io_map`` plus ``input_dtypes`` / ``output_dtypes`` where the artifact's dtype is not the
    manifest's, and one note per change. An edge dtype the runtime cannot convert is an error."""
    ins, outs = edge_dtypes(data)
    out = {k: dict(v) for k, v in io_map.items()}
    notes: list[str] = []
    for kind, specs, edge in (("input", manifest.inputs, ins), ("output", manifest.outputs, outs)):
        names = io_map.get(f"{kind}s") or {}
        changed: dict[str, str] = {}
        for spec in specs:
            art = edge.get(names.get(spec.name, spec.name))
            if art is None or art == spec.dtype or (art in _QUANTIZED and spec.dtype.startswith("float")):
                continue
            if art not in IO_DTYPES:
                raise ConversionError(f"the TFLite model's {kind} {spec.name!r} is {art}, which the runtime "
                                      f"cannot convert to the manifest's {spec.dtype}", where="tflite",
                                      hint="use an onnx candidate for this model")
            changed[spec.name] = art
            way = f"converts {spec.dtype} feeds" if kind == "input" else f"converts results back to {spec.dtype}"
            check = (f", refusing values {art} cannot hold" if kind == "input"
                     and _narrower(spec.dtype, art) else "")
            notes.append(f"{kind} {spec.name!r} is {art} in the TFLite model ({spec.dtype} in the manifest): "
                         f"the runtime {way}{check}")
        if changed:
            out[f"{kind}_dtypes"] = changed
    return out, notes


def _narrower(wide: str, narrow: str) -> bool:
    a, b = np.dtype(wide), np.dtype(narrow)
    return b == np.bool_ or (a.kind == b.kind and b.itemsize < a.itemsize) or (a.kind in "iu" and b.kind == "f")


def _interpreter(data: bytes) -> Any:
    """LiteRT's interpreter (the devices'), else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from ..sources.tf_io import import_tf
        Interpreter = import_tf().lite.Interpreter  # noqa: N806
    return Interpreter(model_content=data)
