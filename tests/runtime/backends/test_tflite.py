"""TFLite backend on real artifacts converted from Keras: numbers, io_map, batch resizing, int8
I/O (de)quantization, delegates that fail, threads, and a process where only LiteRT exists."""
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

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")

from runtime.backends import get_backend  # noqa: E402
from runtime.backends import tflite as tfl  # noqa: E402
from runtime.errors import NoCandidateError  # noqa: E402
from runtime.model import load  # noqa: E402
from runtime.select import SELECTED, SKIPPED  # noqa: E402

FP32 = "models/tiny.fp32.tflite"
INT8 = "models/tiny.int8.tflite"


@pytest.fixture(scope="module")
def artifacts(kit: types.ModuleType) -> dict[str, bytes]:
    return {FP32: kit.make_tflite("fp32"), INT8: kit.make_tflite("int8")}


def tfl_candidate(kit: types.ModuleType, cid: str = "tfl-fp32", kind: str = "fp32",
                  **kw: Any) -> dict[str, Any]:
    kw.setdefault("io_map", kit.TFLITE_IO_MAP[kind])
    if kind == "int8":
        kw.setdefault("tolerance", {"y": kit.LOOSE_TOL["y"]})
    return kit.candidate(cid, FP32 if kind == "fp32" else INT8, backend="tflite",
                         precision=kind, **kw)


def x_of(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


def test_registered_and_reports_interpreter() -> None:
    cls = get_backend("tflite")
    assert cls is tfl.TFLiteBackend
    ok, why = cls.available()
    assert ok and why.startswith("ai_edge_litert ")


def test_fp32_matches_source_and_resizes_batch(bundle_factory: Callable[..., Path],
                                               kit: types.ModuleType,
                                               artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, candidates=[tfl_candidate(kit)])
    with load(root) as model:
        assert model.providers == ["XNNPACK"] and not model.degraded
        assert model.backend_version.startswith("ai_edge_litert")
        for n in (1, 5, 2, 8, 1):  # the symbolic batch: grow, shrink, grow again
            x = x_of(n, seed=n)
            out = model.run({"x": x})
            ref = kit.reference(x)
            assert list(out) == ["y", "label"]
            assert out["y"].shape == (n, 3) and out["y"].dtype == np.float32
            np.testing.assert_allclose(out["y"], ref["y"], atol=1e-5, rtol=1e-5)
            np.testing.assert_array_equal(out["label"], ref["label"])


def test_verify_cli_passes(bundle_factory: Callable[..., Path], kit: types.ModuleType,
                           artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, batched=False, samples=3,
                          candidates=[tfl_candidate(kit)])
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", "--json", str(root)],
                          cwd=kit.REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] and doc["candidates"][0]["providers"] == ["XNNPACK"]


def test_without_io_map_names_differ_and_candidate_is_skipped(
        bundle_factory: Callable[..., Path], kit: types.ModuleType,
        artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts,
                          candidates=[tfl_candidate(kit, io_map=None), kit.candidate("onnx")])
    with load(root) as model:
        rows = model.explain()
    assert rows[0]["status"] == SKIPPED and "output_0" in rows[0]["reason"]
    assert rows[1]["status"] == SELECTED


def test_io_map_naming_unknown_signature_name_skips(bundle_factory: Callable[..., Path],
                                                    kit: types.ModuleType,
                                                    artifacts: dict[str, bytes]) -> None:
    bad = {"outputs": {"y": "output_0", "score": "output_1"}}
    root = bundle_factory(artifacts=artifacts,
                          candidates=[tfl_candidate(kit, io_map=bad), kit.candidate("onnx")])
    with load(root) as model:
        reason = model.explain()[0]["reason"]
    assert "io_map.outputs" in reason and "'score'" in reason


