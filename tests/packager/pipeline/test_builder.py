"""Whole builds of a small real torch model: bundle layout, determinism, parity failures, fallbacks."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from packager.pipeline import build
from runtime.bundle import open_bundle

from ...conftest import write_yaml
from ..test_passes import old_style_model

pytestmark = pytest.mark.slow

STRICT_TARGET = """\
name: strict-dev
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: onnx, precision: int8, quantization: {mode: static}}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_writes_a_complete_verified_bundle(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    result = build(tiny_project(targets=["x86-cpu", "rpi4"]), tmp_path / "out")
    assert result.ok and [t.target for t in result.targets] == ["x86-cpu", "rpi4"]
    root = tmp_path / "out" / "tiny-rpi4"
    for rel in ("bundle.json", "README.md", "requirements.txt", "golden/inputs.npz",
                "golden/outputs.npz", "runtime/__init__.py", "runtime/compare.py",
                "models/tiny.int8-static-pc.onnx", "models/tiny.fp32.onnx"):
        assert (root / rel).is_file(), rel
    assert (tmp_path / "out" / "tiny-rpi4.tar.gz").is_file()
    summary = json.loads((tmp_path / "out" / "tiny.build.json").read_text())
    assert summary["report"] == str(tmp_path / "out" / "tiny.report.html")
    assert {"torch", "onnx", "onnxruntime"} <= set(summary["tools"])
    html = (tmp_path / "out" / "tiny.report.html").read_text()
    assert "onnx-int8-static-pc" in html and "tiny-rpi4" in html and "http://" not in html
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert "onnxruntime==1.22.1" in (root / "requirements.txt").read_text()
    doc = json.loads((root / "bundle.json").read_text())
    assert doc["schema_version"] == 1 and doc["target"]["name"] == "rpi4"
    # the Pi prefers TFLite int8; a torch model gets it through litert-torch when that is installed
    tflite = ["tflite-int8-static-int8io"] if importlib.util.find_spec("litert_torch") else []
    assert [c["id"] for c in doc["candidates"]] == tflite + ["onnx-int8-static-pc", "onnx-fp32"]
    assert doc["candidates"][-1]["converter"] == "torch.onnx.export(dynamo=True) + fp32"
    assert doc["signature"]["inputs"][0]["shape"] == ["batch", 1, 4, 4]
    assert doc["signature"]["outputs"][0]["shape"] == ["batch", 5]
    assert doc["provenance"]["exporter"] == "torch.onnx.export(dynamo=True)"
    assert len(doc["provenance"]["source"]["sha256"]) == 64
    assert {"torch", "onnx", "onnxruntime", "onnxsim"} <= set(doc["provenance"]["tools"])
    steps = {s["step"]: s["details"] for s in doc["provenance"]["steps"]}
    assert steps["simplify"]["nodes_before"] >= steps["simplify"]["nodes_after"] > 0
    # every file is hashed, the runtime's own code included
    assert "runtime/__init__.py" in doc["files"] and "models/tiny.fp32.onnx" in doc["files"]
    assert doc["files"]["models/tiny.fp32.onnx"]["sha256"] == sha(root / "models/tiny.fp32.onnx")
    open_bundle(root).verify()
    fp32 = next(c for c in doc["candidates"] if c["id"] == "onnx-fp32")
    assert fp32["parity"]["passed"] and fp32["parity"]["outputs"][0]["max_abs"] < 1e-4
    # golden outputs are the ORIGINAL model's outputs
    with np.load(root / "golden/outputs.npz") as g:
        assert g["scores"].shape == (16, 5)


def cli_build(manifest: Path, out: Path, *extra: str) -> dict[str, Any]:
    """`python -m packager build --json` in a fresh process, as a user or CI runs it (TorchScript
    mangles class names per process, so two builds inside one Python process are not the contract)."""
    done = subprocess.run([sys.executable, "-m", "packager", "build", str(manifest), "--out", str(out), "--json",
                           *extra], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3],
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def bundle_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_builds_are_byte_identical_with_and_without_the_cache(tiny_project: Callable[..., Path],
                                                               tmp_path: Path) -> None:
    """Reproducible, not merely cached: a build that fills a cache, one served from it, and one
    with --no-cache (nothing read from or written to any cache) give the same bytes."""
    manifest = tiny_project()
    cache = ["--cache-dir", str(tmp_path / "cache")]
    cold = cli_build(manifest, tmp_path / "cold", *cache)
    warm = cli_build(manifest, tmp_path / "warm", *cache)
    fresh = cli_build(manifest, tmp_path / "fresh", "--no-cache")
    assert cold["cache"]["enabled"] and cold["cache"]["hits"] == [] and cold["cache"]["misses"]
    assert warm["cache"]["misses"] == [] and warm["cache"]["hits"], "the second build is a cache hit"
    assert fresh["cache"] == dict(fresh["cache"], enabled=False, hits=[], misses=[]), fresh["cache"]
    assert not any(c["cached"] for t in fresh["targets"] for c in t["candidates"])
    archives = {name: sha(tmp_path / name / "tiny-x86-cpu.tar.gz") for name in ("cold", "warm", "fresh")}
    assert len(set(archives.values())) == 1, archives
    files = bundle_files(tmp_path / "fresh" / "tiny-x86-cpu")
    assert files == bundle_files(tmp_path / "cold" / "tiny-x86-cpu") == bundle_files(tmp_path / "warm" / "tiny-x86-cpu")
    assert {"models/tiny.fp32.pt", "models/tiny.fp32.onnx", "models/tiny.int8-static-pc.onnx"} <= set(files)
    doc = json.loads((tmp_path / "fresh" / "tiny-x86-cpu" / "bundle.json").read_text())
    assert "torchscript-fp32" in [c["id"] for c in doc["candidates"]]


def test_rebuild_replaces_the_old_bundle(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    manifest = tiny_project()
    build(manifest, tmp_path)
    (tmp_path / "tiny-x86-cpu" / "stale.txt").write_text("old")
    build(manifest, tmp_path)
    assert not (tmp_path / "tiny-x86-cpu" / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if "-tmp-" in p.name], "no temp folders left"


def test_parity_failure_fails_the_target_without_writing(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    target = write_yaml(tmp_path / "strict.yaml", STRICT_TARGET)
    manifest = tiny_project(targets=[str(target)], tolerances={"int8": {"min_cosine": 1.0, "atol": 0.0}})
    result = build(manifest, tmp_path / "out")
    t = result.targets[0]
    assert not result.ok and t.status == "failed" and "parity failed" in t.message
    assert t.candidates[0].status == "parity-failed" and t.candidates[1].status == "ok"
    assert not (tmp_path / "out" / "tiny-strict-dev").exists()
    assert not (tmp_path / "out" / "tiny-strict-dev.tar.gz").exists()


def test_allowed_parity_failure_is_kept_and_marked(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    target = write_yaml(tmp_path / "strict.yaml", STRICT_TARGET)
    manifest = tiny_project(targets=[str(target)], tolerances={"int8": {"min_cosine": 1.0, "atol": 0.0}})
    result = build(manifest, tmp_path / "out", allow_parity_failure=True)
    assert result.targets[0].status == "ok"
    doc = json.loads((tmp_path / "out" / "tiny-strict-dev" / "bundle.json").read_text())
    # kept, marked, and ranked after the candidate that passed, with a warning
    assert [c["status"] for c in doc["candidates"]] == ["ok", "parity-failed-allowed"]
    assert doc["candidates"][1]["parity"]["passed"] is False
    assert any("FAILED parity" in w for w in result.warnings)


def test_precision_fallback_is_recorded(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    manifest = tiny_project(tolerances={"int8": {"min_cosine": 1.0, "atol": 0.0}})
    result = build(manifest, tmp_path)  # x86-cpu allows precision fallback
    t = result.targets[0]
    assert result.ok and t.candidates[0].status == "dropped"
    assert t.fallbacks[0]["candidate"] == "onnx-int8-static-pc" and t.fallbacks[0]["next"] == "onnx-fp32"
    doc = json.loads((tmp_path / "tiny-x86-cpu" / "bundle.json").read_text())
    assert [c["id"] for c in doc["candidates"]] == ["onnx-fp32", "torchscript-fp32"]
    assert doc["fallbacks"][0]["reason"].startswith("parity failed")
    assert not (tmp_path / "tiny-x86-cpu" / "models" / "tiny.int8-static-pc.onnx").exists()


def test_failing_candidate_makes_the_target_partial(tiny_project: Callable[..., Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from packager.errors import ConversionError
    from packager.passes import quantize

    def broken(*a: object, **k: object) -> None:
        raise ConversionError("int8 static quantization failed: op FancyOp", where="pass int8-static")
    monkeypatch.setattr(quantize, "int8_static", broken)
    result = build(tiny_project(), tmp_path)
    t = result.targets[0]
    assert t.status == "partial" and not result.ok and t.candidates[0].status == "failed"
    assert "FancyOp" in t.candidates[0].message and t.candidates[1].status == "ok"
    doc = json.loads((tmp_path / "tiny-x86-cpu" / "bundle.json").read_text())
    assert [c["id"] for c in doc["candidates"]] == ["onnx-fp32", "torchscript-fp32"]
    assert doc["skipped"][0]["status"] == "failed"


def test_unsupported_candidate_does_not_stop_the_others(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    target = write_yaml(tmp_path / "mixed.yaml", STRICT_TARGET.replace(
        "  - {format: onnx, precision: int8, quantization: {mode: static}}",
        "  - {format: torchscript, precision: int8, quantization: {mode: static}}"))
    result = build(tiny_project(targets=[str(target), "x86-cpu"]), tmp_path / "out")
    mixed, x86 = result.targets
    assert mixed.status == "ok" and mixed.candidates[0].status == "unsupported"
    assert "dynamic quantization only" in mixed.candidates[0].message and "skipped" in mixed.message
    assert x86.status == "ok" and (tmp_path / "out" / "tiny-strict-dev" / "bundle.json").is_file()
    doc = json.loads((tmp_path / "out" / "tiny-strict-dev" / "bundle.json").read_text())
    assert [(s["candidate"], s["status"]) for s in doc["skipped"]] == [("torchscript-int8-static", "unsupported")]
    assert any("torchscript-int8-static" in w for w in doc["warnings"])


def test_fixed_batch_of_one_is_verified_per_sample(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    import runtime
    from runtime.golden import check_parity, load_golden
    manifest = tiny_project(inputs=[{"name": "x", "dtype": "float32", "shape": [1, 1, 4, 4]}],
                            calibration={"entry": "tiny.py:single_samples", "samples": 20},
                            golden={"samples": 5})
    result = build(manifest, tmp_path)
    assert result.ok
    doc = json.loads((tmp_path / "tiny-x86-cpu" / "bundle.json").read_text())
    assert doc["golden"]["batched"] is False and doc["golden"]["samples"] == 5
    with np.load(tmp_path / "tiny-x86-cpu" / "golden" / "outputs.npz") as g:
        assert g["scores"].shape == (5, 1, 5)  # one (1, 5) output per sample, stacked
    model = runtime.load(tmp_path / "tiny-x86-cpu")
    inputs, outputs, batched = load_golden(model.bundle)
    assert model.run({"x": inputs["x"][0]})["scores"].shape == (1, 5)
    assert check_parity(model, inputs, outputs, batched).passed  # the device-side check agrees


def test_onnx_source_old_opset_and_random_calibration_warning(tiny_project: Callable[..., Path],
                                                              tmp_path: Path) -> None:
    onnx.save(old_style_model(), str(tmp_path / "old.onnx"))
    manifest = tiny_project(source={"framework": "onnx", "path": "old.onnx"},
                            inputs=[{"name": "x", "dtype": "float32", "shape": ["batch", 8]}],
                            outputs=["y"], calibration={"random": True, "samples": 32})
    result = build(manifest, tmp_path / "out")
    assert result.ok
    assert any("RANDOM" in w for w in result.warnings)
    doc = json.loads((tmp_path / "out" / "tiny-x86-cpu" / "bundle.json").read_text())
    steps = {s["step"]: s["details"] for s in doc["provenance"]["steps"]}
    assert steps["prepare"]["opset_before"] == 9 and steps["prepare"]["opset"] == 9  # export.opset not set
    assert steps["opset"]["opset_before"] == 9 and steps["opset"]["opset"] == 13  # int8 static QDQ's own copy
    assert steps["prepare"]["initializer_inputs_removed"] == 2
    assert any("RANDOM" in w for w in doc["warnings"])
    assert doc["provenance"]["exporter"] == "none (onnx source)"


def test_dict_outputs_follow_the_manifest_order(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    from ...conftest import DICT_MODEL
    (tmp_path / "heads.py").write_text(DICT_MODEL)
    manifest = tiny_project(source={"framework": "torch", "entry": "heads.py:build"}, outputs=["logits", "probs"])
    result = build(manifest, tmp_path / "out")
    assert result.ok, [c.message for c in result.targets[0].candidates]
    fp32 = result.targets[0].candidates[1]
    assert fp32.parity and all(o.max_abs < 1e-4 for o in fp32.parity.outputs)
    with np.load(tmp_path / "out" / "tiny-x86-cpu" / "golden" / "outputs.npz") as g:
        assert np.allclose(g["probs"].sum(axis=1), 1.0) and not np.allclose(g["logits"].sum(axis=1), 1.0)


def test_failed_rebuild_removes_the_stale_bundle(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    target = write_yaml(tmp_path / "strict.yaml", STRICT_TARGET)
    build(tiny_project(targets=[str(target)]), tmp_path / "out")
    assert (tmp_path / "out" / "tiny-strict-dev").is_dir()
    result = build(tiny_project(targets=[str(target)], tolerances={"int8": {"min_cosine": 1.0, "atol": 0.0}}),
                   tmp_path / "out")
    assert result.targets[0].status == "failed" and "removed the previous bundle" in result.targets[0].message
    assert not (tmp_path / "out" / "tiny-strict-dev").exists()
    assert not (tmp_path / "out" / "tiny-strict-dev.tar.gz").exists()


def test_quantized_but_slower_is_shown_and_can_be_dropped(tiny_project: Callable[..., Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # host timings are noisy: pin them (int8 twice as slow as fp32) to test the rule, not the machine
    monkeypatch.setattr("packager.pipeline.checks.host_latency_ms",
                        lambda runner, feed: 2.0 if "int8" in runner.where else 1.0)
    target = write_yaml(tmp_path / "guard.yaml", STRICT_TARGET.replace(
        "precision_fallback: false", "precision_fallback: false\ndrop_slower_quantized: true"))
    result = build(tiny_project(targets=[str(target), "x86-cpu"]), tmp_path / "out")
    guarded, plain = result.targets
    int8 = guarded.candidates[0]
    assert int8.status == "dropped" and int8.speedup == 0.5 and "not faster than fp32" in int8.message
    assert guarded.status == "ok" and guarded.fallbacks[0]["candidate"] == int8.id
    doc = json.loads((tmp_path / "out" / "tiny-strict-dev" / "bundle.json").read_text())
    assert [c["id"] for c in doc["candidates"]] == ["onnx-fp32"]
    shown = plain.candidates[0]  # x86-cpu does not ask to drop: kept, with its speed shown
    assert shown.status == "ok" and shown.speedup == 0.5


def test_precision_passes_run_in_parallel_with_the_same_result(tiny_project: Callable[..., Path],
                                                               tmp_path: Path) -> None:
    target = write_yaml(tmp_path / "many.yaml", STRICT_TARGET.replace(
        "  - {format: onnx, precision: fp32}",
        "  - {format: onnx, precision: fp32}\n  - {format: onnx, precision: fp16}\n"
        "  - {format: onnx, precision: int8, quantization: {mode: dynamic}}"))
    manifest = tiny_project(targets=[str(target)])
    serial = build(manifest, tmp_path / "serial", jobs=1)
    parallel = build(manifest, tmp_path / "parallel", jobs=2)
    assert serial.parallel == {} and parallel.parallel["workers"] == 2, parallel.parallel
    assert parallel.parallel["passes"] == ["onnx-fp16", "onnx-int8-dynamic", "onnx-int8-static"]
    assert parallel.parallel["conversions"] == []
    for name in ("tiny.fp16.onnx", "tiny.int8-dynamic.onnx", "tiny.int8-static.onnx", "tiny.fp32.onnx"):
        assert sha(tmp_path / "serial" / "tiny-strict-dev" / "models" / name) == \
            sha(tmp_path / "parallel" / "tiny-strict-dev" / "models" / name)
    assert (tmp_path / "serial" / "tiny-strict-dev" / "bundle.json").read_bytes() == \
        (tmp_path / "parallel" / "tiny-strict-dev" / "bundle.json").read_bytes()


MIXED_TARGET = """\
name: mixed-dev
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: tflite, precision: fp32}
  - {format: torchscript, precision: fp32}
  - {format: onnx, precision: int8, quantization: {mode: dynamic}}
  - {format: onnx, precision: fp32}
requirements:
  common: [numpy==2.2.6]
  tflite: [ai-edge-litert==2.3.0]
  onnxruntime: [onnxruntime==1.22.1]
  torchscript: [torch==2.13.0]
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="needs the [tflite-torch] extra")
def test_conversions_run_in_workers_with_the_same_bytes(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    """-j 2 sends the TFLite and TorchScript conversions to worker processes (which load the
    model themselves) while this one exports ONNX: the bundle is byte-for-byte the serial one."""
    target = write_yaml(tmp_path / "mixed.yaml", MIXED_TARGET)
    manifest = tiny_project(targets=[str(target)])
    serial = build(manifest, tmp_path / "serial", jobs=1)
    parallel = build(manifest, tmp_path / "parallel", jobs=2)
    assert serial.ok and parallel.ok
    assert parallel.parallel["conversions"] == ["tflite-fp32", "torchscript-fp32"]
    assert parallel.parallel["passes"] == ["onnx-int8-dynamic"]
    assert sha(tmp_path / "serial" / "tiny-mixed-dev.tar.gz") == sha(tmp_path / "parallel" / "tiny-mixed-dev.tar.gz")
    auto = build(manifest, tmp_path / "auto", jobs=None)  # a tiny model: not worth a worker
    assert auto.parallel.get("conversions", []) == []
