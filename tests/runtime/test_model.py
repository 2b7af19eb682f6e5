"""Model: load, run (ordering, validation, threads), golden runs, import hygiene."""
from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.errors import BackendError, FeedError
from runtime.golden import check_parity, load_golden, run_golden
from runtime.tuning.bench import benchmark

REPO = Path(__file__).resolve().parents[2]


def test_run_matches_reference_in_signature_order(bundle_dir: Path,
                                                  kit: types.ModuleType) -> None:
    x = np.random.default_rng(5).standard_normal((6, 4)).astype(np.float32)
    with runtime.load(bundle_dir) as model:
        assert [s.name for s in model.inputs] == ["x"]
        out = model.run({"x": x})
        assert list(out) == ["y", "label"]
        ref = kit.reference(x)
        np.testing.assert_allclose(out["y"], ref["y"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out["label"], ref["label"])
        with pytest.raises(FeedError, match="float64 does not match float32"):
            model.run({"x": x.astype(np.float64)})
    with pytest.raises(BackendError, match="model is closed"):
        model.run({"x": x})


def test_run_from_many_threads(bundle_dir: Path, kit: types.ModuleType) -> None:
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((i % 5 + 1, 4)).astype(np.float32) for i in range(64)]
    with runtime.load(bundle_dir) as model, ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda x: model.run({"x": x}), xs))
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out["y"], kit.reference(x)["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batched", [True, False])
def test_golden_parity(bundle_factory: Callable[..., Path], batched: bool) -> None:
    root = bundle_factory(batched=batched, samples=5)
    with runtime.load(root) as model:
        g_in, g_out, is_batched = load_golden(model.bundle)
        assert is_batched is batched
        got = run_golden(model, g_in, batched)
        assert got["y"].shape == ((5, 3) if batched else (5, 1, 3))
        report = check_parity(model, g_in, g_out, batched)
    assert report.passed, report.format_table()


def test_golden_parity_fails_on_perturbed_reference(bundle_factory: Callable[..., Path]) -> None:
    root = bundle_factory(perturb=0.01)
    with runtime.load(root) as model:
        g_in, g_out, batched = load_golden(model.bundle)
        report = check_parity(model, g_in, g_out, batched)
    assert not report.passed
    assert [o.name for o in report.outputs if not o.passed] == ["y"]


def test_benchmark_numbers(bundle_dir: Path) -> None:
    with runtime.load(bundle_dir) as model:
        result = benchmark(model, {"x": np.ones((4, 4), np.float32)}, warmup=2, runs=20)
    assert result.runs == 20 and result.batch == 4
    assert 0 < result.min_ms <= result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert result.samples_per_s == pytest.approx(result.inferences_per_s * 4)


def test_public_api() -> None:
    assert runtime.__version__ == "0.1.0"
    for name in ("load", "Model", "compare", "Tolerance", "ParityReport", "RuntimeBundleError",
                 "IntegrityError", "ArchiveError", "FeedError", "NoCandidateError",
                 "BackendError", "BundleFormatError"):
        assert hasattr(runtime, name), name
    assert issubclass(runtime.FeedError, runtime.RuntimeBundleError)


