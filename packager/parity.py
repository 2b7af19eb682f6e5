"""Host-side checks of an artifact against the original model, using runtime's comparison maths."""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConversionError
from .inputs.data import EvaluationSet, Feeds, SampleSet
from .quiet import quiet

if TYPE_CHECKING:
    from runtime.signature import Signature

    from .config.manifest import Manifest
    from .config.targets import CandidateSpec
    from .results import Made

Runner = Callable[[Feeds], dict[str, np.ndarray]]


# Host checks run on the CPU: delegates and GPUs are the device's business.
HOST_PROVIDERS = {"onnx": "CPUExecutionProvider", "tflite": "XNNPACK", "torchscript": "cpu"}


class RuntimeRunner:
    """An artifact run through the runtime's own selection and backend: the device's code path.

    The artifact sits in a one-candidate bundle in a temp folder; what the host measures is what
    ``python -m runtime verify`` computes on the device (int8 I/O, io_map and all).
    """

    def __init__(self, spec: CandidateSpec, made: Made, signature: Signature, where: str) -> None:
        from runtime.bundle import Bundle, Candidate
        from runtime.bundle_json import io_map_fields
        from runtime.errors import NoCandidateError
        from runtime.model import load
        self._tmp = tempfile.TemporaryDirectory(prefix="edgepack-check-")
        rel = f"artifact{made.suffix}"
        (Path(self._tmp.name) / rel).write_bytes(made.data)
        io_map = made.extras.get("io_map") or {}
        candidate = Candidate(id=spec.id, file=rel, format=spec.format, backend=spec.backend,
                              precision=spec.precision, providers=(HOST_PROVIDERS[spec.format],),
                              provider_options=({},), threads=1, tolerance={},
                              **io_map_fields(io_map or None, where=f"candidate {spec.id}: io_map"),
                              static_batch=made.extras.get("static_batch"),
                              static_axes=dict(made.extras.get("static_axes") or {}),
                              quantized_engine=made.extras.get("quantized_engine"))
        # the runtime's own typed bundle (as bundle.json would hold it), one candidate
        bundle = Bundle(root=Path(self._tmp.name), name="host-check", target={}, signature=signature,
                        candidates=(candidate,), golden=None, files={}, fallbacks=[], warnings=[], provenance={})
        try:
            with quiet():  # backends announce themselves on stderr (e.g. LiteRT's XNNPACK line)
                # the runtime's one Model factory, for exactly this candidate (no fallback)
                self.model = load(bundle, candidate=candidate.id, verify_hashes=False, tuned=False)
        except NoCandidateError as exc:
            self._tmp.cleanup()
            reason = exc.decisions[0].reason if exc.decisions else exc.message
            raise ConversionError(f"the runtime cannot run the artifact on this host: {reason}",
                                  where=where, hint=_unrunnable_hint(spec.backend, reason)) from None
        self.where = where

    def close(self) -> None:
        self.model.close()
        self._tmp.cleanup()

    def __call__(self, feeds: Feeds) -> dict[str, np.ndarray]:
        try:
            return self.model.run(feeds)
        except Exception as exc:
            raise ConversionError(f"running the artifact failed: {exc}", where=self.where) from None


def _unrunnable_hint(backend: str, reason: str) -> str:
    """A hint that follows from why the runtime could not open the artifact."""
    from runtime.backends import get_backend
    cls = get_backend(backend)
    if cls is None or not cls.available()[0]:
        return f"install the {backend} backend on the build machine (pip install 'edgepack[all]')"
    if "differ from the signature" in reason or "lack the signature" in reason:
        return ("the converter gave the artifact other inputs/outputs than the model's signature (extra inputs "
                "are often constants it did not freeze); use another format's candidate for this model, and "
                "report the model to edgepack")
    return "the artifact is broken for this backend; use another candidate, and report the model to edgepack"


def run_samples(runner: Runner, samples: SampleSet, batch_size: int = 64,
                on_rows: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Outputs for every sample, laid out like the samples (batched, or stacked per sample);
    ``on_rows(n)`` is told after each batch how many samples it held (for a progress bar)."""
    parts: dict[str, list[np.ndarray]] = {}
    for feeds in samples.batches(batch_size):
        for name, value in runner(feeds).items():
            parts.setdefault(name, []).append(np.asarray(value))
        if on_rows is not None:
            on_rows(len(next(iter(feeds.values()))) if samples.batched else 1)
    join = np.concatenate if samples.batched else np.stack
    return {name: join(values) for name, values in parts.items()}


def metric(runner: Runner, evaluation: EvaluationSet, manifest: Manifest,
           on_rows: Callable[[int], None] | None = None) -> float:
    """The manifest's evaluation metric of ``runner`` on the held-out data (packager.metrics)."""
    from .metrics import metric_value
    assert manifest.evaluation is not None
    got: dict[str, list[np.ndarray]] = {}
    for feeds in evaluation.feeds:
        for name, value in runner(feeds).items():
            got.setdefault(name, []).append(np.asarray(value))
        if on_rows is not None:
            on_rows(len(next(iter(feeds.values()))))
    outputs = {name: np.concatenate(values) for name, values in got.items()}
    return metric_value(outputs, np.concatenate(evaluation.labels), manifest.evaluation, manifest.base_dir,
                        f"{manifest.file}: evaluation.metric")


def host_latency_ms(runner: Runner, feeds: Feeds, *, warmup: int = 5, runs: int = 30,
                    budget_s: float = 2.0) -> float:
    """Median latency of one call on this host (a hint for the report; the device decides), timed
    by the runtime's one timing loop (``budget_s`` bounds warm-up and runs together)."""
    from runtime.tuning.timing import time_calls
    return time_calls(partial(runner, feeds), runs=runs, warmup=warmup, max_seconds=budget_s).p50_ms


def first_feed(samples: SampleSet) -> dict[str, Any]:
    """One sample as a feed, for latency measurements."""
    return next(samples.batches(1))
