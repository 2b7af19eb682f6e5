"""The ONNX -> TFLite route (OnnxToTflite) in whole builds: an ONNX-source model gets real TFLite
candidates at every precision, checked for parity through the runtime; rpi4 now tries its TFLite
first choice; and what cannot be had (no Python >= 3.12, a model onnx2tf cannot convert, an int8
model that misses parity) is reported per candidate with the reason, never a traceback.

Builds that convert need the onnx2tf environment (`edgepack converters install onnx2tf`): they
skip locally without it and fail under CI=true.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import runtime
from packager.config.manifest import load_manifest
from packager.config.targets import load_target
from packager.convert import converter_env
from packager.pipeline import build
from packager.results import BuildResult, CandidateResult
from packager.steps import ROUTES, route_for, step_key

from ...conftest import write_yaml
from ..convert.onnx_models import conv_net, fmod_net, no_python_env, onnx2tf_env, wide_softmax_net, write_project

pytestmark = pytest.mark.slow

TARGET = """\
name: tfl-all
arch: aarch64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: tflite, precision: fp32, providers: [XNNPACK]}
  - {format: tflite, precision: fp16, providers: [XNNPACK]}
  - {format: tflite, precision: int8, quantization: {mode: dynamic}, providers: [XNNPACK]}
  - {format: tflite, precision: int8, quantization: {mode: static}, providers: [XNNPACK]}
  - {format: tflite, precision: int8, quantization: {mode: static}, io: int8, providers: [XNNPACK]}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==2.3.0]
"""
TFLITE = ["tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-static", "tflite-int8-static-int8io"]


def by_id(result: BuildResult, target: str) -> dict[str, CandidateResult]:
    return {c.id: c for t in result.targets if t.target == target for c in t.candidates}


@pytest.fixture(scope="module")
def onnx_tflite_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, Path]:
    onnx2tf_env()
    folder = tmp_path_factory.mktemp("onnx-tflite")
    target = write_yaml(folder / "tfl-all.yaml", TARGET)
    manifest = write_project(folder / "project", conv_net(), [str(target), "rpi4"])
    return build(manifest, folder / "out"), folder / "out"


def test_every_tflite_precision_builds_from_an_onnx_model(onnx_tflite_build: tuple[BuildResult, Path]) -> None:
    result, out = onnx_tflite_build
    cands = by_id(result, "tfl-all")
    assert [c.id for c in cands.values() if c.status == "ok"] == TFLITE + ["onnx-fp32"], \
        [(c.id, c.status, c.message) for c in cands.values()]
    for cid in TFLITE:
        parity = cands[cid].parity
        assert parity is not None and parity.passed
        (scores,) = parity.outputs
        assert scores.max_abs is not None and scores.cosine is not None and scores.top1 == 1.0
        if cid == "tflite-fp32":
            assert scores.max_abs < 1e-5
        elif cid == "tflite-fp16":
            assert 1e-7 < scores.max_abs < 5e-3  # float16 weights: close, not exact
        else:
            assert scores.max_abs < 0.1 and scores.cosine > 0.999, (cid, scores.max_abs)
    size = {cid: cands[cid].size or 0 for cid in TFLITE}
    assert size["tflite-fp16"] < size["tflite-fp32"] and size["tflite-int8-static"] < size["tflite-fp16"], size
    doc = json.loads((out / "net-tfl-all" / "bundle.json").read_text())
    entries = {c["id"]: c for c in doc["candidates"]}
    for cid in TFLITE:
        c = entries[cid]
        assert c["converter"].startswith("onnx2tf 2.6.9 (own Python 3.1") and c["static_batch"] == 1
        assert c["io_map"]["inputs"] == {"image": "image"}
        assert c["conversion"]["converter_env"]["onnx2tf"] == "2.6.9"
        assert any("batch of 1" in n for n in c["notes"])
    assert entries["tflite-int8-static"]["io_map"]["outputs"] == {"scores": "scores"}
    for cid in ("tflite-int8-static", "tflite-int8-static-int8io"):
        assert ", float32; int8 by ai-edge-quantizer " in entries[cid]["converter"], entries[cid]["converter"]
    assert entries["tflite-int8-static-int8io"]["conversion"]["io"] == "int8 (quantized by the runtime)"


def test_the_bundle_runs_a_batch_on_the_device_runtime(onnx_tflite_build: tuple[BuildResult, Path]) -> None:
    """The runtime feeds the TFLite candidates the arrays the ONNX ones take (NCHW, same names),
    a batch of 5 one sample at a time, and `runtime verify` passes on-device."""
    _, out = onnx_tflite_build
    bundle = out / "net-tfl-all"
    x = np.random.default_rng(5).random((5, 3, 16, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(out.parent / "project" / "model.onnx")).run(None, {"image": x})[0]
    for cid, bound in (("tflite-fp32", 1e-5), ("tflite-fp16", 5e-3), ("tflite-int8-static-int8io", 0.15)):
        model = runtime.load(bundle, candidate=cid)
        got = model.run({"image": x})["scores"]
        model.close()
        assert got.shape == (5, 5) and float(np.abs(got - ref).max()) < bound, cid
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", "--all", "--json"], cwd=bundle,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(c["passed"] for c in json.loads(proc.stdout)["candidates"])


def test_rpi4_tries_its_tflite_first_choice_for_an_onnx_model(onnx_tflite_build: tuple[BuildResult, Path]) -> None:
    result, out = onnx_tflite_build
    cands = by_id(result, "rpi4")
    first = next(iter(cands.values()))
    assert first.id == "tflite-int8-static-int8io" and first.status == "ok", (first.status, first.message)
    doc = json.loads((out / "net-rpi4" / "bundle.json").read_text())
    assert doc["candidates"][0]["id"] == "tflite-int8-static-int8io"


PLAIN = """\
name: pi-plain
arch: aarch64
python: "3.11"
threads: 1
precision_fallback: true
candidates:
  - {format: tflite, precision: int8, quantization: {mode: static}, io: int8, providers: [XNNPACK]}
  - {format: onnx, precision: int8, quantization: {mode: static, per_channel: true}}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==2.3.0]
