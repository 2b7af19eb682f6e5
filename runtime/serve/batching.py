"""Dynamic batching: requests that arrive together run as one batch (TF Serving's and Triton's
idea), so a CPU does one larger inference instead of many small ones.

A request waits at most ``max_delay`` seconds after the first request of its batch arrived, and
a batch holds at most ``max_batch`` samples (the sum of the requests' leading axes). ``threads``
batches run at once (TF Serving's ``num_batch_threads``): with one, the model sits idle while a
finished batch's answers go out and the next batch gathers; two keep it busy. Requests are
batched with others whose inputs agree on every axis but the first and on dtype (a text model's
sequence lengths differ: those run apart). Each request gets back exactly its rows of the outputs.
Only for a signature whose every input and output has a symbolic leading axis; otherwise
``Batcher`` is not used (the server says why in its metadata).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..signature import TensorSpec

Run = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


def why_not_batched(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> str | None:
    """None when requests can be stacked along the leading axis, else why not."""
    fixed = [s.name for s in [*inputs, *outputs] if not s.shape or not isinstance(s.shape[0], str)]
    if fixed:
        return f"{', '.join(fixed)} ha{'s' if len(fixed) == 1 else 've'} no symbolic batch axis"
    return None


@dataclass(eq=False)  # compared by identity: its feeds are arrays
class _Pending:
    feeds: dict[str, np.ndarray]
    rows: int
    key: tuple[object, ...]
    arrived: float = field(default_factory=time.monotonic)
    future: Future[dict[str, np.ndarray]] = field(default_factory=Future)


class Batcher:
    """Collects requests into batches and runs them on ``threads`` worker threads."""

    def __init__(self, run: Run, *, max_batch: int, max_delay: float, threads: int = 2,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        self.run, self.max_batch, self.max_delay, self.on_batch = run, max_batch, max_delay, on_batch
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self._workers = [threading.Thread(target=self._loop, name=f"batcher-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for worker in self._workers:
            worker.start()

    def submit(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``feeds`` (one request) in the next batch that takes it; its outputs."""
        rows = {int(v.shape[0]) if v.ndim else 1 for v in feeds.values()}
        if len(rows) != 1 or not all(v.ndim for v in feeds.values()):
            return self.run(feeds)  # inputs that disagree on the batch: the model's own check says why
        key = tuple(sorted((n, v.dtype.str, v.shape[1:]) for n, v in feeds.items()))
        item = _Pending(feeds, rows.pop(), key)
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()  # an idle worker, or one waiting for its batch to fill
        return item.future.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _take(self) -> list[_Pending] | None:
        """The next batch: the oldest request and those that fit with it, once full or due."""
        with self._cond:
            while True:
                if not self._queue:  # (another worker may have taken what this one waited on)
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                first = self._queue[0]
                group = [p for p in self._queue if p.key == first.key]
                if sum(p.rows for p in group) >= self.max_batch or self._closed:
                    break
                left = first.arrived + self.max_delay - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[_Pending] = []
            rows = 0
            for p in group:
                if batch and rows + p.rows > self.max_batch:
                    break
                batch.append(p)
                rows += p.rows
            taken = {id(p) for p in batch}
            self._queue = [p for p in self._queue if id(p) not in taken]
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            try:
                if len(batch) == 1:
                    batch[0].future.set_result(self.run(batch[0].feeds))
                else:
                    names = list(batch[0].feeds)
                    feeds = {n: np.concatenate([p.feeds[n] for p in batch]) for n in names}
                    out = self.run(feeds)
                    start = 0
                    for p in batch:
                        p.future.set_result({k: v[start:start + p.rows] for k, v in out.items()})
                        start += p.rows
                if self.on_batch is not None:
                    self.on_batch(len(batch), sum(p.rows for p in batch))
            except BaseException as exc:  # every waiting request gets the error (a 400 or a 500 each)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
