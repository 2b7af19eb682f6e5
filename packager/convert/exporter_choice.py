"""Pick the ONNX export that onnxruntime runs fastest, among those that match the model.

torch's two exporters make different graphs (the dynamo one decomposes ops, the TorchScript one
keeps fused patterns such as attention's MatMul+Softmax), and which one onnxruntime runs faster
differs per model: 0.864 vs 0.783 ms for a small BERT here. With ``exporter: auto`` every
exporter that works is checked against the original model on golden samples and timed on the
build host (onnxruntime's CPU provider, one thread, one sample: what the ONNX candidates run on);
timed in interleaved rounds (the order reversed every other round, so machine load hits all of
them alike); the first in the default order stays unless another is clearly faster, so timing
noise does not flip the choice (and the bundle's bytes) between builds.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import onnx

from runtime.compare import Tolerance, compare
from runtime.tuning.timing import time_calls

# a later exporter replaces the one kept so far only when its median is this much lower
MIN_GAIN = 0.08  # 8 % ...
MIN_GAIN_MS = 0.05  # ... and 0.05 ms: below that, a tie (tiny models, load noise), decided by the order


@dataclass(frozen=True)
class Trial:
    """One exporter's model on the build host: its median latency, or why it was not eligible."""

    exporter: str
    ms: float | None
    problem: str | None = None


def choose(models: list[tuple[str, onnx.ModelProto]], feeds: Mapping[str, np.ndarray],
           reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
           tolerance: Mapping[str, Tolerance], log: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
    """The index of the model to keep and the notes that say why; ``log`` gets the measured
    medians (the verbose build log: timings vary from run to run, the notes must not)."""
    checked = [_trial(name, model, feeds, reference, tolerance) for name, model in models]
    medians = interleaved([call for _, call in checked])
    trials = [Trial(t.exporter, ms) if t.problem is None else t for (t, _), ms in zip(checked, medians, strict=True)]
    if log is not None:
        log("exporter medians on this host: " + "; ".join(
            f"{t.exporter} {t.ms:.3f} ms" if t.ms is not None else f"{t.exporter}: -" for t in trials))
    eligible = [i for i, t in enumerate(trials) if t.ms is not None]
    if not eligible:  # none matches: keep the first, parity reports it on every candidate
        return 0, ["exporters compared on this host, none matches the original model: "
                   + "; ".join(f"{t.exporter}: {t.problem}" for t in trials)]
    keep = eligible[0]  # in order, each replaces the one kept so far only where clearly faster
    for i in eligible[1:]:
        base, other = trials[keep].ms, trials[i].ms
        assert base is not None and other is not None
        if other < base * (1 - MIN_GAIN) and base - other > MIN_GAIN_MS:
            keep = i
    # the verdict, not the milliseconds: the note goes into bundle.json, whose bytes must not
    # change with the machine's load (``timings`` gives the numbers to the build log)
    matched = "; ".join(f"{t.exporter}: matches" if t.ms is not None else f"{t.exporter}: {t.problem}"
                        for t in trials)
    why = (f"the first in order; no other is faster by {MIN_GAIN:.0%} and {MIN_GAIN_MS} ms" if keep == eligible[0]
           else f"faster than {trials[eligible[0]].exporter} by more than {MIN_GAIN:.0%}")
    return keep, [f"exporters compared on this host (onnxruntime CPU, 1 thread, batch 1): {matched}; "
                  f"kept {trials[keep].exporter}: {why}"]



ROUNDS = 10  # interleaved timing rounds, the order reversed every other round: load hits all alike


def interleaved(calls: list[Callable[[], object] | None]) -> list[float | None]:
    """Per call, the median over rounds of its median latency in ms (None for None)."""
    rounds: list[list[float]] = [[] for _ in calls]
    order = [i for i, c in enumerate(calls) if c is not None]
    for r in range(ROUNDS):
        for i in order if r % 2 == 0 else order[::-1]:
            call = calls[i]
            assert call is not None
            rounds[i].append(time_calls(call, runs=20, warmup=2, max_seconds=0.5).p50_ms)
    return [float(np.median(ms)) if ms else None for ms in rounds]


def _trial(name: str, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
           reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
           tolerance: Mapping[str, Tolerance]) -> tuple[Trial, Callable[[], object] | None]:
    """The export checked against the model on golden samples: eligible (with the call to time on
    one sample) or why not."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        got = dict(zip(names, sess.run(names, dict(feeds)), strict=True))
    except Exception as exc:
        return Trial(name, None, f"onnxruntime cannot run it ({_line(exc)})"), None
    ref = reference(dict(feeds))
    report = compare({n: ref[n] for n in tolerance}, {n: got[n] for n in tolerance if n in got}, dict(tolerance))
    if not report.passed:
        failed = "; ".join(f"{o.name}: {', '.join(o.failures)}" for o in report.outputs if not o.passed)
        return Trial(name, None, f"differs from the original model ({failed})"), None
    one = {k: np.ascontiguousarray(v[:1]) for k, v in feeds.items()}
    return Trial(name, None), partial(sess.run, names, one)


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
