"""``python -m runtime bench``'s numbers: latency percentiles and throughput of a loaded model
(timed by ``tuning.timing``), and the device they were measured on."""
from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from .timing import time_calls

if TYPE_CHECKING:
    from ..model import Model


@dataclass
class BenchResult:
    """Timings in milliseconds; throughput per second."""

    first_ms: float
    warmup: int
    runs: int
    batch: int
    mean_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    inferences_per_s: float
    samples_per_s: float
    load_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_size(model: Model, feeds: Mapping[str, np.ndarray]) -> int:
    """Samples per inference: the size of the first input's leading dim when it is symbolic."""
    spec = model.inputs[0]
    arr = feeds[spec.name]
    if spec.shape and isinstance(spec.shape[0], str) and arr.ndim:
        return int(arr.shape[0])
    return 1


def benchmark(model: Model, feeds: Mapping[str, np.ndarray], *, warmup: int = 10,
              runs: int = 100) -> BenchResult:
    """First inference, then ``warmup`` untimed runs and ``runs`` timed ones (feeds checked once)."""
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    timing = time_calls(partial(model.run, feeds, validate=False), runs=runs, warmup=warmup,
                        first=partial(model.run, feeds))
    times, ms = timing.times, timing.ms
    assert timing.first_s is not None
    first = timing.first_s
    total = float(times.sum())
    batch = batch_size(model, feeds)
    ips = runs / total if total > 0 else float("inf")
    return BenchResult(first_ms=first * 1e3, warmup=warmup, runs=runs, batch=batch,
                       mean_ms=float(ms.mean()), min_ms=float(ms.min()), max_ms=float(ms.max()),
                       p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
                       p99_ms=float(np.percentile(ms, 99)), inferences_per_s=ips,
                       samples_per_s=ips * batch)


def device_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "python": platform.python_version(),
            "cpus": os.cpu_count(), "numpy": np.__version__}