"""


def test_an_int8_model_that_misses_parity_falls_back_without_mixed(tmp_path: Path) -> None:
    """A 1000-way softmax of near-uniform probabilities (about 0.001 each) rounds to zero in int8:
    parity decides, and a target without fallback: mixed falls back to its next candidate with
    the numbers."""
    onnx2tf_env()
    target_file = write_yaml(tmp_path / "pi-plain.yaml", PLAIN)
    manifest = write_project(tmp_path / "project", wide_softmax_net(), [str(target_file)])
    result = build(manifest, tmp_path / "out")
    (target,) = result.targets
    cands = by_id(result, "pi-plain")
    tfl = cands["tflite-int8-static-int8io"]
    assert tfl.status == "dropped" and tfl.message and tfl.message.startswith("parity failed (")
    assert tfl.message.endswith("fell back to onnx-int8-static-pc")
    assert target.fallbacks[0]["candidate"] == "tflite-int8-static-int8io" and target.status == "ok"
    # where the error starts, per op of the int8 TFLite model against onnx2tf's float one
    explained = tfl.explained
    assert explained is not None and explained["rows"][0]["op_type"] == "SOFTMAX", explained
    assert explained["rows"][0]["snr_db"] < 1.0 and "fallback: mixed" in explained["hint"]
    doc = json.loads((Path(target.bundle_dir) / "bundle.json").read_text())
    assert all("per_op" not in (c.get("conversion") or {}) for c in doc["candidates"])  # the build's, not the bundle's
    from packager.debug_command import format_debug, run_debug
    debugged = run_debug(manifest, None, "tflite-int8-static-int8io", quiet=True)  # on demand, from the cache
    assert debugged["explained"]["rows"] == explained["rows"] and not debugged["parity"]["passed"]
    assert "SOFTMAX" in format_debug(debugged)


MIXED = """\
name: tfl-mixed
arch: aarch64
python: "3.11"
threads: 1
precision_fallback: true
candidates:
  - {format: tflite, precision: int8, quantization: {mode: static, fallback: mixed}, io: int8, providers: [XNNPACK]}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==2.3.0]
