"""End to end on the Keras example: TFLite full int8 for the Pi, ONNX through tf2onnx for x86, and the
Pi bundle verified where only numpy and LiteRT can be imported."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import build_example
from .device_env import LITERT, verify_on_device

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example(tmp_path_factory.mktemp("dist"), "examples/keras_digits/train.py",
                         "manifests/digits-keras.yaml")


def test_formats_and_accuracy_per_artifact(built: Path) -> None:
    pi = json.loads((built / "digits-keras-rpi4" / "bundle.json").read_text())
    assert [c["id"] for c in pi["candidates"]] == ["tflite-int8-static-int8io", "onnx-int8-static-pc", "onnx-fp32"]
    acc = {c["id"]: c["accuracy"] for c in pi["candidates"]}
    assert acc["onnx-fp32"] > 0.95
    assert acc["tflite-int8-static-int8io"] >= acc["onnx-fp32"] - 0.01
    tfl = pi["candidates"][0]
    assert tfl["file"].endswith(".tflite") and tfl["io_map"]["inputs"] == {"image": "image"}
    assert pi["signature"]["inputs"][0]["layout"] == "NHWC"
    assert "ai-edge-litert==2.3.0" in (built / "digits-keras-rpi4" / "requirements.txt").read_text()
    x86 = json.loads((built / "digits-keras-x86-cpu" / "bundle.json").read_text())
    assert [c["id"] for c in x86["candidates"]] == ["onnx-int8-static-pc", "onnx-fp32"]
    assert x86["skipped"] == [{"candidate": "torchscript-fp32", "status": "unsupported",
                               "reason": x86["skipped"][0]["reason"]}]
    assert "tf2onnx" in x86["provenance"]["exporter"]


def test_pi_bundle_verified_with_only_litert(built: Path, tmp_path: Path) -> None:
    report = verify_on_device(built / "digits-keras-rpi4", tmp_path, LITERT, "ai_edge_litert")
    assert report["passed"] and report["candidates"][0]["candidate"] == "tflite-int8-static-int8io"
