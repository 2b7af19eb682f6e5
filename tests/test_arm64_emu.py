"""Raspberry Pi bundles verified on aarch64: an emulated Python 3.11 (qemu-user + Debian arm64) with
exactly the bundle's requirements.txt installed as aarch64 wheels (scripts/arm64-emu.sh).

Emulation proves the aarch64 wheels install and compute the same; its timings mean nothing.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO

# skips elsewhere, FAILS under CI=true with this reason (tests/conftest.py): CI runs as root on x86-64
pytestmark = [pytest.mark.slow, pytest.mark.emulated,
              pytest.mark.skipif(platform.machine() != "x86_64" or os.geteuid() != 0,
                                 reason="the arm64 emulator (scripts/arm64-emu.sh) is set up with apt-get on an "
                                        f"x86-64 host, as root; this is {platform.machine()}, uid {os.geteuid()}")]

EMU = REPO / ".edgepack-cache" / "arm64-emu"
PI_CPU = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}
EXAMPLES = [("digits-cnn", "examples/digits/train.py"), ("digits-keras", "examples/keras_digits/train.py")]


@pytest.fixture(scope="module")
def pi_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sys
    out = tmp_path_factory.mktemp("pi")
    for name, train in EXAMPLES:
        subprocess.run([sys.executable, train], cwd=REPO, check=True, timeout=600)
        proc = subprocess.run([sys.executable, "-m", "packager", "build", f"manifests/{name}.yaml", "--target",
                               "rpi4", "--target", "rpi5", "--out", str(out), "-q"],
                              cwd=REPO, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


def emulator_for(requirements: Path) -> Path:
    """The emulated interpreter with exactly this requirements.txt installed (as aarch64 wheels)."""
    proc = subprocess.run(["sh", str(REPO / "scripts" / "arm64-emu.sh"), str(EMU), str(requirements)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, "the bundle's requirements must install on aarch64:\n" + proc.stderr[-3000:]
    assert "aarch64 3.11" in proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def on_pi(python: Path, cpu: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # HOME outside the bundle, as on a device (onnxruntime writes ~/.cache/Microsoft/...; inside the
    # bundle that would be an unlisted file and the next command would refuse the bundle)
    home = cwd.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "QEMU_CPU": cpu, "HOME": str(home)}
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("target", sorted(PI_CPU))
@pytest.mark.parametrize("name", [n for n, _ in EXAMPLES])
def test_every_candidate_verifies_on_emulated_pi(pi_bundles: Path, tmp_path: Path, name: str, target: str) -> None:
    bundle = tmp_path / f"{name}-{target}"
    shutil.copytree(pi_bundles / f"{name}-{target}", bundle)
    emulator = emulator_for(bundle / "requirements.txt")
    probe = on_pi(emulator, PI_CPU[target], bundle, "-c", "import platform; print(platform.machine())")
    assert probe.stdout.strip() == "aarch64", probe.stderr
    proc = on_pi(emulator, PI_CPU[target], bundle, "-m", "runtime", "verify", "--all", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    doc = json.loads((bundle / "bundle.json").read_text())
    checked = {c["candidate"]: c["passed"] for c in report["candidates"]}
    # every candidate whose aarch64 backend exists (LiteRT and onnxruntime both ship aarch64 wheels)
    assert checked == {c["id"]: True for c in doc["candidates"]}
    assert any(c["format"] == "tflite" for c in doc["candidates"]), "the Pi targets prefer TFLite int8"

    with np.load(bundle / "golden" / "inputs.npz") as g:
        np.save(tmp_path / "x.npy", g[g.files[0]][:3])
    run = on_pi(emulator, PI_CPU[target], bundle, "-m", "runtime", "run", "--input", str(tmp_path / "x.npy"),
                "--output", str(tmp_path / "y.npz"), "--json")
    assert run.returncode == 0, run.stderr
    with np.load(tmp_path / "y.npz") as y, np.load(bundle / "golden" / "outputs.npz") as g:
        out, ref = y[y.files[0]], g[g.files[0]][:3]
        assert out.shape == ref.shape and (out.argmax(1) == ref.argmax(1)).all()


def test_doctor_on_the_emulated_pi_finds_nothing_to_fix(pi_bundles: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "digits-cnn-rpi4"
    shutil.copytree(pi_bundles / "digits-cnn-rpi4", bundle)
    emulator = emulator_for(bundle / "requirements.txt")
    proc = on_pi(emulator, PI_CPU["rpi4"], bundle, "-m", "runtime", "doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # arch, Python and every pin match
    report = json.loads(proc.stdout)
    text = json.dumps(report)
    assert "aarch64" in text and "Cortex-A72" in text
    tune = on_pi(emulator, PI_CPU["rpi4"], bundle, "-m", "runtime", "tune", "--json", "--no-write")
    assert tune.returncode == 0, tune.stderr
    assert json.loads(tune.stdout)["emulated"] is True, "emulated timings are flagged, never passed off as a Pi's"
