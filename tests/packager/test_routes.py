"""Every cell of the conversion table, through whole builds of small real models built in code.

Supported cells (torch -> onnx/torchscript/tflite, tensorflow -> onnx/tflite, onnx -> onnx/tflite/torchscript)
must build with parity asserted numerically; unsupported cells (tensorflow -> torchscript) must be reported
per candidate with a clear reason, without stopping the other candidates. (onnx -> tflite runs onnx2tf from
its own environment: tests/packager/steps/test_onnx_tflite_step.py covers it in depth.) Builds are few and
shared (module-scoped): each costs seconds.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from packager.pipeline import build
from packager.results import BuildResult, CandidateResult, TargetResult

from ..conftest import TINY_MODEL, tiny_manifest, write_yaml
from .test_passes import old_style_model

pytestmark = pytest.mark.slow

# -- targets --------------------------------------------------------------------------------------

TORCH_X86 = """\
name: routes-x86
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: onnx, precision: fp32}
  - {format: onnx, precision: fp16}
  - {format: onnx, precision: int8, quantization: {mode: dynamic}}
  - {format: onnx, precision: int8, quantization: {mode: static}}
  - {format: torchscript, precision: fp32}
  - {format: torchscript, precision: int8, quantization: {mode: dynamic}}
  - {format: torchscript, precision: fp16}
  - {id: ts-int8-static, format: torchscript, precision: int8, quantization: {mode: static}}
  - {format: tflite, precision: fp32}
  - {format: tflite, precision: int8, quantization: {mode: static}, io: int8}
  - {id: tfl-int8-dynamic, format: tflite, precision: int8, quantization: {mode: dynamic}}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, torch==2.13.0]
"""

TORCH_ARM = """\
name: routes-arm
arch: aarch64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: torchscript, precision: int8, quantization: {mode: dynamic}}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, torch==2.13.0]
"""

TF_TARGET = """\
name: routes-tf
arch: aarch64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: onnx, precision: fp32}
  - {format: onnx, precision: int8, quantization: {mode: static}}
  - {format: tflite, precision: fp32}
  - {format: tflite, precision: fp16}
  - {format: tflite, precision: int8, quantization: {mode: dynamic}}
  - {format: tflite, precision: int8, quantization: {mode: static}}
  - {format: tflite, precision: int8, quantization: {mode: static}, io: int8}
  - {format: torchscript, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==2.3.0]
"""

ONNX_TARGET = """\
name: routes-onnx
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: tflite, precision: fp32}
  - {format: onnx, precision: fp32}
  - {format: torchscript, precision: fp32}
  - {format: onnx, precision: int8, quantization: {mode: dynamic}}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""

# torch -> TFLite goes through the optional litert-torch: without it the cell is "unsupported"
HAVE_LITERT_TORCH = importlib.util.find_spec("litert_torch") is not None
# litert-torch's int8 dynamic is refused (wrong results): the route's fallback, onnx2tf on the
# exported ONNX model, makes that candidate instead
TORCH_OK = ["onnx-fp32", "onnx-fp16", "onnx-int8-dynamic", "onnx-int8-static", "torchscript-fp32",
            "torchscript-int8-dynamic", "torchscript-fp16", "tflite-fp32", "tflite-int8-static-int8io",
            "tfl-int8-dynamic"]
TF_OK = ["onnx-fp32", "onnx-int8-static", "tflite-fp32", "tflite-fp16", "tflite-int8-dynamic",
         "tflite-int8-static", "tflite-int8-static-int8io"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "tflite": ".tflite"}

# -- helpers --------------------------------------------------------------------------------------


def write_manifest(folder: Path, **overrides: Any) -> Path:
    """The same manifest as conftest's tiny_project, in a folder of our own (module-scoped builds)."""
    return tiny_manifest(folder, **overrides)


def by_id(target: TargetResult) -> dict[str, CandidateResult]:
    return {c.id: c for c in target.candidates}


def target_named(result: BuildResult, name: str) -> TargetResult:
    return next(t for t in result.targets if t.target == name)


