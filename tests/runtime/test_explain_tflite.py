"""The per-op table of a TFLite int8 candidate, against its float twin (the fp32 TFLite the same
converter makes), on the build host and on the device (``verify --explain``). A Keras classifier
with a 1000-way softmax over untrained logits: TFLiteConverter's int8 rounds every probability to
zero, parity fails, and both tables start at the SOFTMAX. The bundle carries no probe model for
TFLite (LiteRT reads the candidate's own intermediate tensors), only the float references."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.bundle import open_bundle
from runtime.tflite_tensors import feed, interpreter, tensors

from ..conftest import REPO, write_yaml

tf = pytest.importorskip("tensorflow")

SOFTMAX_KERAS = '''
import numpy as np
import keras


def build():
    keras.utils.set_random_seed(3)
    inp = keras.Input(shape=(8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(1000, activation="softmax", name="probs")(x)  # untrained: near-uniform
    return keras.Model(inp, out)


def samples(n=64):
    yield {"image": np.random.default_rng(5).random((n, 8, 8, 3)).astype(np.float32)}
'''

TARGET = """\
name: explain-tflite
arch: aarch64
python: "3.11"
threads: 1
explain_bytes: 4000000
candidates:
  - {id: tfl-int8, format: tflite, precision: int8, quantization: {mode: static}}
  - {id: onnx-fp32, format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==2.3.0]
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    from packager import build
    folder = tmp_path_factory.mktemp("explain-tflite")
    (folder / "knet.py").write_text(SOFTMAX_KERAS)
    target = write_yaml(folder / "target.yaml", TARGET)
    manifest = write_yaml(folder / "knet.yaml", f"""\
        name: knet
        source: {{framework: tensorflow, entry: knet.py:build}}
        inputs: [{{name: image, dtype: float32, shape: [batch, 8, 8, 3], layout: NHWC}}]
        outputs: [probs]
        calibration: {{entry: knet.py:samples, samples: 64}}
        golden: {{samples: 16}}
        targets: [{target}]
        """)
    result = build(manifest, folder / "out", allow_parity_failure=True)
    [t] = result.targets
    return {c.id: c for c in t.candidates}, Path(t.bundle_dir)


def test_the_build_explains_the_failing_int8_against_its_float_twin(built: tuple[dict[str, object], Path]) -> None:
    cands, _ = built
    tfl = cands["tfl-int8"]
    assert tfl.status == "parity-failed-allowed" and not tfl.parity.passed  # kept (--allow-parity-failure)
    explained = tfl.explained
    assert explained is not None and "error" not in explained, explained
    first = explained["rows"][0]
    assert first["op_type"] == "SOFTMAX" and first["snr_db"] < 1.0 and first["added_db"] > 30, first


def test_the_bundle_carries_references_and_reads_the_candidate_itself(built: tuple[dict[str, object], Path]) -> None:
    _, bundle = built
    doc = json.loads((bundle / "bundle.json").read_text())
    entry = next(c for c in doc["candidates"] if c["id"] == "tfl-int8")
    record = entry["explain"]
    assert entry["converter"].startswith("tf.lite.TFLiteConverter"), entry["converter"]  # not the ONNX route
    assert record["probe"] == entry["file"] and record["probe"].endswith(".tflite")  # no probe model
    assert sorted(p.name for p in (bundle / "explain").iterdir()) == ["tfl-int8.npz"]
    refs = np.load(bundle / record["references"])
    assert sorted(refs.files) == sorted(t["tensor"] for t in record["tensors"])
    assert all(refs[t["tensor"]].shape[0] == 4 for t in record["tensors"])  # one row per golden sample
    assert all(i < pos for pos, t in enumerate(record["tensors"]) for i in t["inputs"])
    assert "explain" not in next(c for c in doc["candidates"] if c["id"] == "onnx-fp32")
    open_bundle(bundle).verify()  # the references are in the bundle's hashes


def test_verify_explain_finds_the_softmax_on_the_device(built: tuple[dict[str, object], Path]) -> None:
    _, bundle = built
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", str(bundle), "--all", "--explain", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the int8 candidate fails parity here too
    explained = {c["candidate"]: c for c in json.loads(proc.stdout)["candidates"]}["tfl-int8"]["explained"]
    assert explained["starts"][0]["op_type"] == "SOFTMAX" and explained["starts"][0]["snr_db"] < 1.0
    assert explained["first_worse_than_host"] is None  # the same kernels as the build host's table
    for row in explained["rows"]:
        assert abs(row["snr_db"] - row["host_snr_db"]) < 0.01, row


def test_an_id_int32_cannot_hold_is_refused_not_wrapped(tmp_path: Path) -> None:
    module = tf.Module()
    module.double = tf.function(lambda ids: {"y": tf.cast(ids, tf.float32) * 2.0},
                                input_signature=[tf.TensorSpec([1, 3], tf.int32, name="ids")])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.double})
    data = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert()
    name = next(iter(interpreter(data).get_signature_runner().get_input_details()))
    ok = tensors(data, [], [{name: np.array([[1, 2, 3]], np.int64)}])
    assert ok == {}
    out = feed(interpreter(data), {name: np.array([[1, 2, 2**31 - 1]], np.int64)})
    assert np.asarray(next(iter(out.values()))).tolist() == [[2.0, 4.0, float(np.float32(2**31 - 1) * 2)]]
    with pytest.raises(ValueError, match="outside int32"):
        feed(interpreter(data), {name: np.array([[1, 2, 2**31]], np.int64)})