def test_int8_float_io_close_to_source(bundle_factory: Callable[..., Path],
                                       kit: types.ModuleType,
                                       artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, outputs=("y",),
                          candidates=[tfl_candidate(kit, "tfl-int8", "int8")])
    with load(root) as model:
        for n in (1, 7):
            x = x_of(n, seed=10 + n)
            out = model.run({"x": x})
            assert out["y"].dtype == np.float32 and out["y"].shape == (n, 3)
            np.testing.assert_allclose(out["y"], kit.reference(x)["y"], atol=0.1)
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", str(root)],
                          cwd=kit.REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_int8_io_equals_raw_interpreter_with_manual_quantization(
        bundle_factory: Callable[..., Path], kit: types.ModuleType,
        artifacts: dict[str, bytes]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=artifacts[INT8])
    runner = interp.get_signature_runner()
    d_in = runner.get_input_details()["x"]
    d_out = runner.get_output_details()["output_0"]
    assert d_in["dtype"] == np.int8 and d_out["dtype"] == np.int8
    (s_in, z_in), (s_out, z_out) = d_in["quantization"], d_out["quantization"]
    x = x_of(6, seed=42) * 3  # some values beyond the calibrated range: clipping matters
    q = np.clip(np.round(x / s_in) + z_in, -128, 127).astype(np.int8)
    q_out = runner(x=q)["output_0"]
    manual = (q_out.astype(np.float32) - z_out) * np.float32(s_out)

    root = bundle_factory(artifacts=artifacts, outputs=("y",),
                          candidates=[tfl_candidate(kit, "tfl-int8", "int8")])
    with load(root) as model:
        np.testing.assert_allclose(model.run({"x": x})["y"], manual, rtol=0, atol=1e-6)
        raw = model.run({"x": q}, raw=True)["y"]  # raw: int8 in, int8 out
        assert raw.dtype == np.int8
        np.testing.assert_array_equal(raw, q_out)
        with pytest.raises(Exception, match="dtype|float32|int8"):
            model.run({"x": x}, raw=True)  # raw feeds are checked against the int8 dtype


# ai_edge_litert's Delegate.__del__ trips over its own failed __init__; not our concern.
NO_DELEGATE_DEL_NOISE = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning")


@NO_DELEGATE_DEL_NOISE
def test_failing_delegate_is_a_recorded_downgrade(bundle_factory: Callable[..., Path],
                                                  kit: types.ModuleType,
                                                  artifacts: dict[str, bytes]) -> None:
    providers = ["delegate:libdoesnotexist.so", "XNNPACK"]
    cand = tfl_candidate(kit, providers=providers,
                         provider_options=[{"device": "usb"}, {}])
    root = bundle_factory(artifacts=artifacts, candidates=[cand, kit.candidate("onnx")])
    with load(root) as model:
        assert model.candidate_spec.id == "tfl-fp32"
        assert model.degraded and model.providers == ["XNNPACK"]
        row = model.explain()[0]
        assert row["providers_asked"] == providers and row["providers_in_use"] == ["XNNPACK"]
        assert "libdoesnotexist.so" in row["reason"] and row["notes"]
        x = x_of(4)
        np.testing.assert_allclose(model.run({"x": x})["y"], kit.reference(x)["y"], atol=1e-5)
    with load(root, strict=True) as model:  # strict: refused, next candidate taken
        row = model.explain()[0]
        assert row["status"] == SKIPPED and "refused: --strict" in row["reason"]
        assert model.candidate_spec.id == "onnx"
    only = bundle_factory(artifacts=artifacts, candidates=[cand])
    with pytest.raises(NoCandidateError, match="refused: --strict"):
        load(only, strict=True)


@NO_DELEGATE_DEL_NOISE
def test_delegate_only_still_runs_on_cpu_path(bundle_factory: Callable[..., Path],
                                              kit: types.ModuleType,
                                              artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, candidates=[
        tfl_candidate(kit, providers=["delegate:libedgetpu-missing.so.1"])])
    with load(root) as model:
        assert model.degraded and model.providers == ["XNNPACK"]