def bundle_doc(bundle_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(bundle_dir) / "bundle.json").read_text())


def assert_parity(c: CandidateResult) -> None:
    """ok, parity passed, and the numbers within the bounds of its precision."""
    assert c.status == "ok", (c.id, c.status, c.message)
    assert c.parity is not None and c.parity.passed, (c.id, c.parity and c.parity.to_dict())
    assert c.parity.outputs, c.id
    for o in c.parity.outputs:
        assert o.passed, (c.id, o.failures)
        if c.precision == "fp32":
            assert o.max_abs is not None and o.max_abs < 1e-4, (c.id, o.max_abs)
        else:
            assert o.cosine is not None and o.cosine > 0.98, (c.id, o.cosine)
        assert o.top1 is None or o.top1 >= 0.95, (c.id, o.top1)


def verify_all(bundle_dir: str | Path) -> dict[str, Any]:
    """`python -m runtime verify --all --json` run from inside the bundle, as on the device."""
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", "--all", "--json"],
                          cwd=bundle_dir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return json.loads(proc.stdout)


# -- builds (one per source) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, Path]:
    folder = tmp_path_factory.mktemp("torch-routes")
    (folder / "tiny.py").write_text(TINY_MODEL)
    x86 = write_yaml(folder / "routes-x86.yaml", TORCH_X86)
    arm = write_yaml(folder / "routes-arm.yaml", TORCH_ARM)
    manifest = write_manifest(folder, targets=[str(x86), str(arm)])
    return build(manifest, folder / "out"), folder / "out"


# A small Keras classifier trained in code (a second or two) on a 4-class toy task. Trained, not
# random: an untrained model's logits nearly tie, so int8 rounding flips top-1 on a few golden
# samples whatever the converter does. Conv2D(8) makes the Dense kernel 6*6*8*4 = 1152 weights,
# above TFLite's 1024-element threshold for dynamic range quantization, so int8 dynamic really
# quantizes something.
TRAINED_KERAS_MODEL = '''
import numpy as np
import keras


def _data(n, seed):
    """4 classes: which quadrant of a 6x6 image is bright, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    x = 0.15 * rng.random((n, 6, 6, 1)).astype(np.float32)
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 2)
        x[i, 3 * r:3 * r + 3, 3 * c:3 * c + 3, 0] += 0.6 + 0.3 * rng.random()
    return x.astype(np.float32), labels


def build(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(6, 6, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4, name="scores")(x)
    model = keras.Model(inp, out)
    x, y = _data(256, seed)
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    return model


def samples(n=48):
    yield {"image": _data(n, 7)[0]}
'''


@pytest.fixture(scope="module")
def tf_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, Path]:
    pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("tf-routes")
    (folder / "kmodel.py").write_text(TRAINED_KERAS_MODEL)
    target = write_yaml(folder / "routes-tf.yaml", TF_TARGET)
    manifest = write_manifest(
        folder, name="kt", source={"framework": "tensorflow", "entry": "kmodel.py:build"},
        inputs=[{"name": "image", "dtype": "float32", "shape": ["batch", 6, 6, 1], "layout": "NHWC"}],
        outputs=["scores"], calibration={"entry": "kmodel.py:samples", "samples": 48},
        targets=[str(target)])
    return build(manifest, folder / "out"), folder / "out"


@pytest.fixture(scope="module")
def onnx_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, Path]:
    from .convert.onnx_models import onnx2tf_env
    onnx2tf_env()  # onnx -> tflite: skipped without the converter environment (a failure under CI)
    folder = tmp_path_factory.mktemp("onnx-routes")
    onnx.save(old_style_model(), str(folder / "old.onnx"))
    target = write_yaml(folder / "routes-onnx.yaml", ONNX_TARGET)
    manifest = write_manifest(
        folder, name="ox", source={"framework": "onnx", "path": "old.onnx"},
        inputs=[{"name": "x", "dtype": "float32", "shape": ["batch", 8]}], outputs=["y"],
        calibration={"random": True, "samples": 32}, targets=[str(target)])
    return build(manifest, folder / "out"), folder / "out"


