"""The one timing loop: ``bench``, ``tune`` and the packager's host latency all time calls here,
so a first call, a warm-up and the timed runs mean the same thing in every report."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_RUNS = 1_000_000  # a bound on memory whatever the settings


@dataclass(frozen=True)
class Timing:
    """What ``time_calls`` measured; times in seconds, one per timed call."""

    times: np.ndarray
    first_s: float | None  # the first call, timed apart (it may check feeds, warm caches)
    warmup: int  # untimed calls made
    stable: bool  # the median settled (``stable_within``); False when not asked or not reached
    seconds: float  # wall time of the whole measurement

    @property
    def ms(self) -> np.ndarray:
        return self.times * 1e3

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.ms, q))

    @property
    def p50_ms(self) -> float:
        return float(np.median(self.ms))


def time_calls(call: Callable[[], object], *, runs: int, warmup: int = 0,
               first: Callable[[], object] | None = None, max_seconds: float | None = None,
               stable_within: float | None = None) -> Timing:
    """Time ``call()`` (pass a ``functools.partial``: no Python frame of ours is timed).

    ``first`` is called once and timed apart, then ``warmup`` untimed calls, then the timed ones:
    exactly ``runs``, or with ``stable_within`` (a fraction) at least ``max(runs, 2)`` and more
    until the median of the last half is within that fraction of the whole run's median
    (checked every 5 runs). ``max_seconds`` bounds the whole measurement, warm-up included; at
    least one call is always timed.
    """
    if runs < 1 or warmup < 0 or (max_seconds is not None and max_seconds <= 0):
        raise ValueError("runs must be >= 1, warmup >= 0 and max_seconds > 0")
    clock = time.perf_counter
    start = clock()
    deadline = float("inf") if max_seconds is None else start + max_seconds
    first_s = None
    if first is not None:
        t = clock()
        first()
        first_s = clock() - t
    done = 0
    while done < warmup and clock() < deadline:
        call()
        done += 1
    times: list[float] = []
    stable = False
    if max_seconds is None and stable_within is None:
        for _ in range(runs):
            t = clock()
            call()
            times.append(clock() - t)
    else:
        least = max(runs, 2) if stable_within is not None else runs
        while len(times) < MAX_RUNS:
            t = clock()
            call()
            now = clock()
            times.append(now - t)
            n = len(times)
            if stable_within is None:
                if n >= runs:
                    break
            elif n >= least and (n == least or n % 5 == 0):
                whole = float(np.median(times))
                if abs(float(np.median(times[n // 2:])) - whole) <= stable_within * whole:
                    stable = True
                    break
            if now >= deadline:
                break
    return Timing(np.asarray(times, dtype=np.float64), first_s, done, stable, clock() - start)