def test_unknown_provider_skips_candidate(bundle_factory: Callable[..., Path],
                                          kit: types.ModuleType,
                                          artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts,
                          candidates=[tfl_candidate(kit, providers=["GPU"]),
                                      kit.candidate("onnx")])
    with load(root) as model:
        assert "unknown TFLite provider 'GPU'" in model.explain()[0]["reason"]


def test_threads_give_the_single_threaded_result(bundle_factory: Callable[..., Path],
                                                 kit: types.ModuleType,
                                                 artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, outputs=("y",),
                          candidates=[tfl_candidate(kit, "tfl-int8", "int8")])
    feeds = [{"x": x_of(1 + i % 4, seed=i)} for i in range(8)]  # batches differ: resizes race
    with load(root) as model:
        expected = [model.run(f)["y"] for f in feeds]
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def work(i: int) -> None:
            try:
                barrier.wait()
                for _ in range(50):
                    np.testing.assert_array_equal(model.run(feeds[i])["y"], expected[i])
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_model_without_signature_uses_tensor_names(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path, kit: types.ModuleType,
                                                   artifacts: dict[str, bytes]) -> None:
    """Old converters write no SignatureDef: inputs/outputs by tensor name, resize by hand."""
    real = tfl._import_interpreter()

    class NoSignatures(real.interpreter):  # type: ignore[misc, name-defined]
        def get_signature_list(self) -> dict[str, Any]:
            return {}

    monkeypatch.setattr(tfl, "_import_interpreter", lambda: real._replace(interpreter=NoSignatures))
    path = tmp_path / "m.tflite"
    path.write_bytes(artifacts[INT8])
    backend = tfl.TFLiteBackend()
    backend.open(path, threads=2)
    monkeypatch.undo()
    with tfl.TFLiteBackend() as with_runner:
        with_runner.open(path)
        try:
            (name_in,), (name_out,) = backend.input_names, backend.output_names
            assert name_in != "x" and name_out != "output_0"  # tensor names, not signature keys
            assert backend.raw_input_dtypes == {name_in: "int8"}
            for n in (3, 1, 6):
                x = x_of(n, seed=n)
                y = backend.run({name_in: x})[name_out]
                assert y.shape == (n, 3) and y.dtype == np.float32
                np.testing.assert_array_equal(y, with_runner.run({"x": x})["output_0"])
        finally:
            backend.close()
            backend.close()


def test_verify_where_only_litert_and_numpy_exist(bundle_factory: Callable[..., Path],
                                                  kit: types.ModuleType, tmp_path: Path,
                                                  artifacts: dict[str, bytes]) -> None:
    root = bundle_factory(artifacts=artifacts, onnx_model=False, samples=4,
                          requirements="numpy\nai-edge-litert\n",
                          candidates=[tfl_candidate(kit)])
    packages = kit.only_these_packages(tmp_path / "pkgs", ["numpy", "numpy.libs", "ai_edge_litert"])
    probe = kit.run_isolated(root, packages, "-c", (
        "import importlib.util as u; print([n for n in ('onnxruntime', 'tensorflow', 'torch', "
        "'tflite_runtime', 'onnx') if u.find_spec(n)])"))
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    proc = kit.run_isolated(root, packages, "-m", "runtime", "verify", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] and doc["candidates"][0]["candidate"] == "tfl-fp32"


def test_hot_path_falls_back_to_the_public_interpreter_methods() -> None:
    """An interpreter build without the C++ wrapper attribute runs through its public methods."""
    from runtime.backends.tflite import _has_inner, _Public

    calls: list[str] = []

    class PublicOnly:
        def set_tensor(self, index: int, value: object) -> None:
            calls.append(f"set {index}")

        def invoke(self) -> None:
            calls.append("invoke")

        def get_tensor(self, index: int, subgraph: int = 0) -> str:
            calls.append(f"get {index}/{subgraph}")
            return "out"

    interp = PublicOnly()
    assert not _has_inner(interp)
    inner = _Public(interp)
    inner.SetTensor(3, None)
    inner.Invoke()
    assert inner.GetTensor(7, 0) == "out" and calls == ["set 3", "invoke", "get 7/0"]