# -- torch ----------------------------------------------------------------------------------------


def test_torch_supported_cells_build_with_parity(torch_build: tuple[BuildResult, Path]) -> None:
    result, _ = torch_build
    x86 = target_named(result, "routes-x86")
    assert x86.status == "ok", (x86.message, [(c.id, c.status, c.message) for c in x86.candidates])
    cands = by_id(x86)
    assert [c.id for c in x86.candidates if c.status == "ok"] == TORCH_OK
    for cid in TORCH_OK:
        assert_parity(cands[cid])


def test_torch_unsupported_cells_are_reported_not_fatal(torch_build: tuple[BuildResult, Path]) -> None:
    result, out = torch_build
    x86 = target_named(result, "routes-x86")
    cands = by_id(x86)
    assert HAVE_LITERT_TORCH, "litert-torch (edgepack[tflite-torch]) makes PyTorch TFLite"
    assert_parity(cands["tflite-fp32"])
    assert "fallback_from" not in (cands["tflite-fp32"].notes[0] if cands["tflite-fp32"].notes else "")
    static = cands["ts-int8-static"]
    assert static.status == "unsupported" and "dynamic quantization" in static.message
    dyn = cands["tfl-int8-dynamic"]  # litert-torch's PT2E dynamic int8 computes garbage: refused, then onnx2tf
    assert dyn.status == "ok" and "wrong results" in dyn.notes[0] and "onnx2tf" in dyn.notes[0], dyn.notes
    assert any("tfl-int8-dynamic" in w and "from the exported ONNX model" in w for w in result.warnings)
    # unsupported routes are skipped, not failures: the target is ok and says what it skipped
    assert x86.status == "ok" and "skipped" in x86.message and "ts-int8-static" in x86.message
    doc = bundle_doc(out / "tiny-routes-x86")
    assert sorted((s["candidate"], s["status"]) for s in doc["skipped"]) == [("ts-int8-static", "unsupported")]
    entry = next(c for c in doc["candidates"] if c["id"] == "tfl-int8-dynamic")
    assert "onnx2tf" in entry["converter"] and "wrong results" in entry["conversion"]["fallback_from"]
    assert "ts-int8-static" not in [c["id"] for c in doc["candidates"]]


def test_torch_bundle_json_entries(torch_build: tuple[BuildResult, Path]) -> None:
    _, out = torch_build
    doc = bundle_doc(out / "tiny-routes-x86")
    entries = {c["id"]: c for c in doc["candidates"]}
    assert list(entries) == TORCH_OK
    for cid, c in entries.items():
        assert c["format"] == {"tfl": "tflite"}.get(cid.split("-")[0], cid.split("-")[0])
        assert c["file"].endswith(SUFFIX[c["format"]]), c["file"]
        assert (out / "tiny-routes-x86" / c["file"]).is_file()
        assert c["file"] in doc["files"]
        assert c["parity"]["passed"] is True
    # distinct variants get distinct files (fp32 .onnx vs fp32 .pt etc.)
    assert len({c["file"] for c in entries.values()}) == len(entries)
    assert entries["torchscript-int8-dynamic"]["quantized_engine"] == "x86"
    assert entries["torchscript-int8-dynamic"]["quantization"]["mode"] == "dynamic"
    assert "quantized_engine" not in entries["torchscript-fp32"]
    assert "quantized_engine" not in entries["torchscript-fp16"]
    assert "io_map" not in entries["onnx-fp32"]
    assert entries["torchscript-fp32"]["converter"] == "torch.jit.trace"
    assert entries["onnx-int8-static"]["converter"] == "torch.onnx.export(dynamo=True) + int8-static"
    # the precisions really happened: int8 onnx has quantize ops, fp16 onnx float16 weights
    root = out / "tiny-routes-x86"
    ops = {cid: {n.op_type for n in onnx.load(str(root / entries[cid]["file"])).graph.node}
           for cid in ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static")}
    assert not any("Quantize" in op for op in ops["onnx-fp32"])
    assert any("Quantize" in op for op in ops["onnx-int8-dynamic"]), ops["onnx-int8-dynamic"]
    assert "QuantizeLinear" in ops["onnx-int8-static"], ops["onnx-int8-static"]
    fp16 = onnx.load(str(root / entries["onnx-fp16"]["file"]))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in fp16.graph.initializer)


