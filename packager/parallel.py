"""Independent precision passes for different targets, run side by side in worker processes.

Only ONNX passes (fp16, int8 dynamic, int8 static) go to workers: they need nothing but the base
model's bytes and the calibration arrays, so a fresh ``spawn`` worker imports onnx/onnxruntime
and never torch or TensorFlow (forking a process that has them loaded is not safe). Workers are
bounded by cores and by memory; host checks and timings stay in the main process, one at a time,
so latencies are not measured under contention.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
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


def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo), or None when unknown."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def worker_count(jobs: int, requested: int | None, model_bytes: int) -> int:
    """How many workers: the request (or the cores), never more than the jobs, and only as many
    as fit in memory (a worker holds a few copies of the model plus onnxruntime: ~400 MB + 6x)."""
    want = requested if requested and requested > 0 else (os.cpu_count() or 1)
    n = min(want, jobs)
    free = available_memory()
    if free is not None:
        n = min(n, max(1, int(free // (400 * 1024**2 + 6 * model_bytes))))
    return max(1, n)


def run_passes(base: bytes, jobs: list[PassJob], workers: int) -> dict[str, Any]:
    """key -> (bytes, name, details, notes) or the exception the pass raised."""
    out: dict[str, Any] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {job.key: pool.submit(run_pass, base, job) for job in jobs}
        for key, future in futures.items():
            try:
                out[key] = future.result()
            except Exception as exc:  # reported per candidate by the caller, like a serial failure
                out[key] = exc
    return out
