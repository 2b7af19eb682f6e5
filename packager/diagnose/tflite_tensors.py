"""Per-op error localisation for an int8 TFLite model against the float TFLite model it was
quantized from (ai-edge-quantizer keeps the float model's tensor names).

Both models run on the same inputs with every intermediate tensor kept
(``experimental_preserve_all_tensors``); each float op output is compared with the tensor of the
same name in the int8 model, dequantized with its scale and zero point. The table is the ONNX
one's (``onnx_nodes.NodeError``): a row per op output, ``added_db`` the SNR it loses below its
inputs', so the search keeps the op where the error first jumps; a view op's (reshape, slice,
...) added error goes to the op above it that set the range (see ``onnx_nodes``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.tflite_tensors import as_float as _as_float
from runtime.tflite_tensors import feed as _feed
from runtime.tflite_tensors import interpreter as _interpreter

from .onnx_nodes import INT8_SNR_DB, MAX_SAMPLES, NodeError, _cosine, blame_range_setters, channel_snr, stack

_QUANTIZED = (np.int8, np.uint8, np.int16)


def localise(float_model: bytes, quant_model: bytes, feeds: Sequence[dict[str, np.ndarray]],
             *, max_samples: int = MAX_SAMPLES) -> list[NodeError]:
    """Every float op output of ``float_model`` against the same-named tensor of ``quant_model``
    on the first ``max_samples`` feeds (signature names, one model batch each), in op order."""
    fl, qu = _interpreter(float_model), _interpreter(quant_model)
    ops = [op for op in fl._get_ops_details()]  # noqa: SLF001 (LiteRT's op list: name, inputs, outputs)
    f_tensors = {d["index"]: d for d in fl.get_tensor_details()}
    q_by_name = {d["name"]: d for d in qu.get_tensor_details()}
    wanted: dict[int, str] = {}  # op output -> its name, the first output of each name only (names can repeat)
    for op in ops:
        for i in op["outputs"]:
            if i in f_tensors and np.dtype(f_tensors[i]["dtype"]).kind == "f" and f_tensors[i]["name"] in q_by_name \
                    and f_tensors[i]["name"] not in wanted.values():
                wanted[i] = f_tensors[i]["name"]
    ref: dict[str, list[np.ndarray]] = {name: [] for name in wanted.values()}
    got: dict[str, list[np.ndarray]] = {name: [] for name in wanted.values()}
    for feed in list(feeds)[:max_samples]:
        _feed(fl, feed)
        _feed(qu, feed)
        for index, tensor in wanted.items():
            ref[tensor].append(_as_float(fl, f_tensors[index]))
            got[tensor].append(_as_float(qu, q_by_name[tensor]))
    snr: dict[int, float] = {}
    made_by = {out: op for op in ops for out in op["outputs"]}
    rows = []

    def upstream(index: int, seen: set[int]) -> list[float]:
        """The SNR of tensor ``index``, or of the nearest measured tensors it is computed from."""
        if index in snr:
            return [snr[index]]
        if index in seen or index not in made_by:
            return []
        seen.add(index)
        return [v for i in made_by[index]["inputs"] for v in upstream(int(i), seen)]

    for depth, op in enumerate(ops):
        for index in op["outputs"]:
            name = wanted.get(index)
            if name is None or not ref[name]:
                continue
            r, g = stack(ref[name]), stack(got[name])
            if r.size != g.size:
                continue
            r, g = (r, g) if r.shape == g.shape else (r.ravel(), g.ravel())
            snr[index] = channel_snr(r, g)
            inputs = [v for i in op["inputs"] if int(i) >= 0 for v in upstream(int(i), set())]
            added = max(0.0, min(inputs + [INT8_SNR_DB]) - snr[index])
            rows.append(NodeError(node=name, op_type=op["op_name"], tensor=name, depth=depth, snr_db=snr[index],
                                  cosine=_cosine(r.ravel(), g.ravel()),
                                  max_abs_error=float(np.max(np.abs(r - g))) if r.size else 0.0,
                                  range=float(np.ptp(r)) if r.size else 0.0, added_db=added,
                                  quantized=np.dtype(q_by_name[name]["dtype"]) in [np.dtype(t) for t in _QUANTIZED]))
    name_of = {index: f_tensors[index]["name"] for op in ops for index in op["outputs"] if index in f_tensors}
    above = {name_of[out]: name_of[made_by[int(op["inputs"][0])]["outputs"][0]]
             for op in ops for out in op["outputs"] if out in name_of and len(op["inputs"])
             and int(op["inputs"][0]) in made_by and made_by[int(op["inputs"][0])]["outputs"][0] in name_of}
    return blame_range_setters(rows, above, VIEW_OPS)


# LiteRT ops that only select, reorder or reshape their first input's elements (not SPLIT: its data is input 1)
VIEW_OPS = frozenset({"RESHAPE", "STRIDED_SLICE", "SLICE", "GATHER", "GATHER_ND", "SPLIT_V", "TRANSPOSE",
                      "SQUEEZE", "EXPAND_DIMS", "UNPACK", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH"})


def op_count(model: bytes) -> int:
    """The model's ops (the mixed search's budget is a share of them)."""
    from ai_edge_litert.interpreter import Interpreter
    return len(Interpreter(model_content=model)._get_ops_details())  # noqa: SLF001


def run(model: bytes, feeds: Sequence[dict[str, np.ndarray]], outputs: dict[str, str]) -> dict[str, np.ndarray]:
    """``outputs`` (our name -> signature name) over ``feeds``, concatenated, int8 ones dequantized."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=model)
    details = interp.get_signature_runner().get_output_details()
    got: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for feed in feeds:
        result = _feed(interp, feed)
        for ours, theirs in outputs.items():
            value, (scale, zero) = np.asarray(result[theirs]), details[theirs]["quantization"]
            got[ours].append((value.astype(np.float32) - zero) * scale if value.dtype in _QUANTIZED and scale
                             else value)
    return {name: np.concatenate(values) for name, values in got.items()}


def smoke_run(model: bytes, feed: dict[str, np.ndarray]) -> None:
    """Run ``model`` once as the runtime does (default op resolver: XNNPACK): a model LiteRT
    aborts on dies here, in the caller's (child) process."""
    from ai_edge_litert.interpreter import Interpreter
    _feed(Interpreter(model_content=model), feed)