def test_torchscript_int8_engine_follows_each_targets_cpu(torch_build: tuple[BuildResult, Path]) -> None:
    result, out = torch_build
    arm = target_named(result, "routes-arm")
    assert arm.status == "ok", [(c.id, c.status, c.message) for c in arm.candidates]
    for c in arm.candidates:
        assert_parity(c)
    arm_doc, x86_doc = bundle_doc(out / "tiny-routes-arm"), bundle_doc(out / "tiny-routes-x86")
    arm_ts = next(c for c in arm_doc["candidates"] if c["id"] == "torchscript-int8-dynamic")
    x86_ts = next(c for c in x86_doc["candidates"] if c["id"] == "torchscript-int8-dynamic")
    assert arm_ts["quantized_engine"] == "qnnpack" and x86_ts["quantized_engine"] == "x86"
    # each engine has its own artifact: the arm bundle's file is not the x86 one
    assert arm_ts["file"] != x86_ts["file"]
    assert "qnnpack" in arm_ts["file"] and "x86" in x86_ts["file"]
    assert ((out / "tiny-routes-arm" / arm_ts["file"]).read_bytes()
            != (out / "tiny-routes-x86" / x86_ts["file"]).read_bytes())
    # the shared fp32 onnx artifact is the same file in both bundles
    arm_fp32 = next(c for c in arm_doc["candidates"] if c["id"] == "onnx-fp32")
    x86_fp32 = next(c for c in x86_doc["candidates"] if c["id"] == "onnx-fp32")
    assert arm_fp32["file"] == x86_fp32["file"]
    assert arm_doc["files"][arm_fp32["file"]]["sha256"] == x86_doc["files"][x86_fp32["file"]]["sha256"]
    assert arm_doc["target"]["arch"] == "aarch64" and x86_doc["target"]["arch"] == "x86_64"


def test_torch_bundle_verifies_on_the_runtime_cli(torch_build: tuple[BuildResult, Path]) -> None:
    _, out = torch_build
    doc = verify_all(out / "tiny-routes-x86")
    assert doc["ok"] and doc["passed"]
    assert [c["candidate"] for c in doc["candidates"]] == TORCH_OK
    assert all(c["passed"] for c in doc["candidates"]), [c for c in doc["candidates"] if not c["passed"]]


# -- tensorflow -----------------------------------------------------------------------------------


def test_tensorflow_supported_cells_build_with_parity(tf_build: tuple[BuildResult, Path]) -> None:
    result, _ = tf_build
    (t,) = result.targets
    assert t.status == "ok", (t.message, [(c.id, c.status, c.message) for c in t.candidates])
    assert [c.id for c in t.candidates if c.status == "ok"] == TF_OK
    cands = by_id(t)
    for cid in TF_OK:
        assert_parity(cands[cid])


def test_tensorflow_to_torchscript_is_unsupported(tf_build: tuple[BuildResult, Path]) -> None:
    result, out = tf_build
    (t,) = result.targets
    ts = by_id(t)["torchscript-fp32"]
    assert ts.status == "unsupported" and "PyTorch's format" in ts.message and "TensorFlow" in ts.message
    assert t.status == "ok" and "torchscript-fp32" in t.message
    doc = bundle_doc(out / "kt-routes-tf")
    assert [(s["candidate"], s["status"]) for s in doc["skipped"]] == [("torchscript-fp32", "unsupported")]