"""


def test_fallback_mixed_keeps_the_softmax_float_and_the_tflite_candidate_ships(tmp_path: Path) -> None:
    """The same softmax model plain int8 drops: the search localises the error on the golden
    samples, keeps the op that adds it in float, and the candidate passes the build's own parity.
    rpi4 (shipped with fallback: mixed) ships it as its first choice."""
    onnx2tf_env()
    target = write_yaml(tmp_path / "tfl-mixed.yaml", MIXED)
    result = build(write_project(tmp_path / "project", wide_softmax_net(), [str(target), "rpi4"]), tmp_path / "out")
    rpi4 = by_id(result, "rpi4")["tflite-int8-static-int8io"]
    rpi4_fallbacks = next(t for t in result.targets if t.target == "rpi4").fallbacks
    assert rpi4.status == "ok" and not [f for f in rpi4_fallbacks if f["candidate"] == rpi4.id], rpi4_fallbacks
    cand = by_id(result, "tfl-mixed")["tflite-int8-static-mixed-int8io"]
    assert cand.status == "ok", (cand.status, cand.message)
    assert cand.parity is not None and cand.parity.passed
    doc = json.loads((tmp_path / "out" / "net-tfl-mixed" / "bundle.json").read_text())
    entry = next(c for c in doc["candidates"] if c["id"] == "tflite-int8-static-mixed-int8io")
    mixed = entry["conversion"]["mixed"]
    rounds = mixed["rounds"]
    assert mixed["passed"] and not rounds[0]["passed"] and rounds[-1]["passed"], rounds
    kept = entry["conversion"]["kept_float"]
    assert 1 <= len(kept) == len(rounds) - 1 and kept == mixed["kept_float_added"]
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(tmp_path / "out" / "net-tfl-mixed" / entry["file"]))
    dtypes = {d["name"]: np.dtype(d["dtype"]).name for d in interp.get_tensor_details()}
    assert all(dtypes[name] == "float32" for name in kept), {n: dtypes[n] for n in kept}  # really float
    assert "int8" in dtypes.values()  # and the rest int8
    assert any(n.startswith("mixed precision: ") and "kept in float until parity held" in n
               for n in entry["notes"]), entry["notes"]


def test_a_model_onnx2tf_cannot_convert_is_reported_not_fatal(tmp_path: Path) -> None:
    onnx2tf_env()
    target = write_yaml(tmp_path / "tfl-all.yaml", TARGET)
    manifest = write_project(tmp_path / "project", fmod_net(), [str(target)],
                             calibration={"random": True, "samples": 16})
    result = build(manifest, tmp_path / "out")
    cands = by_id(result, "tfl-all")
    for cid in TFLITE:
        assert cands[cid].status == "unsupported", (cid, cands[cid].status, cands[cid].message)
        assert "onnx2tf cannot convert this model: NodeValidationError: Mod with fmod=1 is not supported" \
            in (cands[cid].message or ""), cands[cid].message
        assert "Traceback" not in (cands[cid].message or "")
    assert cands["onnx-fp32"].status == "ok" and result.ok


def test_without_python_312_the_candidate_is_unsupported_with_the_hint(tmp_path: Path) -> None:
    """No Python >= 3.12 anywhere (empty PATH, no pyenv, no converter environment): the build goes
    on, its TFLite candidates reported unsupported with the reason and how to fix it."""
    target = write_yaml(tmp_path / "tfl-all.yaml", TARGET)
    manifest = write_project(tmp_path / "project", conv_net(), [str(target)])
    proc = subprocess.run([sys.executable, "-m", "packager", "build", str(manifest), "--out", str(tmp_path / "out"),
                           "--json", "--no-cache"], env=no_python_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (target_doc,) = json.loads(proc.stdout)["targets"]
    cands = {c["id"]: c for c in target_doc["candidates"]}
    for cid in TFLITE:
        message = cands[cid]["message"]
        assert cands[cid]["status"] == "unsupported", (cid, cands[cid])
        assert "onnx2tf needs Python >= 3.12 in an environment of its own, and no usable Python >= 3.12 " \
               "was found" in message
        assert "pyenv install 3.12" in message and "EDGEPACK_PYTHON312=/path/to/python3.12" in message
    assert cands["onnx-fp32"]["status"] == "ok" and target_doc["status"] == "ok"


def test_the_converter_pin_is_part_of_the_artifact_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = load_manifest(write_project(tmp_path, conv_net(), ["x86-cpu"]))
    target = load_target(str(write_yaml(tmp_path / "tfl-all.yaml", TARGET)))
    spec = target.candidates[0]
    key, route = route_for("onnx", spec)
    assert key == ("onnx", "tflite", "fp32") and route.make.name == "tflite" and route.make.requires == "onnx"
    assert route.model_steps == ROUTES[("onnx", "onnx", "fp32")].model_steps  # shares the base model
    config: dict[str, Any] = route.make.config(manifest, spec, target)
    assert config["converter"] == "onnx2tf[tensorflow]==2.6.9"
    before = step_key(route.make.name, "base", config, route.make.tools)
    monkeypatch.setattr(converter_env, "ONNX2TF", dataclasses.replace(
        converter_env.ONNX2TF, version="2.7.0", requirement="onnx2tf[tensorflow]==2.7.0"))
    after = step_key(route.make.name, "base", route.make.config(manifest, spec, target), route.make.tools)
    assert before != after
