"""`runtime.tune`: the fastest candidate that passes parity wins, is written beside the bundle,
and load() uses it only on the same device and the same bundle."""
from __future__ import annotations

import json
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime import load
from runtime.bundle import BUNDLE_FILE, open_bundle
from runtime.tuning.tune import measure, tune
from runtime.tuning.tuned import lookup_tuned, read_tuned, tuned_path

SLOW_WIDTH, SLOW_DEPTH = 512, 8


def tiny_onnx(w: np.ndarray, b: np.ndarray, slow: bool = False) -> bytes:
    """y = relu(x @ w + b), label = argmax(y); ``slow`` adds a chain of big MatMuls whose result
    is multiplied by zero, so the outputs stay exact while each run costs far more."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["z"])]
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")]
    if slow:
        rng = np.random.default_rng(5)
        inits.append(numpy_helper.from_array(
            rng.standard_normal((4, SLOW_WIDTH)).astype(np.float32), "A"))
        nodes.append(helper.make_node("MatMul", ["x", "A"], ["h0"]))
        for i in range(SLOW_DEPTH):
            m = (rng.standard_normal((SLOW_WIDTH, SLOW_WIDTH)) / np.sqrt(SLOW_WIDTH))
            inits.append(numpy_helper.from_array(m.astype(np.float32), f"M{i}"))
            nodes.append(helper.make_node("MatMul", [f"h{i}", f"M{i}"], [f"m{i}"]))
            nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))  # stays bounded
        inits.append(numpy_helper.from_array(np.zeros((1,), np.float32), "zero"))
        nodes += [helper.make_node("ReduceSum", [f"h{SLOW_DEPTH}"], ["s"], keepdims=1),
                  helper.make_node("Mul", ["s", "zero"], ["s0"]),
                  helper.make_node("Add", ["z", "s0"], ["zz"]),
                  helper.make_node("Relu", ["zz"], ["y"])]
    else:
        nodes.append(helper.make_node("Relu", ["z"], ["y"]))
    nodes.append(helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def artifacts() -> dict[str, bytes]:
    """slow (exact but heavy), fast (the kit's tiny model), bad (wrong weights, fails parity)."""
    from .. import conftest as kit

    return {"models/slow.onnx": tiny_onnx(kit.W, kit.B, slow=True),
            "models/bad.onnx": tiny_onnx(kit.W * 1.5, kit.B)}


def _bundle(factory: Callable[..., Path], kit: types.ModuleType, artifacts: Mapping[str, bytes],
            ids: list[str]) -> Path:
    files = {"slow": "models/slow.onnx", "fast": "models/tiny.fp32.onnx", "bad": "models/bad.onnx"}
    return factory(candidates=[kit.candidate(i, files[i]) for i in ids],
                   artifacts={k: v for k, v in artifacts.items()})


FAST: dict[str, Any] = {"runs": 10, "warmup": 2, "max_seconds": 0.5}


def test_tune_picks_fastest_passing_and_load_uses_it(bundle_factory: Callable[..., Path],
                                                     kit: types.ModuleType,
                                                     artifacts: dict[str, bytes]) -> None:
    root = _bundle(bundle_factory, kit, artifacts, ["slow", "bad", "fast"])
    result = tune(open_bundle(root), **FAST)
    rows = {r["candidate"]: r for r in result.measurements}
    assert rows["bad"]["status"] == "parity-failed" and "p50_ms" not in rows["bad"]
    assert rows["slow"]["status"] == rows["fast"]["status"] == "passed"
    assert rows["slow"]["p50_ms"] > rows["fast"]["p50_ms"]
    assert result.chosen == "fast" and rows["fast"]["chosen"] is True
    # beside the bundle, not inside: the bundle's hash check still passes
    path = root.parent / "tiny-cpu.tuned.json"
    assert result.path == path and path.is_file() and result.written
    open_bundle(root).verify()
    doc = read_tuned(path)
    entry = doc["entries"][0]
    assert entry["candidate"] == "fast" and entry["emulated"] is False
    assert {"arch", "cpu", "python", "packages", "providers"} <= set(entry["fingerprint"])
    assert [m["candidate"] for m in entry["measurements"]] == ["slow", "bad", "fast"]
    with load(root) as model:
        assert model.candidate_spec.id == "fast"
        assert model.tuning["used"] is True and model.tuning["status"] == "match"
        assert model.explain()[0]["reason"].startswith(
            "tuned choice from tiny-cpu.tuned.json (fingerprint match)")
    with load(root, tuned=False) as model:  # the bundle's preference order
        assert model.candidate_spec.id == "slow"
        assert model.tuning["status"] == "disabled"
    with load(root, prefer="slow") as model:  # an explicit prefer wins over the tuned choice
        assert model.candidate_spec.id == "slow"
    # tuning again replaces this device's entry instead of piling up
    tune(open_bundle(root), **FAST)
    assert len(read_tuned(path)["entries"]) == 1


def test_parity_failure_is_never_chosen_even_when_fastest(bundle_factory: Callable[..., Path],
                                                          kit: types.ModuleType,
                                                          artifacts: dict[str, bytes]) -> None:
    root = _bundle(bundle_factory, kit, artifacts, ["bad", "slow"])
    result = tune(open_bundle(root), **FAST)
    assert result.chosen == "slow"
    with load(root) as model:
        assert model.candidate_spec.id == "slow" and model.tuning["used"]
    only_bad = _bundle(bundle_factory, kit, artifacts, ["bad"])
    result = tune(open_bundle(only_bad), **FAST)
    assert result.chosen is None and not result.written
    assert not tuned_path(only_bad).exists()


def test_changed_fingerprint_or_bundle_ignores_the_choice(bundle_factory: Callable[..., Path],
                                                         kit: types.ModuleType,
                                                         artifacts: dict[str, bytes]) -> None:
    root = _bundle(bundle_factory, kit, artifacts, ["slow", "fast"])
    tune(open_bundle(root), **FAST)
    path = tuned_path(root)
    original = path.read_text()
    # another device (here: another Python) wrote the only entry
    doc = json.loads(original)
    doc["entries"][0]["fingerprint"]["python"] = "2.7"
    path.write_text(json.dumps(doc))
    with load(root) as model:
        assert model.candidate_spec.id == "slow"
        assert model.tuning["status"] == "fingerprint-differs"
        assert "python: 2.7 -> " in model.tuning["text"]
        assert any(n.startswith("no tuned choice: fingerprint differs")
                   for n in model.explain()[0]["notes"])
    # a different backend version is a different device too (checked without providers)
    bundle = open_bundle(root)
    path.write_text(original)
    fp = json.loads(original)["entries"][0]["fingerprint"]
    assert lookup_tuned(bundle, fingerprint=fp).status == "match"
    other = dict(fp, packages={"onnxruntime": {"onnxruntime": "0.1"}})
    assert lookup_tuned(bundle, fingerprint=other).status == "fingerprint-differs"
    # the bundle was rebuilt: bundle.json changed, its files still consistent
    bdoc = json.loads((root / BUNDLE_FILE).read_text())
    bdoc["warnings"] = ["rebuilt"]
    kit.write_bundle_json(root, bdoc)
    with load(root) as model:
        assert model.candidate_spec.id == "slow"
        assert model.tuning["status"] == "bundle-changed"
        assert "re-run python -m runtime tune" in model.tuning["text"]
    path.unlink()
    with load(root) as model:
        assert model.tuning["status"] == "no-file"
        assert "no tuned choice: no file (tiny-cpu.tuned.json)" in model.explain()[0]["notes"]


def test_tuned_candidate_that_no_longer_loads_falls_back(bundle_factory: Callable[..., Path],
                                                         kit: types.ModuleType,
                                                         artifacts: dict[str, bytes]) -> None:
    root = _bundle(bundle_factory, kit, artifacts, ["slow", "fast"])
    tune(open_bundle(root), **FAST)
    bundle = open_bundle(root)  # the artifact vanished after the hash check (no verify here)
    (root / "models" / "tiny.fp32.onnx").unlink()
    with load(bundle, verify_hashes=False) as model:
        assert model.candidate_spec.id == "slow"
        assert model.tuning["status"] == "tuned-fails" and "fast" in model.tuning["text"]


def test_archive_writes_beside_the_archive(bundle_factory: Callable[..., Path],
                                           kit: types.ModuleType, artifacts: dict[str, bytes],
                                           tmp_path: Path) -> None:
    root = _bundle(bundle_factory, kit, artifacts, ["slow", "fast"])
    (tmp_path / "dist").mkdir()
    tar = kit.make_archive(root, tmp_path / "dist" / "tiny-cpu.tar.gz")
    result = tune(open_bundle(tar), **FAST)
    assert result.path == tmp_path / "dist" / "tiny-cpu.tuned.json" and result.path.is_file()
    assert not tuned_path(root).exists()
    with load(tar) as model:
        assert model.candidate_spec.id == "fast" and model.tuning["used"]


def test_emulated_tune_is_marked_and_not_used_natively(bundle_factory: Callable[..., Path],
                                                       kit: types.ModuleType,
                                                       artifacts: dict[str, bytes]) -> None:
    root = _bundle(bundle_factory, kit, artifacts, ["slow", "fast"])
    result = tune(open_bundle(root), env={"EDGEPACK_EMULATED": "1"}, **FAST)
    assert result.emulated is True and result.fingerprint["emulated"] is True
    assert read_tuned(result.path)["entries"][0]["emulated"] is True
    with load(root) as model:  # this (native) process is not the emulated device
        assert model.tuning["status"] == "fingerprint-differs"
        assert "emulated: True -> False" in model.tuning["text"]


def test_tflite_and_torchscript_candidates(bundle_factory: Callable[..., Path],
                                           kit: types.ModuleType) -> None:
    root = bundle_factory(
        candidates=[kit.candidate("tfl", "models/tiny.fp32.tflite", backend="tflite",
                                  io_map=kit.TFLITE_IO_MAP["fp32"]),
                    kit.candidate("ts", "models/tiny.fp32.pt", backend="torchscript"),
                    kit.candidate("onnx-fp32")],
        artifacts={"models/tiny.fp32.tflite": kit.make_tflite("fp32"),
                   "models/tiny.fp32.pt": kit.make_torchscript("fp32")})
    result = tune(open_bundle(root), **FAST)
    rows = {r["candidate"]: r for r in result.measurements}
    assert {r["status"] for r in rows.values()} == {"passed"}, rows
    assert rows["tfl"]["providers"] == ["XNNPACK"] and rows["ts"]["providers"] == ["cpu"]
    assert set(result.fingerprint["packages"]) == {"onnxruntime", "tflite", "torchscript"}
    fastest = min(rows.values(), key=lambda r: r["p50_ms"])["candidate"]
    assert result.chosen == fastest
    with load(root) as model:
        assert model.candidate_spec.id == fastest


class _Clock:
    """A model whose runs take a scripted time, for the stopping rules of measure()."""

    def __init__(self, seconds: Callable[[int], float]) -> None:
        self.calls = 0
        self.seconds = seconds

    def run(self, feeds: Any, validate: bool = True) -> dict[str, np.ndarray]:
        self.calls += 1
        time.sleep(self.seconds(self.calls))
        return {}


def _measure(seconds: Callable[[int], float], **kwargs: Any) -> dict[str, Any]:
    return measure(_Clock(seconds), {}, **kwargs)  # type: ignore[arg-type]


def test_measure_stops_when_stable_and_at_the_cap() -> None:
    steady = _measure(lambda n: 0.001, warmup=2, runs=10, max_seconds=5.0)
    assert steady["stable"] is True and 10 <= steady["runs"] < 100 and steady["warmup"] == 2
    # a median that keeps drifting never settles: the time cap ends it
    drifting = _measure(lambda n: 0.0002 * n, warmup=0, runs=5, max_seconds=0.3)
    assert drifting["stable"] is False and drifting["seconds"] < 1.0
    # one run longer than the cap still gives one measurement
    slow = _measure(lambda n: 0.05, warmup=3, runs=10, max_seconds=0.01)
    assert slow["runs"] == 1 and slow["warmup"] == 0


def test_no_golden_is_an_error(bundle_factory: Callable[..., Path]) -> None:
    root = bundle_factory()
    bundle = open_bundle(root)
    object.__setattr__(bundle, "golden", None)
    from runtime.errors import BundleFormatError

    with pytest.raises(BundleFormatError, match="no golden data"):
        tune(bundle, **FAST)


def test_tuned_path_names(tmp_path: Path) -> None:
    """Beside the folder or the archive, with the archive suffix dropped."""
    assert tuned_path(tmp_path / "b") == tmp_path / "b.tuned.json"
    assert tuned_path(tmp_path / "b.tgz") == tmp_path / "b.tuned.json"
    assert tuned_path(tmp_path / "b.tar.gz") == tmp_path / "b.tuned.json"
