"""What a bundle carries so that the device can make a TFLite int8 candidate's per-op table itself
(``python -m runtime verify --explain``): no probe model, since LiteRT can read any intermediate
tensor of the candidate's own file (``runtime/tflite_tensors.py``), only the float twin's values of
the most telling tensors on the first golden samples, within the target's ``explain_bytes``.

The float twin is the fp32 TFLite the same converter makes; where its tensor names match the int8
model's (TFLiteConverter and ai-edge-quantizer keep them), the tensors are compared by name, as on
the build host (``tflite_tensors.localise``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.probe_record import ExplainData, ProbeTensor
from runtime.tflite_tensors import interpreter, tensors

from .onnx_nodes import ranked
from .probe import MAX_PROBE_SAMPLES, Probe
from .tflite_tensors import localise


def make_tflite_probe(float_model: bytes, int8_model: bytes, feeds: Sequence[dict[str, np.ndarray]],
                      max_bytes: int, *, artifact: str, prefix: str) -> Probe | str:
    """The references for ``int8_model`` (bundle file ``artifact``) on ``feeds`` (signature names,
    one golden sample each), named ``prefix``.npz; or why none fit in ``max_bytes``."""
    feeds = list(feeds)[:MAX_PROBE_SAMPLES]
    rows = localise(float_model, int8_model, feeds, max_samples=len(feeds))
    if not rows:
        return "the float twin and the int8 model share no tensor names"
    values = tensors(float_model, [r.tensor for r in rows], feeds)
    chosen, used = [], 0
    for r in ranked(rows):
        size = values[r.tensor].nbytes + 256  # the npz entry
        if used + size <= max_bytes:
            chosen.append(r)
            used += size
    if not chosen:
        return f"no tensor's references fit in the target's explain_bytes ({max_bytes})"
    chosen.sort(key=lambda r: (r.depth, r.tensor))
    index = {r.tensor: i for i, r in enumerate(chosen)}
    upstream = _nearest_probed(float_model, index)
    record = ExplainData(
        probe=artifact, references=f"{prefix}.npz", samples=len(feeds),
        tensors=tuple(ProbeTensor(node=r.node, op_type=r.op_type, tensor=r.tensor, output=r.tensor, depth=r.depth,
                                  inputs=upstream.get(r.tensor, ()), host_snr_db=round(r.snr_db, 4)) for r in chosen))
    return Probe(None, {r.tensor: values[r.tensor] for r in chosen}, record)


def _nearest_probed(model: bytes, index: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """Per probed tensor, the nearest probed tensors its op reads (through unprobed ops), by tensor
    index: names repeat in some converters' graphs, and only an op's first output by a probed name
    is the probed one (the table's rule)."""
    interp = interpreter(model)
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001 (LiteRT's op list: inputs and outputs by tensor index)
    reads = {int(o): [int(i) for i in op["inputs"] if int(i) >= 0] for op in ops for o in op["outputs"]}
    probed: dict[int, int] = {}  # tensor index -> position in the probe list
    for op in ops:
        for o in op["outputs"]:
            if names.get(o) in index and index[names[o]] not in probed.values():
                probed[int(o)] = index[names[o]]
    memo: dict[int, tuple[int, ...]] = {}

    def reaching(tensor: int) -> tuple[int, ...]:
        if tensor in probed:
            return (probed[tensor],)
        if tensor not in memo:
            memo[tensor] = ()
            memo[tensor] = tuple(sorted({i for src in reads.get(tensor, []) for i in reaching(src)}))
        return memo[tensor]

    return {names[t]: tuple(sorted({i for src in reads.get(t, []) for i in reaching(src) if i < pos}))
            for t, pos in probed.items()}
