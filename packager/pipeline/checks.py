"""Host checks of an artifact: golden outputs, accuracy and host latency through the runtime's own
backend (the device's code path), cached by the artifact's bytes, the data and this host."""
from __future__ import annotations

import hashlib
import io
import platform

import numpy as np

from runtime.signature import Signature

from ..cache import BuildCache, Entry, npz_bytes
from ..config.manifest import Manifest
from ..config.targets import CandidateSpec
from ..inputs.data import EvaluationSet, SampleSet
from ..parity import RuntimeRunner, first_feed, host_latency_ms, metric, run_samples
from ..quiet import quiet
from ..results import Made
from ..steps.keys import step_key
from .inputs import Inputs

CHECK_TOOLS = ("onnxruntime", "ai-edge-litert", "torch", "numpy")

Checked = tuple[dict[str, np.ndarray], float | None, float | None]  # outputs, accuracy, latency (ms)


def check_key(made: Made, spec: CandidateSpec, inputs: Inputs) -> str:
    """The check's input is the artifact's content; latency makes the host part of its config."""
    record = inputs.record
    return step_key("check", hashlib.sha256(made.data).hexdigest(), {
        "data": record.data_key, "signature": record.signature.to_dict(), "format": spec.format,
        "backend": spec.backend, "precision": spec.precision, "extras": made.extras,
        "machine": platform.machine(), "processor": platform.processor()}, CHECK_TOOLS)


def check(spec: CandidateSpec, made: Made, inputs: Inputs, cache: BuildCache) -> Checked:
    """Golden outputs, accuracy and host latency of an artifact (from the cache when it has them)."""
    key = check_key(made, spec, inputs)
    hit = cache.get(key, f"check {spec.variant}")
    if hit is not None:
        with np.load(io.BytesIO(hit.blobs["outputs.npz"]), allow_pickle=False) as npz:
            outputs = {k: npz[k] for k in npz.files}
        return outputs, hit.meta["accuracy"], hit.meta["latency"]
    checked = measure(spec, made, inputs.record.signature, inputs.manifest, inputs.golden(), inputs.evaluation())
    outputs, acc, latency = checked
    cache.put(key, Entry({"accuracy": acc, "latency": latency}, {"outputs.npz": npz_bytes(outputs)}))
    return checked


def measure(spec: CandidateSpec, made: Made, signature: Signature, manifest: Manifest, golden: SampleSet,
            evaluation: EvaluationSet | None) -> Checked:
    """Run the artifact on the golden inputs (and evaluation data), then time one call."""
    runner = RuntimeRunner(spec, made, signature, f"candidate {spec.id}")
    with quiet():  # backends print on the C++ side (e.g. LiteRT's delegate line)
        try:
            outputs = run_samples(runner, golden)
            acc = metric(runner, evaluation, manifest) if evaluation and manifest.evaluation else None
            latency = host_latency_ms(runner, first_feed(golden))
        finally:
            runner.close()
    return outputs, acc, latency
