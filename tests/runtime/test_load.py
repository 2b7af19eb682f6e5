"""Under load: many threads on one Model per backend, a memory soak (10,000 runs per backend),
and a device with too little memory for a candidate (the next one is tried, and the table says
why). Every backend is covered: onnxruntime, tflite (ai_edge_litert) and torchscript (torch); a
missing framework fails the test under CI (CI=true) and skips it elsewhere."""
from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.backends import Backend, register_backend, unregister_backend
from runtime.bundle import BUNDLE_FILE
from runtime.errors import NoCandidateError
from runtime.model import Model, load
from runtime.select import MEMORY_NOTE, SELECTED, SKIPPED

REPO = Path(__file__).resolve().parents[2]
THREADS, CALLS = 8, 200
BACKENDS = ["onnxruntime", "tflite", "torchscript"]
SOAK_RUNS = 10_000


def _require(*modules: str) -> None:
    """Frameworks a backend needs: fail under CI (CI=true) when missing, skip elsewhere."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{', '.join(missing)} not installed and CI=true: every backend is tested")
    pytest.skip(f"{', '.join(missing)} not installed")


def _inputs(n: int = 16) -> list[np.ndarray]:
    """Distinct feeds with varying batch sizes, so a mixed-up result or a resize race shows."""
    rng = np.random.default_rng(11)
    return [rng.standard_normal((1 + i % 4, 4)).astype(np.float32) for i in range(n)]


def _backend_bundle(kind: str, factory: Callable[..., Path], kit: types.ModuleType) -> Path:
    if kind == "onnxruntime":
        return factory()
    if kind == "tflite":
        _require("ai_edge_litert", "tensorflow")
        return factory(artifacts={"models/tiny.fp32.tflite": kit.make_tflite("fp32")},
                       onnx_model=False, candidates=[kit.candidate(
                           "tfl", "models/tiny.fp32.tflite", backend="tflite",
                           io_map=kit.TFLITE_IO_MAP["fp32"])])
    assert kind == "torchscript", kind
    _require("torch")
    return factory(artifacts={"models/tiny.fp32.pt": kit.make_torchscript("fp32")},
                   onnx_model=False, candidates=[kit.candidate(
                       "ts", "models/tiny.fp32.pt", backend="torchscript")])


def _hammer(model: Model, feeds: list[np.ndarray],
            expected: list[dict[str, np.ndarray]]) -> tuple[list[str], list[int]]:
    """THREADS x CALLS runs started together; every result compared exactly. Returns the
    problems and, per thread, how many calls it completed and checked."""
    problems: list[str] = []
    checked = [0] * THREADS
    barrier = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(CALLS):
                k = (t * 7 + i) % len(feeds)
                out = model.run({"x": feeds[k]})
                if set(out) != set(expected[k]):
                    problems.append(f"thread {t} call {i}: outputs {sorted(out)}")
                    return
                for name, want in expected[k].items():
                    got = out[name]
                    if got.shape != want.shape or got.dtype != want.dtype \
                            or not np.array_equal(got, want):
                        problems.append(f"thread {t} call {i} input {k}: {name} differs")
                        return
                checked[t] += 1
        except Exception as exc:  # recorded, so the main thread fails the test with it
            problems.append(f"thread {t}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)  # a hang guard only (a deadlock), far beyond any slow machine
    problems += [f"{th.name} still running" for th in threads if th.is_alive()]
    return problems, checked


@pytest.mark.parametrize("kind", BACKENDS)
def test_run_from_many_threads_matches_single_threaded(kind: str,
                                                      bundle_factory: Callable[..., Path],
                                                      kit: types.ModuleType) -> None:
    root = _backend_bundle(kind, bundle_factory, kit)
    feeds = _inputs()
    with load(root) as model:
        assert model.candidate["backend"] == kind
        expected = [model.run({"x": x}) for x in feeds]  # the single-threaded answers
        for x, want in zip(feeds, expected, strict=True):  # and they are the model's answers
            assert set(want) == {"y", "label"}
            np.testing.assert_allclose(want["y"], kit.reference(x)["y"], atol=1e-5)
            np.testing.assert_array_equal(want["label"], kit.reference(x)["label"])
        # distinct answers, so a result handed to the wrong thread cannot match by chance
        assert len({w["y"].tobytes() for w in expected}) == len(feeds)
        problems, checked = _hammer(model, feeds, expected)
    assert not problems, problems[:5]
    assert checked == [CALLS] * THREADS  # every thread made and checked all its calls


# --------------------------------------------------------------------------- soak

def _rss_kib() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)\s+kB", text).group(1))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("kind", BACKENDS)
def test_soak_memory_stops_growing(kind: str, bundle_factory: Callable[..., Path],
                                   kit: types.ModuleType) -> None:
    """10,000 runs: after warm-up (20% of the runs) resident memory grows by less than 4 MiB
    to the end, and the last answer is still right."""
    runs = SOAK_RUNS
    root = _backend_bundle(kind, bundle_factory, kit)
    feeds = _inputs(8)
    done = 0
    with load(root) as model:
        assert model.candidate["backend"] == kind
        warm = runs // 5
        for i in range(warm):
            model.run({"x": feeds[i % len(feeds)]})
            done += 1
        gc.collect()
        after_warmup = _rss_kib()
        for i in range(warm, runs):
            out = model.run({"x": feeds[i % len(feeds)]})
            done += 1
        gc.collect()
        at_end = _rss_kib()
    assert done == runs
    last = feeds[(runs - 1) % len(feeds)]
    np.testing.assert_allclose(out["y"], kit.reference(last)["y"], atol=1e-5)
    growth = at_end - after_warmup
    assert growth < 4 * 1024, f"RSS grew {growth} KiB over {runs - warm} runs after warm-up"


# --------------------------------------------------------------------------- low memory

class OutOfMemoryBackend(Backend):
    """Opens like a backend on a device whose allocator gives up."""

    name = "oom"
    closed = 0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "test"

    def open_impl(self, path: Any, **kwargs: Any) -> None:
        raise MemoryError()

    def run_impl(self, feeds: Any, *, raw: bool = False) -> dict[str, np.ndarray]:
        raise AssertionError("never opened")

    def close_impl(self) -> None:
        type(self).closed += 1


@pytest.fixture
def oom_backend() -> Iterator[type[OutOfMemoryBackend]]:
    OutOfMemoryBackend.closed = 0
    register_backend("oom", OutOfMemoryBackend)
    try:
        yield OutOfMemoryBackend
    finally:
        unregister_backend("oom")


def test_memory_error_in_open_skips_to_next_candidate(bundle_factory: Callable[..., Path],
                                                      kit: types.ModuleType,
                                                      oom_backend: type) -> None:
    root = bundle_factory(candidates=[kit.candidate("big", backend="oom"),
                                      kit.candidate("small")])
    with load(root) as model:
        assert model.candidate["id"] == "small"
        big = model.explain()[0]
        assert big["status"] == SKIPPED
        assert big["reason"].startswith("session creation failed: MemoryError")
        assert MEMORY_NOTE in big["reason"]
    assert oom_backend.closed == 1  # what the failed open left is released


def test_memory_error_everywhere_is_a_clear_no_candidate_error(
        bundle_factory: Callable[..., Path], kit: types.ModuleType, oom_backend: type) -> None:
    root = bundle_factory(candidates=[kit.candidate("big", backend="oom")])
    with pytest.raises(NoCandidateError, match="MemoryError") as info:
        load(root)
    assert "free memory" in info.value.hint


def _big_onnx(path: Path, kit: types.ModuleType, mbytes: int = 200) -> None:
    """The tiny model plus a ``mbytes`` MB initializer that the graph really uses (so it cannot
    be dropped): y = relu(x @ W + b + 0 * max(big))."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    big = np.zeros(mbytes * 250_000, np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["z0"]),
         helper.make_node("ReduceMax", ["big"], ["m"], keepdims=1),
         helper.make_node("Mul", ["m", "zero"], ["m0"]),
         helper.make_node("Add", ["z0", "m0"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"]),
         helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0)],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        initializer=[numpy_helper.from_array(kit.W, "W"), numpy_helper.from_array(kit.B, "b"),
                     numpy_helper.from_array(big, "big"),
                     numpy_helper.from_array(np.zeros(1, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


LOW_MEMORY_SCRIPT = textwrap.dedent("""
    import json, re, resource, sys
    import numpy as np
    import onnxruntime  # imported before the limit, as a device's runtime would have it
    import runtime
    from runtime.errors import NoCandidateError

    def vm_bytes():
        text = open("/proc/self/status").read()
        return int(re.search(r"VmSize:\\s+(\\d+)", text).group(1)) * 1024

    # room for a small session, not for the 200 MB initializer
    limit = vm_bytes() + 150 * 1000 * 1000
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {}
    with runtime.load(sys.argv[1]) as model:
        out["selected"] = model.candidate["id"]
        out["table"] = model.explain()
        out["y"] = model.run({"x": np.ones((2, 4), np.float32)})["y"].tolist()
    try:
        runtime.load(sys.argv[1], prefer="big", strict=True)
    except NoCandidateError as exc:
        out["alone"] = exc.to_dict()
    print(json.dumps(out))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")
def test_low_memory_device_falls_back_to_the_small_candidate(
        bundle_factory: Callable[..., Path], kit: types.ModuleType, tmp_path: Path) -> None:
    root = bundle_factory(candidates=[kit.candidate("big", "models/big.fp32.onnx"),
                                      kit.candidate("small")])
    _big_onnx(root / "models" / "big.fp32.onnx", kit)
    kit.write_bundle_json(root, json.loads((root / BUNDLE_FILE).read_text()))
    script = tmp_path / "low_memory.py"
    script.write_text(LOW_MEMORY_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(root)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["selected"] == "small"
    big, small = doc["table"]
    assert big["candidate"] == "big" and big["status"] == SKIPPED
    assert re.search(r"MemoryError|bad.alloc|allocat", big["reason"]), big["reason"]
    assert MEMORY_NOTE in big["reason"]
    assert small["status"] == SELECTED
    np.testing.assert_allclose(doc["y"], kit.reference(np.ones((2, 4), np.float32))["y"],
                               atol=1e-5)
    alone = doc["alone"]
    assert alone["error"] == "no-candidate" and "free memory" in alone["hint"]
