"""Shape annotations (``graph.value_info``) kept in the fp32 ONNX artifact or dropped: whichever
onnxruntime runs faster on the build host.

onnxsim writes the inferred shape of every intermediate tensor into the model. onnxruntime's graph
fusions read them, and on some models they enable a fusion that is slower on the CPU (a small BERT,
Optimum's benchmark model: two SkipLayerNormalization fusions), while other models run faster
with them. The annotations change nothing the model computes, so both versions are timed as the
exporters are
(``exporter_choice.interleaved``: onnxruntime's CPU provider, one thread, one sample, interleaved
rounds), and the annotated model stays unless the other is clearly faster: timing noise must not
flip the artifact's bytes between builds.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
import onnx

from . import PassResult

MIN_GAIN = 0.08  # the plain model replaces the annotated one only when its median is 8 % lower ...
MIN_GAIN_MS = 0.02  # ... and 0.02 ms


def fastest(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
            log: Callable[[str], None] | None = None) -> PassResult:
    """``model`` with its shape annotations, or without them where onnxruntime runs that clearly
    faster on ``feeds`` (one model batch); the record says which and why (the milliseconds go to ``log``:
    bundle.json must not change with the machine's load)."""
    annotated = len(model.graph.value_info)
    if annotated == 0:
        return PassResult(model, "fp32", modified=False)
    plain = onnx.ModelProto()
    plain.CopyFrom(model)
    del plain.graph.value_info[:]
    calls = [_call(m, feeds) for m in (model, plain)]
    if any(c is None for c in calls):  # onnxruntime cannot run one of them: parity will say so
        return PassResult(model, "fp32", modified=False)
    from ..convert.exporter_choice import interleaved
    with_ms, without_ms = interleaved(calls)
    assert with_ms is not None and without_ms is not None
    if log is not None:
        log(f"fp32 onnx on this host: {with_ms:.3f} ms with shape annotations, {without_ms:.3f} ms without")
    if without_ms < with_ms * (1 - MIN_GAIN) and with_ms - without_ms > MIN_GAIN_MS:
        return PassResult(plain, "fp32", modified=True, details={"shape_annotations": "dropped"},
                          notes=[f"dropped the {annotated} intermediate shape annotations onnxsim wrote: onnxruntime "
                                 f"ran the model faster without them on this host (by more than {MIN_GAIN:.0%})"])
    return PassResult(model, "fp32", modified=False, details={"shape_annotations": "kept"})


def _call(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> Callable[[], object] | None:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        one = {k: np.ascontiguousarray(v) for k, v in feeds.items()}  # one model batch
        names = [o.name for o in sess.get_outputs()]
        sess.run(names, one)
    except Exception:
        return None
    return partial(sess.run, names, one)