def test_import_runtime_is_light() -> None:
    code = ("import sys, runtime, runtime.__main__; "
            "heavy = [m for m in ('onnxruntime', 'onnx', 'torch', 'yaml', 'packager') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runtime_sources_import_only_stdlib_and_numpy() -> None:
    import ast
    allowed_top = set(sys.stdlib_module_names) | {"numpy"}
    for path in (REPO / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: backends import lazily inside functions
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in allowed_top, f"{path}: imports {name}"


def test_validate_false_skips_the_feed_check(bundle_dir: Path, kit: types.ModuleType) -> None:
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    with runtime.load(bundle_dir) as model:
        checked, unchecked = model.run({"x": x}), model.run({"x": x}, validate=False)
        for name in ("y", "label"):
            np.testing.assert_array_equal(checked[name], unchecked[name])
        # unchecked, a bad feed reaches the backend: its own error, not a FeedError
        with pytest.raises(BackendError, match="inference failed"):
            model.run({"x": x.astype(np.float64)}, validate=False)
        with pytest.raises(FeedError):
            model.run({"x": x.astype(np.float64)})


def test_hot_path_matches_general_path(bundle_dir: Path) -> None:
    """The precomputed backend path (``ordered``) returns what the general path returns, in
    signature order, for dicts and other mappings alike."""
    from types import MappingProxyType
    x = np.random.default_rng(4).standard_normal((5, 4)).astype(np.float32)
    with runtime.load(bundle_dir) as model:
        assert model._ordered is not None  # onnxruntime offers the hot path
        fast = model.run(MappingProxyType({"x": x}))
        model._ordered = None  # force the general path
        slow = model.run({"x": x})
    assert list(fast) == list(slow) == ["y", "label"]
    for name in fast:
        np.testing.assert_array_equal(fast[name], slow[name])
        assert fast[name].dtype == slow[name].dtype


def test_backend_without_hot_path_still_runs(bundle_dir: Path, kit: types.ModuleType) -> None:
    """A backend without ``ordered`` (third-party, or a test fake) uses ``run``."""
    x = np.ones((2, 4), np.float32)
    with runtime.load(bundle_dir) as model:
        backend = model._backend
        model._ordered = None
        model._backend = types.SimpleNamespace(run=lambda feeds: backend.run(feeds),
                                               providers_in_use=[], close=backend.close)
        out = model.run({"x": x})
    np.testing.assert_allclose(out["y"], kit.reference(x)["y"], rtol=1e-5, atol=1e-6)


def test_unchecked_missing_input_is_a_backend_error(bundle_dir: Path) -> None:
    """The hot path goes straight to onnxruntime's C++ session: a missing input still comes
    back as the runtime's own error, never a crash or a silent retry."""
    with runtime.load(bundle_dir) as model:
        with pytest.raises(BackendError, match="inference failed"):
            model.run({}, validate=False)


def test_direct_run_falls_back_to_the_public_method() -> None:
    """An onnxruntime build without the private C++ session still runs, through ``run``;
    and the wrapper's silent provider fallback is switched off either way."""
    from runtime.backends.onnxruntime import _direct_run

    class Public:
        fallback = True

        def disable_fallback(self) -> None:
            self.fallback = False

        def run(self, names: list[str], feeds: dict, options: object) -> list[str]:
            return [f"public:{n}" for n in names]

    session = Public()
    assert _direct_run(session)(["y"], {}, None) == ["public:y"]
    assert session.fallback is False


def test_run_into_writes_the_callers_arrays(bundle_dir: Path) -> None:
    """run_into: the same numbers as run(), written into arrays allocated once (onnxruntime
    IOBinding), call after call; bad out arrays are refused with what to allocate."""
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    with runtime.load(bundle_dir) as model:
        expected = model.run({"x": x})
        out = {name: np.empty_like(arr) for name, arr in expected.items()}
        buffers = {name: arr.ctypes.data for name, arr in out.items()}
        for _ in range(3):
            got = model.run_into({"x": x}, out)
            for name in expected:
                assert got[name] is out[name] and got[name].ctypes.data == buffers[name]
                np.testing.assert_array_equal(got[name], expected[name])
        with pytest.raises(FeedError, match="missing"):
            model.run_into({"x": x}, {"y": out["y"]})
        with pytest.raises(FeedError, match="dtype"):
            model.run_into({"x": x}, dict(out, y=out["y"].astype(np.float64)))
        with pytest.raises(FeedError, match="C-contiguous"):
            model.run_into({"x": x}, dict(out, y=np.empty((out["y"].shape[1], 3), np.float32).T))
        with pytest.raises(BackendError, match="shape"):
            model.run_into({"x": x}, {n: np.empty((7, *a.shape[1:]), a.dtype) for n, a in out.items()})


def test_run_into_default_copies_for_backends_without_binding() -> None:
    from runtime.backends.base import Backend

    class Echo(Backend):
        def open_impl(self, path: Any, **kwargs: Any) -> None:
            self._input_names, self._output_names = ["x"], ["y"]

        def run_impl(self, feeds: dict, *, raw: bool = False) -> dict:
            return {"y": feeds["x"] * 2}

        def close_impl(self) -> None:
            pass

    echo = Echo()
    echo.open("echo.bin")
    dest = np.empty((2, 2), np.float32)
    echo.run_into({"x": np.ones((2, 2), np.float32)}, {"y": dest})
    np.testing.assert_array_equal(dest, 2.0)
    with pytest.raises(FeedError, match="shape"):
        echo.run_into({"x": np.ones((3, 2), np.float32)}, {"y": dest})
    with pytest.raises(FeedError, match=r"missing \['x'\]; unexpected \['z'\]"):  # the seam checks feeds
        echo.run_into({"z": np.ones((2, 2), np.float32)}, {"y": dest})
    echo.close()
    with pytest.raises(BackendError, match="not open"):
        echo.run({"x": np.ones((2, 2), np.float32)})


def test_load_one_candidate_by_id_and_verify(bundle_factory: Callable[..., Path], kit: types.ModuleType) -> None:
    """``load(candidate=)`` opens exactly that one (no fallback, no tuned choice): what tune,
    ``verify --all`` and the packager's host check build their Model with; ``Model.verify``."""
    from runtime.errors import NoCandidateError, UnknownCandidateError
    from runtime.golden import load_golden

    root = bundle_factory(candidates=[
        kit.candidate("onnx-gpu", providers=["NoSuchExecutionProvider"]),
        kit.candidate("onnx-fp32")])
    with runtime.load(root, candidate="onnx-fp32") as model:
        assert [d.candidate for d in model.decisions] == ["onnx-fp32"]
        assert model.tuning["status"] == "candidate"
        report = model.verify(load_golden(model.bundle))
        assert report.passed and [o.name for o in report.outputs] == ["y", "label"]
        assert report.outputs[0].max_abs < 1e-5
    with pytest.raises(NoCandidateError) as caught:
        runtime.load(root, candidate="onnx-gpu")
    assert [d.candidate for d in caught.value.decisions] == ["onnx-gpu"]
    assert "NoSuchExecutionProvider not available" in caught.value.decisions[0].reason
    with pytest.raises(UnknownCandidateError):
        runtime.load(root, candidate="onnx-fp33")
    with pytest.raises(TypeError, match="prefer= or candidate="):
        runtime.load(root, candidate="onnx-fp32", prefer="onnx-fp32")
