"""TorchScript backend on real traced modules: fp32, dict outputs, fp16, dynamic int8 with the
quantized engine, devices (cuda on this host, with or without CUDA, and on a simulated host
without it), threads, and a process where only torch and numpy exist."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from runtime.backends import get_backend  # noqa: E402
from runtime.backends.torchscript import TorchScriptBackend  # noqa: E402
from runtime.errors import BackendError, NoCandidateError  # noqa: E402
from runtime.model import load  # noqa: E402
from runtime.select import SELECTED, SKIPPED  # noqa: E402

NO_CUDA = not torch.cuda.is_available()
FILES = {kind: f"models/tiny.{kind}.pt" for kind in ("fp32", "dict", "fp16", "int8")}


@pytest.fixture(autouse=True)
def restore_torch_globals() -> Any:
    """open() sets process-wide torch state (threads, quantized engine); undo it per test."""
    threads, engine = torch.get_num_threads(), torch.backends.quantized.engine
    yield
    torch.set_num_threads(threads)
    torch.backends.quantized.engine = engine


@pytest.fixture(scope="module")
def artifacts(kit: types.ModuleType) -> dict[str, bytes]:
    return {FILES[k]: kit.make_torchscript(k) for k in FILES}


def ts_candidate(kit: types.ModuleType, kind: str = "fp32", cid: str | None = None,
                 **kw: Any) -> dict[str, Any]:
    precision = {"dict": "fp32"}.get(kind, kind)
    if kind in ("fp16", "int8"):
        kw.setdefault("tolerance", kit.LOOSE_TOL)
    return kit.candidate(cid or f"ts-{kind}", FILES[kind], backend="torchscript",
                         precision=precision, **kw)


def x_of(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


def test_registered_and_reports_torch() -> None:
    assert get_backend("torchscript") is TorchScriptBackend
    ok, why = TorchScriptBackend.available()
    assert ok and why == f"torch {torch.__version__}"


@pytest.mark.parametrize("kind", ["fp32", "dict"])
def test_fp32_matches_source_any_batch(bundle_factory: Callable[..., Path],
                                       kit: types.ModuleType, artifacts: dict[str, bytes],
                                       kind: str) -> None:
    root = bundle_factory(artifacts=artifacts, candidates=[ts_candidate(kit, kind)])
    source = kit.torch_module(kind)
    with load(root) as model:
        assert model.providers == ["cpu"] and not model.degraded
        for n in (1, 6, 2):
            x = x_of(n, seed=n)
            out = model.run({"x": x})
            with torch.no_grad():
                src = source(torch.from_numpy(x))
            y_src = (src["y"] if kind == "dict" else src[0]).numpy()
            assert out["y"].dtype == np.float32 and out["label"].dtype == np.int64
            np.testing.assert_allclose(out["y"], y_src, atol=1e-6)
            np.testing.assert_allclose(out["y"], kit.reference(x)["y"], atol=1e-5)
            np.testing.assert_array_equal(out["label"], kit.reference(x)["label"])


def test_fp16_casts_in_and_out(bundle_factory: Callable[..., Path], kit: types.ModuleType,
                               artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, candidates=[ts_candidate(kit, "fp16")])
    with load(root) as model:
        x = x_of(5)
        out = model.run({"x": x})
        assert out["y"].dtype == np.float32  # back to float32 for the caller
        np.testing.assert_allclose(out["y"], kit.reference(x)["y"], atol=1e-2, rtol=1e-2)
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", str(root)],
                          cwd=kit.REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_int8_dynamic_with_engine(bundle_factory: Callable[..., Path], kit: types.ModuleType,
                                  artifacts: dict[str, bytes]) -> None:
    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"
    root = bundle_factory(artifacts=artifacts,
                          candidates=[ts_candidate(kit, "int8", quantized_engine=engine)])
    with load(root) as model:
        assert torch.backends.quantized.engine == engine
        x = x_of(16, seed=5)
        out = model.run({"x": x})
        ref = kit.reference(x)
        np.testing.assert_allclose(out["y"], ref["y"], atol=0.1)
        assert np.mean(out["label"] == ref["label"]) >= 0.75
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", str(root)],
                          cwd=kit.REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unsupported_engine_names_the_supported_ones(bundle_factory: Callable[..., Path],
                                                     kit: types.ModuleType,
                                                     artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, candidates=[
        ts_candidate(kit, "int8", quantized_engine="hexagon"), kit.candidate("onnx")])
    with load(root) as model:
        reason = model.explain()[0]["reason"]
    assert "'hexagon'" in reason and "supported:" in reason
    assert all(e in reason for e in torch.backends.quantized.supported_engines)


@pytest.fixture
def without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without CUDA, whatever this one has (the backend asks torch.cuda.is_available())."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_candidate_follows_this_hosts_cuda(bundle_factory: Callable[..., Path], kit: types.ModuleType,
                                                artifacts: dict[str, bytes]) -> None:
    """The real host, either kind: with CUDA the cuda candidate runs there, without it it is skipped."""
    root = bundle_factory(artifacts=artifacts, candidates=[
        ts_candidate(kit, cid="ts-cuda", providers=["cuda"]), ts_candidate(kit, cid="ts-cpu")])
    x = x_of(3)
    with load(root) as model:
        rows = model.explain()
        chosen, providers, degraded = model.candidate_spec.id, model.providers, model.degraded
        y = model.run({"x": x})["y"]
    np.testing.assert_allclose(y, kit.reference(x)["y"], atol=1e-4)
    if NO_CUDA:
        assert (chosen, providers) == ("ts-cpu", ["cpu"])
        assert rows[0]["status"] == SKIPPED and "is_available() is false" in rows[0]["reason"]
    else:
        assert (chosen, providers, degraded) == ("ts-cuda", ["cuda"], False)
        assert rows[0]["status"] == SELECTED


def test_cuda_only_candidate_skipped_with_reason(bundle_factory: Callable[..., Path],
                                                 kit: types.ModuleType,
                                                 artifacts: dict[str, bytes], without_cuda: None) -> None:
    root = bundle_factory(artifacts=artifacts, candidates=[
        ts_candidate(kit, "fp16", providers=["cuda"]), ts_candidate(kit, cid="ts-cpu")])
    with load(root) as model:
        rows = model.explain()
        assert model.candidate_spec.id == "ts-cpu"
    assert rows[0]["status"] == SKIPPED and "cuda" in rows[0]["reason"]
    assert "is_available() is false" in rows[0]["reason"]
    assert rows[1]["status"] == SELECTED


def test_cuda_then_cpu_is_a_recorded_downgrade(bundle_factory: Callable[..., Path],
                                               kit: types.ModuleType,
                                               artifacts: dict[str, bytes], without_cuda: None) -> None:
    cand = ts_candidate(kit, providers=["cuda", "cpu"])
    root = bundle_factory(artifacts=artifacts, candidates=[cand])
    with load(root) as model:
        assert model.degraded and model.providers == ["cpu"]
        assert "cuda" in model.explain()[0]["reason"]
        x = x_of(3)
        np.testing.assert_allclose(model.run({"x": x})["y"], kit.reference(x)["y"], atol=1e-5)
    with pytest.raises(NoCandidateError, match="refused: --strict"):
        load(root, strict=True)


def test_first_device_of_a_preference_list_is_not_a_downgrade(bundle_factory: Callable[..., Path],
                                                              kit: types.ModuleType,
                                                              artifacts: dict[str, bytes]) -> None:
    """TorchScript devices are a preference list (one is used), unlike onnxruntime's providers
    (all used together): running on the first one asked is not degraded, nor refused by --strict."""
    root = bundle_factory(artifacts=artifacts, candidates=[ts_candidate(kit, providers=["cpu", "cuda"])])
    for strict in (False, True):
        with load(root, strict=strict) as model:
            assert not model.degraded and model.providers == ["cpu"]
            assert "asked providers" not in model.explain()[0]["reason"]


def test_unknown_device_and_bad_file(tmp_path: Path, artifacts: dict[str, bytes]) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(artifacts[FILES["fp32"]])
    with pytest.raises(BackendError, match="unknown TorchScript device 'tpu'"):
        TorchScriptBackend().open(path, providers=["tpu"])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BackendError, match="torch.jit.load failed"):
        TorchScriptBackend().open(bad)


def test_output_count_mismatch_is_a_backend_error(tmp_path: Path, kit: types.ModuleType,
                                                  artifacts: dict[str, bytes]) -> None:
    from runtime.signature import TensorSpec

    path = tmp_path / "m.pt"
    path.write_bytes(artifacts[FILES["fp32"]])
    with TorchScriptBackend() as backend:
        backend.open(path, inputs=[TensorSpec("x", "float32", ("batch", 4))],
                     outputs=[TensorSpec("y", "float32", ("batch", 3))])
        with pytest.raises(BackendError, match="returned 2 output"):
            backend.run({"x": x_of(2)})
    with TorchScriptBackend() as backend:  # no signature: names from forward's schema
        backend.open(path)
        assert backend.input_names == ["x"]
        out = backend.run({"x": x_of(2)})
        assert sorted(out) == ["output_0", "output_1"]


def test_threads_give_the_single_threaded_result(bundle_factory: Callable[..., Path],
                                                 kit: types.ModuleType,
                                                 artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, candidates=[ts_candidate(kit, "int8")])
    feeds = [{"x": x_of(1 + i % 4, seed=i)} for i in range(8)]
    with load(root) as model:
        expected = [model.run(f) for f in feeds]
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def work(i: int) -> None:
            try:
                barrier.wait()
                for _ in range(50):
                    out = model.run(feeds[i])
                    np.testing.assert_array_equal(out["y"], expected[i]["y"])
                    np.testing.assert_array_equal(out["label"], expected[i]["label"])
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


from ...device_env import TORCH as TORCH_DEPS  # noqa: E402


def test_verify_where_only_torch_and_numpy_exist(bundle_factory: Callable[..., Path],
                                                 kit: types.ModuleType, tmp_path: Path,
                                                 artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts={FILES["fp32"]: artifacts[FILES["fp32"]]},
                          onnx_model=False, samples=4, requirements="numpy\ntorch\n",
                          candidates=[ts_candidate(kit)])
    packages = kit.only_these_packages(tmp_path / "pkgs", TORCH_DEPS)
    probe = kit.run_isolated(root, packages, "-c", (
        "import importlib.util as u; print([n for n in ('onnxruntime', 'tensorflow', "
        "'ai_edge_litert', 'tflite_runtime', 'onnx') if u.find_spec(n)])"))
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    proc = kit.run_isolated(root, packages, "-m", "runtime", "verify", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] and doc["candidates"][0]["candidate"] == "ts-fp32"
    assert doc["candidates"][0]["providers"] == ["cpu"]
