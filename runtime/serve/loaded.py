"""A bundle made ready to serve: opened, its files (and signature) checked, a candidate loaded,
golden parity and the end-to-end check passed on this device, its batcher started.

The serve command's first bundle and every update go through ``load_verified``; the server swaps
one ``Loaded`` for another in a single assignment, so each request runs wholly on one version.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle
from .batching import Batcher, why_not_batched
from .metrics import Metrics


class NotVerified(Exception):
    """The bundle opened and loaded, but failed its checks on this device (the reason says which)."""


@dataclass
class Loaded:
    """One verified version of the served bundle."""

    bundle: Bundle
    model: Any  # runtime.model.Model
    processor: Any  # runtime.prepost.Processor
    verified: dict[str, Any]
    version: int
    batcher: Batcher | None = None
    batching: dict[str, Any] = field(default_factory=lambda: {"enabled": False, "why": "--max-batch is 1"})

    raw_inputs: dict[str, str] = field(init=False)  # names that take raw data (BYTES): "image" or "text"

    def __post_init__(self) -> None:
        self.raw_inputs = dict(self.processor.raw_inputs)  # once, not on every request

    def infer(self, feeds: dict[str, np.ndarray], metrics: Metrics) -> dict[str, np.ndarray]:
        """One request's outputs: through the batcher when batching, else a run of its own."""
        if self.batcher is not None:
            return self.batcher.submit(feeds)
        out: dict[str, np.ndarray] = self.model.run(feeds)
        metrics.batch(1, max((int(v.shape[0]) for v in feeds.values() if getattr(v, "ndim", 0)), default=1))
        return out

    def close(self) -> None:
        """Stop the batcher (queued requests still run) and release the backend."""
        if self.batcher is not None:
            self.batcher.close()
        self.model.close()


def load_verified(bundle: Bundle | str | Path, *, key: str | None, prefer: str | None, max_batch: int,
                  max_delay: float, metrics: Metrics, version: int, batch_threads: int = 2) -> Loaded:
    """Open (a path), check hashes and signature, load, verify golden parity and end to end here.
    Raises the runtime's own errors for a bundle that cannot be opened or loaded, ``NotVerified``
    for one that loads but fails its checks."""
    from ..bundle import open_bundle
    from ..end_to_end import check_end_to_end, why_not_checked
    from ..golden import load_golden
    from ..model import load
    from ..prepost import Processor

    if not isinstance(bundle, Bundle):
        bundle = open_bundle(bundle, public_key=key)
        bundle.verify()
    model = load(bundle, prefer=prefer, verify_hashes=False)
    try:
        t0 = time.perf_counter()
        golden = load_golden(bundle)
        report = model.verify(golden)
        e2e = check_end_to_end(model, golden) if report.passed else None
        verified = {"candidate": model.candidate_spec.id, "providers": list(model.providers),
                    "golden_parity": "passed" if report.passed else "failed",
                    "end_to_end": why_not_checked(model) if e2e is None else ("passed" if e2e.passed else "failed"),
                    "seconds": round(time.perf_counter() - t0, 3), "signature_checked": key is not None}
        if not report.passed:
            failed = [f"{o.name}: {', '.join(o.failures)}" for o in report.outputs if not o.passed]
            raise NotVerified(f"golden parity failed on this device ({'; '.join(failed)})")
        if e2e is not None and not e2e.passed:
            raise NotVerified(f"the end-to-end golden check failed on this device ({e2e.why()})")
        loaded = Loaded(bundle, model, Processor(bundle), verified, version)
    except BaseException:
        model.close()
        raise
    if max_batch > 1:
        why = why_not_batched(model.inputs, model.outputs)
        if why is None:
            loaded.batcher = Batcher(model.run, max_batch=max_batch, max_delay=max_delay, threads=batch_threads,
                                     on_batch=metrics.batch)
            loaded.batching = {"enabled": True, "max_batch": max_batch, "max_delay_ms": round(max_delay * 1000, 3),
                               "batch_threads": batch_threads}
        else:
            loaded.batching = {"enabled": False, "why": why}
    return loaded
