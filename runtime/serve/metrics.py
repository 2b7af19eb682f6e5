"""``/metrics`` in the Prometheus text format (0.0.4), without a client library: request counts
by endpoint and status, an infer latency histogram, batch sizes, and what is being served (the
candidate, its providers, the verification state) as an info gauge."""
from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter
from collections.abc import Mapping, Sequence

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # samples


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # per bucket (the last: above every edge); cumulated when shown
        self.total, self.n = 0.0, 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        cumulative = list(itertools.accumulate(self.counts))
        out = [f'{name}_bucket{{le="{edge:g}"}} {count}' for edge, count in zip(self.buckets, cumulative, strict=False)]
        return out + [f'{name}_bucket{{le="+Inf"}} {self.n}', f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The server's counters, safe to update from every request thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_samples = _Histogram(BATCH_BUCKETS)
        self.batch_requests = _Histogram(BATCH_BUCKETS)

    def request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def latency_of(self, seconds: float) -> None:
        with self._lock:
            self.latency.observe(seconds)

    def batch(self, requests: int, samples: int) -> None:
        with self._lock:
            self.batch_requests.observe(requests)
            self.batch_samples.observe(samples)

    def text(self, model: str, info: Mapping[str, str], ready: bool) -> str:
        """The exposition text."""
        with self._lock:
            lines = ["# HELP edgepack_requests_total Requests by endpoint and HTTP status.",
                     "# TYPE edgepack_requests_total counter"]
            lines += [f'edgepack_requests_total{{endpoint="{e}",code="{c}"}} {n}'
                      for (e, c), n in sorted(self.requests.items())]
            lines += ["# HELP edgepack_infer_seconds Infer requests answered 200, from body read to answer.",
                      "# TYPE edgepack_infer_seconds histogram", *self.latency.lines("edgepack_infer_seconds"),
                      "# HELP edgepack_batch_samples Samples per model run (dynamic batching).",
                      "# TYPE edgepack_batch_samples histogram", *self.batch_samples.lines("edgepack_batch_samples"),
                      "# HELP edgepack_batch_requests Requests per model run (dynamic batching).",
                      "# TYPE edgepack_batch_requests histogram", *self.batch_requests.lines("edgepack_batch_requests")]
        labels = ",".join(f'{k}="{_label(v)}"' for k, v in {"model": model, **info}.items())
        lines += ["# HELP edgepack_model_info What is served: candidate, providers, verification state.",
                  "# TYPE edgepack_model_info gauge", f"edgepack_model_info{{{labels}}} 1",
                  "# HELP edgepack_model_ready 1 once the bundle verified on this device.",
                  "# TYPE edgepack_model_ready gauge", f'edgepack_model_ready{{model="{_label(model)}"}} {int(ready)}']
        return "\n".join(lines) + "\n"