def test_tensorflow_bundle_json_entries(tf_build: tuple[BuildResult, Path]) -> None:
    _, out = tf_build
    root = out / "kt-routes-tf"
    doc = bundle_doc(root)
    entries = {c["id"]: c for c in doc["candidates"]}
    assert list(entries) == TF_OK
    for cid, c in entries.items():
        assert c["format"] == {"tfl": "tflite"}.get(cid.split("-")[0], cid.split("-")[0])
        assert c["file"].endswith(SUFFIX[c["format"]]) and (root / c["file"]).is_file()
        assert c["parity"]["passed"] is True
        if c["format"] == "tflite":
            assert c["io_map"] == {"inputs": {"image": "image"}, "outputs": {"scores": "output_0"}}, cid
        else:
            assert "io_map" not in c, cid
    assert len({c["file"] for c in entries.values()}) == len(entries)
    assert entries["tflite-int8-static-int8io"]["quantization"]["mode"] == "static"
    assert entries["tflite-int8-dynamic"]["quantization"]["mode"] == "dynamic"
    assert doc["signature"]["inputs"][0]["layout"] == "NHWC"
    assert entries["tflite-fp32"]["converter"].startswith("tf.lite.TFLiteConverter")
    # the precisions really happened: smaller weights, and int8 I/O tensors only where asked
    size = {cid: c["size"] for cid, c in entries.items()}
    for cid in ("tflite-fp16", "tflite-int8-dynamic", "tflite-int8-static", "tflite-int8-static-int8io"):
        assert size[cid] < size["tflite-fp32"], size
    assert size["tflite-int8-dynamic"] < size["tflite-fp16"], size
    from ai_edge_litert.interpreter import Interpreter
    for cid, dtype in (("tflite-int8-static", np.float32), ("tflite-int8-static-int8io", np.int8)):
        runner = Interpreter(model_path=str(root / entries[cid]["file"])).get_signature_runner()
        assert runner.get_input_details()["image"]["dtype"] == dtype, cid
        assert runner.get_output_details()["output_0"]["dtype"] == dtype, cid


def test_tensorflow_bundle_verifies_on_the_runtime_cli(tf_build: tuple[BuildResult, Path]) -> None:
    _, out = tf_build
    doc = verify_all(out / "kt-routes-tf")
    assert doc["ok"] and doc["passed"]
    assert [c["candidate"] for c in doc["candidates"]] == TF_OK
    assert all(c["passed"] for c in doc["candidates"]), [c for c in doc["candidates"] if not c["passed"]]


# -- onnx -----------------------------------------------------------------------------------------


def test_onnx_source_cells(onnx_build: tuple[BuildResult, Path]) -> None:
    result, out = onnx_build
    (t,) = result.targets
    cands = by_id(t)
    # onnx -> tflite (onnx2tf), onnx -> TorchScript (edgepack's op table) and onnx -> onnx build
    for cid in ("tflite-fp32", "onnx-fp32", "torchscript-fp32", "onnx-int8-dynamic"):
        assert_parity(cands[cid])
    assert t.status == "ok" and result.ok
    doc = bundle_doc(out / "ox-routes-onnx")
    assert [c["id"] for c in doc["candidates"]] == ["tflite-fp32", "onnx-fp32", "torchscript-fp32", "onnx-int8-dynamic"]
    assert doc["candidates"][0]["converter"].startswith("onnx2tf 2.6.9")
    assert doc["candidates"][2]["converter"] == "edgepack onnx->torch + torch.jit.trace"
    assert doc["skipped"] == []


def test_torchscript_bytes_do_not_depend_on_earlier_conversions_in_the_process(tmp_path: Path) -> None:
    """TorchScript mangles a class it has compiled before (`___torch_mangle_N`); the packager
    converts with an empty class registry, so the second conversion equals the first."""
    from packager.config.manifest import load_manifest
    from packager.convert.torch_to_torchscript import to_torchscript
    from packager.sources import load_source

    (tmp_path / "tiny.py").write_text(TINY_MODEL)
    manifest = load_manifest(tiny_manifest(tmp_path))
    module = load_source(manifest).module  # type: ignore[attr-defined]
    feeds = {"x": np.zeros((1, 1, 4, 4), np.float32)}
    first, second = (to_torchscript(module, manifest, feeds, precision="fp32", arch="x86_64",
                                    method="trace").data for _ in range(2))
    assert first == second and b"___torch_mangle" not in second
