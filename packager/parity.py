"""Host-side checks of an artifact against the original model, using runtime's comparison maths."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .data import EvaluationSet, Feeds, SampleSet
from .errors import ConversionError, UnsupportedError

if TYPE_CHECKING:
    from .manifest import Manifest
    from .pipeline import Made
    from .targets import CandidateSpec

Runner = Callable[[Feeds], dict[str, np.ndarray]]


class OnnxRunner:
    """An artifact on onnxruntime's CPU provider, one thread (deterministic numbers for the bundle)."""

    def __init__(self, model_bytes: bytes, output_names: list[str], where: str) -> None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ConversionError(f"onnxruntime cannot load the artifact: {exc}", where=where) from None
        self.output_names = output_names
        self.where = where

    def close(self) -> None:
        self.session = None

    def __call__(self, feeds: Feeds) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self.output_names, feeds)
        except Exception as exc:
            raise ConversionError(f"onnxruntime failed to run the artifact: {exc}", where=self.where) from None
        return dict(zip(self.output_names, values))


def host_runner(spec: "CandidateSpec", made: "Made", manifest: "Manifest", where: str) -> Any:
    """How the host checks an artifact: onnxruntime's CPU provider for ONNX.

    TFLite and TorchScript artifacts are checked through the runtime's own backends (the same
    code the device runs); until this runtime has them, those candidates are reported unsupported.
    """
    if spec.format == "onnx":
        return OnnxRunner(made.data, [o.name for o in manifest.outputs], where)
    from runtime.backends import get_backend
    if get_backend(spec.backend) is None:
        raise UnsupportedError(f"this runtime has no {spec.backend} backend yet, so {spec.format} artifacts "
                               "cannot be checked or run", where=where, hint="use onnx candidates for now")
    raise UnsupportedError(f"host checks of {spec.format} artifacts are not wired up yet", where=where,
                           hint="use onnx candidates for now")


def run_samples(runner: Runner, samples: SampleSet, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Outputs for every sample, laid out like the samples (batched, or stacked per sample)."""
    parts: dict[str, list[np.ndarray]] = {}
    for feeds in samples.batches(batch_size):
        for name, value in runner(feeds).items():
            parts.setdefault(name, []).append(np.asarray(value))
    join = np.concatenate if samples.batched else np.stack
    return {name: join(values) for name, values in parts.items()}


def accuracy(runner: Runner, evaluation: EvaluationSet, output: str) -> float:
    """Top-1 accuracy of ``output`` on held-out data."""
    correct = 0
    for feeds, labels in zip(evaluation.feeds, evaluation.labels):
        scores = np.asarray(runner(feeds)[output])
        if scores.dtype.kind in "iub" and scores.size == len(labels):  # already class ids
            pred = scores.reshape(len(labels))
        else:
            pred = scores.reshape(len(labels), -1).argmax(axis=-1)
        correct += int((pred == labels).sum())
    return correct / max(len(evaluation), 1)


def host_latency_ms(runner: Runner, feeds: Feeds, *, warmup: int = 5, runs: int = 30,
                    budget_s: float = 2.0) -> float:
    """Median latency of one call on this host (a hint for the report; the device decides)."""
    for _ in range(warmup):
        runner(feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs and (time.perf_counter() - start) < budget_s:
        t0 = time.perf_counter()
        runner(feeds)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def first_feed(samples: SampleSet) -> dict[str, Any]:
    """One sample as a feed, for latency measurements."""
    return next(samples.batches(1))
