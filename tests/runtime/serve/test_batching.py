"""Dynamic batching on a real model (the tiny ONNX bundle through runtime.load): concurrent
requests really run as batches, each gets exactly its rows, identical to running it alone; a batch
never exceeds max_batch samples; requests whose shapes cannot stack run apart."""
from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import pytest

from runtime import load
from runtime.serve.batching import Batcher, why_not_batched
from runtime.signature import TensorSpec

from ..conftest import build_bundle


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with load(build_bundle(tmp_path_factory.mktemp("batching"))) as m:
        yield m


class RequestsFailed(Exception):
    """Some of the concurrent requests raised: each one's error."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(f"{len(errors)} request(s) failed")
        self.errors = errors


def concurrently(batcher: Batcher, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Each request submitted from its own thread at once; their results, or the first error raised."""
    results: list[dict[str, np.ndarray] | None] = [None] * len(requests)
    errors: list[BaseException | None] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = batcher.submit(requests[i])
        except Exception as exc:  # handed to the test: each request's own outcome
            errors[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    raised = [e for e in errors if e is not None]
    if raised:
        raise RequestsFailed(raised)
    return [r for r in results if r is not None]


def test_concurrent_requests_run_as_batches_and_get_their_own_rows(model) -> None:  # type: ignore[no-untyped-def]
    runs: list[int] = []

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        runs.append(len(feeds["x"]))
        return model.run(feeds)

    batcher = Batcher(run, max_batch=8, max_delay=0.5)
    rng = np.random.default_rng(0)
    requests = [{"x": rng.standard_normal((1 + i % 3, 4)).astype(np.float32)} for i in range(12)]
    got = concurrently(batcher, requests)
    batcher.close()
    assert max(runs) > 1 and len(runs) < len(requests)  # batching really happened
    assert all(n <= 8 for n in runs) and sum(runs) == sum(len(r["x"]) for r in requests)
    for request, result in zip(requests, got, strict=True):
        alone = model.run(request)
        for name in ("y", "label"):
            np.testing.assert_array_equal(result[name], alone[name])  # identical to unbatched


def test_requests_that_cannot_stack_run_apart(model) -> None:  # type: ignore[no-untyped-def]
    shapes: list[tuple[int, ...]] = []

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        shapes.append(feeds["x"].shape)
        if feeds["x"].shape[1] != 4:
            return {"y": feeds["x"][:, :3] * 0, "label": np.zeros(len(feeds["x"]), np.int64)}
        return model.run(feeds)

    batcher = Batcher(run, max_batch=16, max_delay=0.3)
    requests = [{"x": np.ones((1, 4), np.float32)}, {"x": np.ones((1, 5), np.float32)},
                {"x": np.ones((2, 4), np.float32)}, {"x": np.ones((1, 5), np.float32)}]
    got = concurrently(batcher, requests)
    batcher.close()
    assert sorted(shapes) == [(2, 5), (3, 4)]  # the 4-wide together, the 5-wide together
    assert [len(r["label"]) for r in got] == [1, 1, 2, 1]


def test_a_failing_batch_fails_each_of_its_requests(model) -> None:  # type: ignore[no-untyped-def]
    from runtime.errors import FeedError
    batcher = Batcher(model.run, max_batch=8, max_delay=0.3)
    with pytest.raises(RequestsFailed) as info:
        concurrently(batcher, [{"x": np.ones((1, 4), np.int64)}, {"x": np.ones((1, 4), np.int64)}])
    assert len(info.value.errors) == 2  # each request got the error
    assert all(isinstance(e, FeedError) and "dtype int64 does not match float32" in str(e)
               for e in info.value.errors)
    ok = batcher.submit({"x": np.ones((1, 4), np.float32)})  # and the batcher goes on
    batcher.close()
    np.testing.assert_array_equal(ok["y"], model.run({"x": np.ones((1, 4), np.float32)})["y"])


def test_only_a_signature_with_batch_axes_is_batched() -> None:
    x, y = TensorSpec("x", "float32", ("batch", 4)), TensorSpec("y", "float32", ("batch", 3))
    assert why_not_batched([x], [y]) is None
    fixed = TensorSpec("z", "float32", (1, 3))
    assert why_not_batched([x], [y, fixed]) == "z has no symbolic batch axis"



@pytest.mark.parametrize("threads", [1, 2])
def test_batch_threads_run_that_many_batches_at_once(model, threads: int) -> None:  # type: ignore[no-untyped-def]
    """Each run waits (up to 2 s) for a second run to be in flight at the same time: with two batch
    threads every run finds its partner; with one, none does, as runs then go one at a time."""
    both = threading.Barrier(2, timeout=2)
    met: list[bool] = []

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            both.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)
            both.reset()
        return model.run(feeds)

    batcher = Batcher(run, max_batch=2, max_delay=1.0, threads=threads)
    requests = [{"x": np.full((1, 4), i, np.float32)} for i in range(4)]
    got = concurrently(batcher, requests)
    batcher.close()
    assert met == ([True] * len(met) if threads == 2 else [False] * len(met)) and len(met) >= 2
    for request, result in zip(requests, got, strict=True):
        np.testing.assert_array_equal(result["y"], model.run(request)["y"])
