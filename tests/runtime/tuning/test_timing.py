"""`runtime.tuning.timing`: the one timing loop behind bench, tune and the host latency."""
from __future__ import annotations

import time
from functools import partial

import numpy as np
import pytest

from runtime.tuning.timing import time_calls


def test_exact_runs_after_a_first_call_and_warmup() -> None:
    calls: list[str] = []
    t = time_calls(partial(calls.append, "timed"), runs=7, warmup=3, first=partial(calls.append, "first"))
    assert calls == ["first"] + ["timed"] * 10
    assert len(t.times) == 7 and t.warmup == 3 and t.first_s is not None and t.stable is False
    assert np.all(t.times >= 0) and t.p50_ms == pytest.approx(float(np.median(t.times)) * 1e3)


def test_stops_once_the_median_settles() -> None:
    t = time_calls(partial(time.sleep, 0.002), runs=4, stable_within=0.5)
    assert t.stable and len(t.times) in (4, 5, 10)  # a 2 ms sleep is stable within 50 %
    assert 1.5 < t.p50_ms < 50


def test_the_deadline_bounds_everything_and_one_call_is_always_timed() -> None:
    start = time.perf_counter()
    t = time_calls(partial(time.sleep, 0.02), runs=1000, warmup=1000, max_seconds=0.1)
    assert time.perf_counter() - start < 1.0
    assert 1 <= len(t.times) < 10 and t.warmup < 10
    with pytest.raises(ValueError, match="runs must be >= 1"):
        time_calls(int, runs=0)
