"""What a bundle carries so that the device can make the per-node table itself (``python -m
runtime verify --explain``, ``runtime/explain.py``): a *probe*, the int8 model with its most
telling intermediate tensors as extra outputs (onnxruntime cannot add outputs to a model, and the
device has no ``onnx`` package to do it), and the float model's values of those tensors on the
first golden samples, within the target's ``explain_bytes``.

Which tensors: every one when they fit; else those that lose the most signal on the build host
first (the table's order), so the budget goes where int8 hurts. Each records its nearest probed
inputs (the device computes the SNR lost at it, as the build does) and the host's SNR (the device
says where it is worse than the host).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from runtime.probe_record import ExplainData, ProbeTensor

from .onnx_nodes import measure, ranked, stand_ins, with_outputs

MAX_PROBE_SAMPLES = 4


@dataclass(frozen=True)
class Probe:
    """The probe model (None for TFLite: the candidate's own file is read), the float references
    (tensor -> values) and the candidate's ``explain`` record."""

    model: bytes | None
    references: dict[str, np.ndarray]
    record: ExplainData


def make_probe(float_model: onnx.ModelProto, qdq_model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]],
               max_bytes: int, *, prefix: str) -> Probe | str:
    """The probe for ``qdq_model`` on ``feeds`` (one golden sample each), its files named
    ``prefix``.probe.onnx and ``prefix``.npz; or why none fits in ``max_bytes``."""
    feeds = list(feeds)[:MAX_PROBE_SAMPLES]
    pairs, _ = stand_ins(float_model, qdq_model)
    measured, values = measure(float_model, qdq_model, feeds, max_samples=len(feeds))
    rows = {r.tensor: r for r in measured}
    order = [r.tensor for r in ranked(measured) if r.tensor in pairs]
    base = len(with_outputs(qdq_model, {}))
    chosen, used = [], base
    for t in order:
        size = values[t].nbytes + 64 if t in values else 0
        if size and used + size + 256 <= max_bytes:  # the probe's extra output and the npz entry
            chosen.append(t)
            used += size + 256
    if not chosen:
        if base > max_bytes:
            return f"the int8 model alone is {base} bytes, over the target's explain_bytes ({max_bytes})"
        return f"no tensor's references fit in the target's explain_bytes ({max_bytes})"
    made_by = {out: n for n in float_model.graph.node for out in n.output}
    depth = {t: rows[t].depth for t in chosen}
    chosen.sort(key=lambda t: (depth[t], t))
    index = {t: i for i, t in enumerate(chosen)}
    probe = _NearestProbed(made_by, index)
    record = ExplainData(
        probe=f"{prefix}.probe.onnx", references=f"{prefix}.npz", samples=len(feeds),
        tensors=tuple(ProbeTensor(node=rows[t].node, op_type=rows[t].op_type, tensor=t, output=pairs[t],
                                  depth=rows[t].depth, inputs=probe.inputs(t), host_snr_db=round(rows[t].snr_db, 4))
                      for t in chosen))
    model = with_outputs(qdq_model, {pairs[t]: onnx.TensorProto.FLOAT for t in chosen})
    return Probe(model, {t: values[t] for t in chosen}, record)


class _NearestProbed:
    """The nearest probed tensors each probed tensor is computed from (through unprobed ones)."""

    def __init__(self, made_by: dict[str, onnx.NodeProto], index: dict[str, int]) -> None:
        self.made_by, self.index = made_by, index
        self.memo: dict[str, tuple[int, ...]] = {}

    def inputs(self, tensor: str) -> tuple[int, ...]:
        node = self.made_by.get(tensor)
        if node is None:
            return ()
        return tuple(sorted({i for name in node.input if name for i in self._reaching(name)}))

    def _reaching(self, name: str) -> tuple[int, ...]:
        if name in self.index:
            return (self.index[name],)
        if name not in self.memo:
            self.memo[name] = ()  # a cycle (none in a valid graph) ends here
            node = self.made_by.get(name)
            self.memo[name] = tuple(sorted({i for n in (node.input if node else []) if n for i in self._reaching(n)}))
        return self.memo[name]
