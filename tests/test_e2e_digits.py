"""End to end on the shipped example: train, build, then verify the bundle where only numpy and
onnxruntime can be imported (no packager, torch or onnxsim) - the bundle must stand alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def isolated_site(dest: Path) -> Path:
    """A folder with only numpy and onnxruntime linked in: the device's whole Python world."""
    import numpy
    site = Path(numpy.__file__).resolve().parent.parent
    dest.mkdir()
    for name in ("numpy", "numpy.libs", "onnxruntime"):
        if (site / name).exists():
            (dest / name).symlink_to(site / name)
    return dest


def device_python(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """python -S: no site-packages (so no editable packager, no torch), PYTHONPATH = the isolated site."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(site), "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    subprocess.run([sys.executable, "examples/digits/train.py"], cwd=REPO, check=True, timeout=600)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "packager", "build", "manifests/digits-cnn.yaml",
                           "--out", str(out), "--json"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


def test_int8_accuracy_within_one_point_of_fp32(built: Path) -> None:
    doc = json.loads((built / "digits-cnn-rpi4" / "bundle.json").read_text())
    acc = {c["precision"]: c["accuracy"] for c in doc["candidates"]}
    assert acc["fp32"] > 0.95, "the example model is trained properly"
    assert acc["int8"] >= acc["fp32"] - 0.01
    assert abs(acc["fp32"] - doc["evaluation"]["reference_accuracy"]) < 1e-9


def test_bundle_stands_alone_on_the_device(built: Path, tmp_path: Path) -> None:
    device = tmp_path / "device"
    device.mkdir()
    bundle = device / "digits-cnn-rpi4"
    shutil.copytree(built / "digits-cnn-rpi4", bundle)
    site = isolated_site(tmp_path / "site")
    probe = device_python(["-c", "import importlib.util as u; print([m for m in "
                           "('torch', 'packager', 'onnxsim', 'onnx', 'yaml') if u.find_spec(m)])"], bundle, site)
    assert probe.stdout.strip() == "[]", probe.stderr
    verify = device_python(["-m", "runtime", "verify", "--json"], bundle, site)
    assert verify.returncode == 0, verify.stderr + verify.stdout
    report = json.loads(verify.stdout)
    assert report["passed"] is True
    verify_all = device_python(["-m", "runtime", "verify", "--all"], bundle, site)
    assert verify_all.returncode == 0 and "onnx-fp32" in verify_all.stdout


def test_run_on_the_archive_matches_golden(built: Path, tmp_path: Path) -> None:
    site = isolated_site(tmp_path / "site")
    with np.load(built / "digits-cnn-x86-cpu" / "golden" / "inputs.npz") as g:
        np.save(tmp_path / "x.npy", g["image"][:8])
    with np.load(built / "digits-cnn-x86-cpu" / "golden" / "outputs.npz") as g:
        expected = g["logits"][:8]
    runtime_copy = tmp_path / "rt"
    shutil.copytree(built / "digits-cnn-x86-cpu" / "runtime", runtime_copy / "runtime")
    proc = device_python(["-m", "runtime", "run", str(built / "digits-cnn-x86-cpu.tar.gz"), "--prefer",
                          "onnx-fp32", "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npz")],
                         runtime_copy, site)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "y.npz") as y:
        np.testing.assert_allclose(y["logits"], expected, atol=1e-4, rtol=1e-3)


def test_tampered_bundle_is_refused_on_the_device(built: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(built / "digits-cnn-rpi4", bundle)
    (bundle / "runtime" / "compare.py").write_text((bundle / "runtime" / "compare.py").read_text() + "\n# x\n")
    site = isolated_site(tmp_path / "site")
    proc = device_python(["-m", "runtime", "verify"], bundle, site)
    assert proc.returncode == 2 and "runtime/compare.py" in proc.stderr and "Traceback" not in proc.stderr
