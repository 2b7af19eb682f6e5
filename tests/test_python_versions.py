"""The runtime runs on the Pythons devices ship (Pi OS: 3.11, JetPack 6: 3.10, newer boxes: 3.12):
a Pi bundle verified under each of them other than the host's own (the rest of the suite runs on
that one), with exactly the bundle's requirements.txt installed. A missing interpreter skips here
and fails under CI=true (tests/conftest.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, build_example

pytestmark = pytest.mark.slow
VENVS = REPO / ".edgepack-cache" / "pythons"
DEVICE_PYTHONS = ("3.10", "3.11", "3.12")
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def find_python(version: str) -> str | None:
    """An interpreter of that version: pyenv's (this machine has them), else one on PATH."""
    candidates = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    candidates += [Path(p) for p in [shutil.which(f"python{version}")] if p]
    for python in candidates:
        if subprocess.run([str(python), "-c", "import venv, ensurepip"], capture_output=True).returncode == 0:
            return str(python)
    return None


@pytest.fixture(scope="module")
def pi_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example(tmp_path_factory.mktemp("dist"), "examples/digits/train.py",
                         "manifests/digits-cnn.yaml") / "digits-cnn-rpi4"


@pytest.mark.parametrize("version", [v for v in DEVICE_PYTHONS if v != HOST_PYTHON])
def test_pi_bundle_verifies_on_other_pythons(pi_bundle: Path, tmp_path: Path, version: str) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"python{version} (with venv and ensurepip) is not installed here: install it, "
                    f"e.g. pyenv install {version}, so bundles are checked on every device Python")
    env = VENVS / version
    requirements = (pi_bundle / "requirements.txt").read_text()
    stamp = env / "requirements.txt"
    if not stamp.is_file() or stamp.read_text() != requirements:
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(env)], check=True, timeout=300)
        proc = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                               str(pi_bundle / "requirements.txt")], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"requirements.txt must install on Python {version}:\n{proc.stderr[-2000:]}"
        stamp.write_text(requirements)
    bundle = tmp_path / pi_bundle.name
    shutil.copytree(pi_bundle, bundle)
    proc = subprocess.run([str(env / "bin" / "python"), "-m", "runtime", "verify", "--all", "--json"], cwd=bundle,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["passed"] and len(report["candidates"]) == 3
    assert all(c["passed"] for c in report["candidates"])
    probe = subprocess.run([str(env / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == str(tuple(map(int, version.split(".")))), "the venv runs the Python asked for"
