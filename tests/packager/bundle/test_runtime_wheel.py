"""The runtime as its own wheel: installable with pip alone, and it verifies a bundle without the
packager or any framework but one backend."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packager.bundle.runtime_wheel import build_runtime_wheel
from packager.pipeline import build
from runtime import __version__

from ...device_env import ONNXRUNTIME, only_these_packages, run_isolated


def test_wheel_is_complete_reproducible_and_its_record_is_right(tmp_path: Path) -> None:
    first = build_runtime_wheel(tmp_path / "a")
    second = build_runtime_wheel(tmp_path / "b")
    assert first.name == f"edgepack_runtime-{__version__}-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        info = f"edgepack_runtime-{__version__}.dist-info"
        assert {"runtime/__init__.py", "runtime/__main__.py", "runtime/backends/onnxruntime.py",
                f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD"} <= set(names)
        assert not [n for n in names if "__pycache__" in n or n.startswith("packager/")]
        metadata = zf.read(f"{info}/METADATA").decode()
        assert "Requires-Dist: numpy" in metadata and 'extra == "onnxruntime"' in metadata
        rows = [line.split(",") for line in zf.read(f"{info}/RECORD").decode().splitlines()]
        assert sorted(r[0] for r in rows) == sorted(names)
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                continue
            data = zf.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data)


@pytest.mark.slow
def test_pip_installed_runtime_verifies_a_bundle_alone(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    assert build(tiny_project(), tmp_path / "dist").ok
    wheel = build_runtime_wheel(tmp_path / "wheel")
    site = only_these_packages(tmp_path / "site", ONNXRUNTIME)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                          "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (site / "bin" / "edgepack-runtime").is_file()  # the console script
    elsewhere = tmp_path / "elsewhere"  # not the bundle folder: its runtime/ copy is not on the path
    elsewhere.mkdir()
    where = run_isolated(elsewhere, site, "-c", "import runtime, importlib.util as u; "
                         "print(runtime.__file__, u.find_spec('packager') is None, u.find_spec('torch') is None)")
    assert where.stdout.split() == [str(site / "runtime" / "__init__.py"), "True", "True"], where.stderr
    proc = run_isolated(elsewhere, site, "-m", "runtime", "verify", "--json", str(tmp_path / "dist" / "tiny-x86-cpu"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["ok"] and report["candidates"][0]["passed"]
