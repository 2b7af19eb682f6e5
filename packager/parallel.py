"""Independent precision passes for different targets, run side by side in worker processes.

ONNX passes (fp16, int8 dynamic, int8 static) need nothing but the base model's bytes and the
calibration arrays, so their ``spawn`` worker imports onnx/onnxruntime and never torch or
TensorFlow (forking a process that has them loaded is not safe). TFLite and TorchScript
conversions load the source model again in their worker, which pays only for big models. Workers are
bounded by cores and by memory; host checks and timings stay in the main process, one at a time,
so latencies are not measured under contention.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .targets import Quantization


@dataclass(frozen=True)
class PassJob:
    """One precision pass on the base ONNX model."""

    key: str
    precision: str
    quantization: Quantization | None
    batches: list[dict[str, np.ndarray]] | None
    random_data: bool


def run_pass(base: bytes, job: PassJob) -> tuple[bytes, str, dict[str, Any], list[str]]:
    """The worker's function: the pass's model bytes and its record (name, details, notes)."""
    import onnx

    from .onnx_utils import serialize
    from .passes import quantize
    model = onnx.load_from_string(base)
    if job.precision == "fp16":
        result = quantize.to_fp16(model)
    elif job.quantization is not None and job.quantization.mode == "dynamic":
        result = quantize.int8_dynamic(model)
    else:
        assert job.quantization is not None and job.batches is not None
        result = quantize.int8_static(model, job.quantization, job.batches, random_data=job.random_data)
    return serialize(result.model), result.name, result.details, result.notes


@dataclass(frozen=True)
class ConvertJob:
    """One TFLite/TorchScript conversion: the worker loads the source model itself and gets the
    data from the parent (its arrays pickle cheaply; calling the data entry points again would
    not be)."""

    manifest: Any
    target: Any
    spec: Any
    calibration: Any
    golden: Any
    source_key: str


def run_convert(job: ConvertJob) -> Any:
    """The worker's function for a conversion: the same ``Builder._convert`` a serial build runs,
    on the same model (its cache key is checked) and data, so the same bytes come out."""
    from pathlib import Path

    from .errors import ConversionError
    from .pipeline import Builder
    from .quiet import quiet
    from .sources import load_source
    builder = Builder(job.manifest, [job.target], Path("."))
    builder._source = load_source(job.manifest)
    if builder._source.cache_key != job.source_key:
        raise ConversionError("the model loaded in the worker process differs from the build's "
                              "(its entry point is not deterministic)", where=f"candidate {job.spec.id}",
                              hint="make the model entry point return the same weights every call "
                                   "(seed it), or build with -j 1")
    builder._calibration, builder.golden, builder._evaluation = job.calibration, job.golden, None
    builder._inputs_loaded = True
    with quiet():
        return builder._convert(job.spec, job.target)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo), or None when unknown."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def worker_count(jobs: int, requested: int | None, model_bytes: int, *,
                 per_worker: int = 400 * 1024**2) -> int:
    """How many workers: the request (or the cores), never more than the jobs, and only as many
    as fit in memory (a worker holds a few copies of the model plus its libraries: onnxruntime
    ~400 MB, torch or TensorFlow ~900 MB, + 6x the model)."""
    want = requested if requested and requested > 0 else (os.cpu_count() or 1)
    n = min(want, jobs)
    free = available_memory()
    if free is not None:
        n = min(n, max(1, int(free // (per_worker + 6 * model_bytes))))
    return max(1, n)
