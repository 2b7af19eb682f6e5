"""End to end on the shipped example: train, build, then verify the bundle where only numpy and
onnxruntime can be imported (no packager, torch or onnxsim) - the bundle must stand alone."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, build_example
from .device_env import (
    LITERT,
    ONNXRUNTIME,
    PILLOW,
    TORCH,
    importable,
    only_these_packages,
    run_isolated,
    verify_on_device,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example(tmp_path_factory.mktemp("dist"), "examples/digits/train.py", "manifests/digits-cnn.yaml")


def test_int8_accuracy_within_one_point_of_fp32(built: Path) -> None:
    doc = json.loads((built / "digits-cnn-rpi4" / "bundle.json").read_text())
    fp32 = next(c["accuracy"] for c in doc["candidates"] if c["precision"] == "fp32")
    int8 = {c["id"]: c["accuracy"] for c in doc["candidates"] if c["precision"] == "int8"}
    assert fp32 > 0.95, "the example model is trained properly"
    assert int8 and all(a >= fp32 - 0.01 for a in int8.values()), int8
    assert abs(fp32 - doc["evaluation"]["reference_accuracy"]) < 1e-9


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="litert-torch not installed")
def test_tflite_from_torch_verified_with_only_litert(built: Path, tmp_path: Path) -> None:
    report = verify_on_device(built / "digits-cnn-rpi4", tmp_path, LITERT, "ai_edge_litert")
    assert report["passed"] and report["candidates"][0]["candidate"] == "tflite-int8-static-int8io"


def test_bundle_stands_alone_on_the_device(built: Path, tmp_path: Path) -> None:
    device = tmp_path / "device"
    device.mkdir()
    bundle = device / "digits-cnn-rpi4"
    shutil.copytree(built / "digits-cnn-rpi4", bundle)
    site = only_these_packages(tmp_path / "site", ONNXRUNTIME)
    assert importable(bundle, site) == ["onnxruntime"]
    verify = run_isolated(bundle, site, "-m", "runtime", "verify", "--json")
    assert verify.returncode == 0, verify.stderr + verify.stdout
    report = json.loads(verify.stdout)
    assert report["passed"] is True
    # no Pillow here: tensor parity still counts, and the end-to-end check says it did not run and why
    e2e = report["candidates"][0]["end_to_end"]
    assert e2e["checked"] is False and "needs Pillow" in e2e["why"] and "pip install pillow" in e2e["why"]
    verify_all = run_isolated(bundle, site, "-m", "runtime", "verify", "--all")
    assert verify_all.returncode == 0 and "onnx-fp32" in verify_all.stdout


def test_run_on_the_archive_matches_golden(built: Path, tmp_path: Path) -> None:
    site = only_these_packages(tmp_path / "site", ONNXRUNTIME)
    with np.load(built / "digits-cnn-x86-cpu" / "golden" / "inputs.npz") as g:
        np.save(tmp_path / "x.npy", g["image"][:8])
    with np.load(built / "digits-cnn-x86-cpu" / "golden" / "outputs.npz") as g:
        expected = g["logits"][:8]
    runtime_copy = tmp_path / "rt"
    shutil.copytree(built / "digits-cnn-x86-cpu" / "runtime", runtime_copy / "runtime")
    proc = run_isolated(runtime_copy, site, "-m", "runtime", "run", str(built / "digits-cnn-x86-cpu.tar.gz"),
                        "--prefer", "onnx-fp32", "--input", str(tmp_path / "x.npy"),
                        "--output", str(tmp_path / "y.npz"))
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "y.npz") as y:
        np.testing.assert_allclose(y["logits"], expected, atol=1e-4, rtol=1e-3)


def test_tampered_bundle_is_refused_on_the_device(built: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(built / "digits-cnn-rpi4", bundle)
    (bundle / "runtime" / "compare.py").write_text((bundle / "runtime" / "compare.py").read_text() + "\n# x\n")
    site = only_these_packages(tmp_path / "site", ONNXRUNTIME)
    proc = run_isolated(bundle, site, "-m", "runtime", "verify")
    assert proc.returncode == 2 and "runtime/compare.py" in proc.stderr and "Traceback" not in proc.stderr


def test_torchscript_candidate_verified_with_only_torch(built: Path, tmp_path: Path) -> None:
    report = verify_on_device(built / "digits-cnn-x86-cpu", tmp_path, TORCH, "torch")
    assert report["passed"] and report["candidates"][0]["candidate"] == "torchscript-fp32"


WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_png_in_label_out_on_the_device(built: Path, tmp_path: Path) -> None:
    """numpy + onnxruntime + Pillow: golden PNGs checked end to end, and PNG files classified."""
    bundle = tmp_path / "device" / "digits-cnn-rpi4"
    shutil.copytree(built / "digits-cnn-rpi4", bundle)
    site = only_these_packages(tmp_path / "site", ONNXRUNTIME + PILLOW)
    verify = run_isolated(bundle, site, "-m", "runtime", "verify", "--prefer", "onnx-int8-static-pc", "--json")
    assert verify.returncode == 0, verify.stderr + verify.stdout
    e2e = json.loads(verify.stdout)["candidates"][0]["end_to_end"]
    assert e2e["passed"] and e2e["samples"] == 64 and e2e["preprocess"]["max_abs"] == 0.0
    pngs = sorted((REPO / "examples" / "digits" / "images").glob("*.png"))
    assert len(pngs) == 64
    args = [a for p in pngs for a in ("--input", str(p))]
    run = run_isolated(bundle, site, "-m", "runtime", "run", "--prefer", "onnx-int8-static-pc", *args, "--json")
    assert run.returncode == 0, run.stderr
    top = json.loads(run.stdout)["outputs"]["logits"]["top_k"]
    truth = [WORDS[int(p.stem[-1])] for p in pngs]  # 000-digit2.png: a two
    assert len(top) == 64 and all(len(row) == 3 for row in top)
    right = sum(row[0]["label"] == want for row, want in zip(top, truth, strict=True))
    assert right >= 61, f"{right} of 64 PNGs classified right"
    text = run_isolated(bundle, site, "-m", "runtime", "run", "--input", str(pngs[0]))
    assert text.returncode == 0 and f"sample 0: {truth[0]} " in text.stdout, text.stdout + text.stderr
