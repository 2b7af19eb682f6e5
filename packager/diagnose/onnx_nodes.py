"""Per-node error localisation for a QDQ int8 ONNX model against the float model it came from.

Both models run on the same inputs with every float tensor of the float model made an output;
each tensor is compared with what the QDQ model's consumers read in its place (the
DequantizeLinear after it, or the tensor itself where it stays float). A node's *added* error is
how much it lowers the signal-to-noise ratio below that of its inputs, so the table shows where
the error first jumps rather than everything downstream of it (cf. onnxruntime's
``quantization/qdq_loss_debug.py``, which compares tensors but does not rank nodes).

A view node (Slice, Reshape, Gather, ...) computes nothing: when its output's SNR is below its
input's, the error was already in the elements it selects, hidden in the whole tensor's SNR by the
others, and the node that set that tensor's range is to blame. YOLO-style heads concatenate box
pixels (0-640) with probabilities (0-1) before slicing them apart: the Concat's output range
rounds every probability to 0 while its SNR looks fine. So a view's added error is moved to the
first non-view node above it (``seen_at`` names the view), and the search keeps that one float.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import onnx

from runtime.explain import INT8_SNR_DB
from runtime.explain import channel_snr_db as channel_snr

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


@dataclass(frozen=True)
class NodeError:
    """One node's output in the quantized model against the float model."""

    node: str
    op_type: str
    tensor: str
    depth: int  # position in the float model's (topological) node order
    snr_db: float  # 20 log10(|float| / |float - quantized|), and at most the median channel's (``channel_snr``)
    cosine: float
    max_abs_error: float
    range: float  # of the float tensor, for reading max_abs_error
    added_db: float  # SNR lost here: its inputs' lowest SNR (at most int8's ideal) minus its own, >= 0
    quantized: bool  # whether the quantized model quantizes this output
    seen_at: str | None = None  # the view node (slice, reshape, ...) where this node's added error shows

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _float_tensors(model: onnx.ModelProto) -> dict[str, int]:
    """Name -> element type of every float value the model's top-level nodes make."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    return {out: types[out] for node in model.graph.node for out in node.output
            if out and types.get(out) in FLOAT_TYPES}


def with_outputs(model: onnx.ModelProto, names: dict[str, int]) -> bytes:
    """A copy of ``model`` that also outputs ``names`` (name -> element type)."""
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    have = {o.name for o in augmented.graph.output}
    for name, elem in names.items():
        if name not in have:
            augmented.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    return augmented.SerializeToString()


def run_with_outputs(model: bytes, names: Sequence[str],
                     feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # fused away otherwise
    options.log_severity_level = 3
    sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    wanted = [n for n in names if n in {o.name for o in sess.get_outputs()}]
    runs = [sess.run(wanted, feed) for feed in feeds]
    return {n: stack([np.asarray(r[i], dtype=np.float32) for r in runs]) for i, n in enumerate(wanted)}


def stack(parts: Sequence[np.ndarray]) -> np.ndarray:
    """One tensor's values over several runs: joined along axis 0 where the runs agree on the other
    axes (the channels stay channels), else flattened."""
    if all(p.ndim >= 1 and p.shape[1:] == parts[0].shape[1:] for p in parts):
        return np.concatenate(parts)
    return np.concatenate([p.ravel() for p in parts])


def _first(feeds: Sequence[dict[str, np.ndarray]], rows: int) -> list[dict[str, np.ndarray]]:
    """The first ``rows`` samples of ``feeds``: every intermediate tensor of the model is kept for
    them (twice), so a large model on many samples would not fit in memory."""
    taken: list[dict[str, np.ndarray]] = []
    left = rows
    for feed in feeds:
        if left <= 0:
            break
        n = len(next(iter(feed.values())))
        taken.append({k: v[:left] for k, v in feed.items()} if n > left else dict(feed))
        left -= min(n, left)
    return taken


def _dequantized(qdq: onnx.ModelProto) -> dict[str, str]:
    """Float tensor -> the DequantizeLinear output that stands for it in the QDQ model."""
    made_by = {out: n for n in qdq.graph.node for out in n.output}
    found: dict[str, str] = {}
    for node in qdq.graph.node:
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in made_by:
            q = made_by[node.input[0]]
            if q.op_type == "QuantizeLinear" and q.input:
                found.setdefault(q.input[0], node.output[0])
    return found


def _cosine(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    a, b = float(np.linalg.norm(ref)), float(np.linalg.norm(got))
    if a == 0.0 or b == 0.0:
        return 1.0 if a == b else 0.0  # both zero: the same; one zero: nothing in common
    return float(np.dot(ref, got) / (a * b))


MAX_SAMPLES = 8  # samples the table is computed on (the first of the feeds)


def stand_ins(float_model: onnx.ModelProto, qdq_model: onnx.ModelProto,
              tensors: dict[str, int] | None = None) -> tuple[dict[str, str], set[str]]:
    """Each float tensor of the float model -> the QDQ model's tensor its consumers read in its place
    (the DequantizeLinear after it, or itself where it stays float), and which of those are
    dequantized (a graph output keeps its name, on the DequantizeLinear that now makes it)."""
    stands_for = _dequantized(qdq_model)
    in_qdq = {out for n in qdq_model.graph.node for out in n.output}
    dequantized = {out for n in qdq_model.graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    tensors = _float_tensors(float_model) if tensors is None else tensors
    return ({t: stands_for.get(t, t) for t in tensors if stands_for.get(t, t) in in_qdq},
            dequantized)


def localise(float_model: onnx.ModelProto, qdq_model: onnx.ModelProto,
             feeds: Sequence[dict[str, np.ndarray]], *, max_samples: int = MAX_SAMPLES) -> list[NodeError]:
    """Every float output of the float model's nodes, compared on the first ``max_samples`` of
    ``feeds``, in graph order."""
    return measure(float_model, qdq_model, feeds, max_samples=max_samples)[0]


def measure(float_model: onnx.ModelProto, qdq_model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], *,
            max_samples: int = MAX_SAMPLES) -> tuple[list[NodeError], dict[str, np.ndarray]]:
    """``localise``'s rows and the float model's values of every tensor it measured (by name)."""
    feeds = _first(feeds, max_samples)
    tensors = _float_tensors(float_model)
    pairs, dequantized = stand_ins(float_model, qdq_model, tensors)
    ref = run_with_outputs(with_outputs(float_model, tensors), list(tensors), feeds)
    got = run_with_outputs(with_outputs(qdq_model, {q: onnx.TensorProto.FLOAT for q in pairs.values()}),
               list(dict.fromkeys(pairs.values())), feeds)
    snr: dict[str, float] = {}
    made_by = {out: node for node in float_model.graph.node for out in node.output}
    seen: dict[str, list[float]] = {}

    def upstream(name: str) -> list[float]:
        """The SNR of ``name``, or, where the quantized model has no such tensor (fused away, e.g.
        a Conv into its Clip), of the nearest measured tensors it is computed from."""
        if name in snr:
            return [snr[name]]
        if name not in seen:
            seen[name] = []
            if name in made_by:
                seen[name] = [v for i in made_by[name].input for v in upstream(i)]
        return seen[name]

    rows = []
    for depth, node in enumerate(float_model.graph.node):
        for out in node.output:
            if out not in pairs or out not in ref or pairs[out] not in got or ref[out].size != got[pairs[out]].size:
                continue
            r, g = ref[out], got[pairs[out]]
            r, g = (r, g) if r.shape == g.shape else (r.ravel(), g.ravel())
            snr[out] = channel_snr(r, g)
            added = max(0.0, min([v for i in node.input for v in upstream(i)] + [INT8_SNR_DB]) - snr[out])
            rows.append(NodeError(node=node.name or f"{node.op_type}_{depth}", op_type=node.op_type, tensor=out,
                                  depth=depth, snr_db=snr[out], cosine=_cosine(r.ravel(), g.ravel()),
                                  max_abs_error=float(np.max(np.abs(r - g))) if r.size else 0.0,
                                  range=float(np.ptp(r)) if r.size else 0.0, added_db=added,
                                  quantized=pairs[out] in dequantized))
    names = {id(n): n.name or f"{n.op_type}_{d}" for d, n in enumerate(float_model.graph.node)}
    above = {names[id(n)]: names[id(made_by[n.input[0]])] for n in float_model.graph.node
             if n.input and n.input[0] in made_by}
    return blame_range_setters(rows, above, VIEW_OPS), ref


# ONNX ops that only select, reorder or reshape their first input's elements
VIEW_OPS = frozenset({"Slice", "Gather", "GatherElements", "GatherND", "Split", "Reshape", "Transpose", "Squeeze",
                      "Unsqueeze", "Flatten", "Identity", "Expand", "DepthToSpace", "SpaceToDepth"})


def blame_range_setters(rows: list[NodeError], above: dict[str, str], views: frozenset[str]) -> list[NodeError]:
    """``rows`` with each view node's added error moved to the first non-view node above it (by
    first inputs; ``above``: node -> the node that makes its first input), which keeps the larger
    of its own and the view's, ``seen_at`` the view (and counts as quantized when the view's output is)."""
    by_name = {r.node: r for r in rows}
    moved: dict[str, NodeError] = {}
    for r in rows:
        if r.op_type not in views or r.added_db <= 0:
            continue
        source, hops = above.get(r.node), 0
        while source in by_name and by_name[source].op_type in views and hops < len(rows):
            source, hops = above.get(source), hops + 1
        if source not in by_name:
            continue
        target = moved.get(source, by_name[source])
        if r.added_db > target.added_db:  # quantized: the view's output is that node's, quantized
            moved[source] = replace(target, added_db=r.added_db, seen_at=r.node,
                                    quantized=target.quantized or r.quantized)
        moved[r.node] = replace(moved.get(r.node, r), added_db=0.0)
    return [moved.get(r.node, r) for r in rows]


TOP = 10  # rows a table keeps: the nodes that add the most error


def summary(rows: Sequence[NodeError], unit: str = "nodes") -> dict[str, Any]:
    """The table the build JSON, reports and ``edgepack debug`` show: the ``TOP`` rows that add
    the most error, how many were measured, and where the error starts."""
    worst = ranked(rows, TOP)
    return {"nodes": len(rows), "rows": [r.to_dict() for r in worst],
            "hint": (f"the error starts at {worst[0].node} ({worst[0].op_type}, -{worst[0].added_db:.1f} dB); "
                     f"quantization: {{fallback: mixed}} keeps such {unit} in float") if worst else None}


def ranked(rows: Sequence[NodeError], top: int | None = None) -> list[NodeError]:
    """The nodes that add the most error first (ties: earlier in the graph first)."""
    order = sorted(rows, key=lambda r: (-r.added_db, r.depth))
    return order[:top] if top is not None else order
