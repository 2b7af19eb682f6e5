"""Converter environments (packager.convert.converter_env): found Pythons, a stamp written last,
atomic creation under a lock, and clear errors (never a traceback) when no Python >= 3.12 exists.

The environments made here install a tiny local wheel with the host's own Python (the spec's
minimum lowered for it), so these tests need neither network nor Python 3.12; the real onnx2tf
environment is exercised by test_onnx_to_tflite.py.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from packager.convert import converter_env as ce
from packager.errors import UnsupportedError
from packager.progress import Progress

from ...conftest import REPO
from .onnx_models import no_python_env

FAKE = "edgepack_fake_converter"


def fake_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel (one module) pip installs offline."""
    dist = f"{FAKE}-1.0.dist-info"
    files = {f"{FAKE}/__init__.py": b"VERSION = '1.0'\n",
             f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: edgepack-fake-converter\nVersion: 1.0\n",
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: edgepack-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for name, data in files.items()] + [f"{dist}/RECORD,,"]
    path = folder / f"{FAKE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def fake_spec(requirement: str) -> ce.ConverterSpec:
    """A converter the host Python can hold (minimum lowered to it)."""
    return ce.ConverterSpec("fakeconv", "1.0", requirement, FAKE, ("edgepack-fake-converter",),
                            sys.version_info[:2], (f"{sys.version_info[0]}.{sys.version_info[1]}",), "1 MB")


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Converter environments under tmp_path; the host Python as the one to create them with."""
    monkeypatch.setenv(ce.DIR_ENV, str(tmp_path / "converters"))
    monkeypatch.setenv(ce.PYTHON_ENV, sys.executable)
    return tmp_path / "converters"


# -- finding a Python ------------------------------------------------------------------------------

def test_the_env_var_wins_and_a_wrong_one_is_an_error_not_a_fallback(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    monkeypatch.setenv(ce.PYTHON_ENV, str(tmp_path / "python3.12"))
    with pytest.raises(UnsupportedError) as info:
        ce.find_python(ce.ONNX2TF)
    assert f"{ce.PYTHON_ENV}={tmp_path / 'python3.12'} is not one (cannot run it" in info.value.message
    assert info.value.where == ce.PYTHON_ENV and "unset it" in (info.value.hint or "")
    monkeypatch.setenv(ce.PYTHON_ENV, sys.executable)  # this host's 3.11: runs, but too old
    with pytest.raises(UnsupportedError, match=rf"is not one \(Python {sys.version_info[0]}\.{sys.version_info[1]}"):
        ce.find_python(ce.ONNX2TF)
    assert ce.find_python(fake_spec("x")).path == sys.executable


def test_no_python_312_is_one_clear_error_with_the_fix(tmp_path: Path) -> None:
    """`edgepack converters install` with nothing to create the environment with: exit 2, the
    reason and the hint, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "packager", "converters", "install", "onnx2tf"],
                          env=no_python_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "onnx2tf needs Python >= 3.12 in an environment of its own, and no usable Python >= 3.12 was found" \
        in proc.stderr
    assert "python3.12/python3.13 on PATH and in pyenv: none" in proc.stderr
    assert "hint: install Python 3.12 (e.g. `pyenv install 3.12`" in proc.stderr and ce.PYTHON_ENV in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "no-converters").exists()
    listed = subprocess.run([sys.executable, "-m", "packager", "converters", "list", "--json"],
                            env=no_python_env(tmp_path), capture_output=True, text=True, timeout=120)
    (doc,) = json.loads(listed.stdout)["converters"]
    assert listed.returncode == 0 and doc["installed"] is False and doc["python"] is None
    assert "no usable Python >= 3.12" in doc["problem"]["message"] and ce.PYTHON_ENV in doc["problem"]["hint"]


def test_a_pyenv_shim_that_does_not_run_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyenv puts a python3.12 shim on PATH that fails unless 3.12 is selected: probed, not trusted."""
    shim = tmp_path / "bin" / "python3.12"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.delenv(ce.PYTHON_ENV, raising=False)
    monkeypatch.setenv("PATH", str(shim.parent))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    with pytest.raises(UnsupportedError) as info:
        ce.find_python(ce.ONNX2TF)
    assert f"{shim}: pyenv: python3.12: command not found" in info.value.message


# -- creating environments -------------------------------------------------------------------------

def test_a_failed_install_leaves_nothing_behind(isolated: Path, tmp_path: Path) -> None:
    spec = fake_spec(str(tmp_path / "missing-1.0-py3-none-any.whl"))
    with pytest.raises(UnsupportedError) as info:
        ce.ensure(spec)
    assert info.value.message.startswith(f"installing {spec.requirement} failed: ERROR")
    assert "edgepack converters install fakeconv" in (info.value.hint or "")
    assert [p.name for p in isolated.iterdir() if not p.name.endswith(".lock")] == []  # no env, no .part


def test_an_environment_without_its_stamp_is_never_used_and_is_replaced(isolated: Path, tmp_path: Path) -> None:
    spec = fake_spec(str(fake_wheel(tmp_path)))
    root = ce.env_root(spec, spec.pythons[0])
    (root / "bin").mkdir(parents=True)  # what a killed creation (an older one, without .part) left
    (root / "half-made").write_text("x")
    killed = root.parent / f"{root.name}.part-99999"  # a creation killed before its rename
    (killed / "lib").mkdir(parents=True)
    assert ce.installed(spec) is None
    made: list[str] = []
    env = ce.ensure(spec, on_create=lambda msg: made.append(msg) or _null())
    assert env.root == root and not (root / "half-made").exists() and not killed.exists()
    assert env.stamp["requirement"] == spec.requirement and env.packages == {"edgepack-fake-converter": "1.0"}
    assert env.python_version == ".".join(map(str, sys.version_info[:3]))
    assert len(made) == 1 and "creating the fakeconv 1.0 converter environment (once" in made[0]
    assert ce.ensure(spec, on_create=lambda msg: made.append(msg) or _null()).root == root and len(made) == 1
    (root / ce.STAMP).write_text(json.dumps({**env.stamp, "requirement": "fakeconv==0.9"}))  # another pin
    assert ce.installed(spec) is None


CONCURRENT = """
import contextlib, sys
from packager.convert import converter_env as ce
spec = ce.ConverterSpec("fakeconv", "1.0", sys.argv[1], "{fake}", ("edgepack-fake-converter",),
                        sys.version_info[:2], ("%d.%d" % sys.version_info[:2],), "1 MB")
@contextlib.contextmanager
def creating(message):
    print("CREATING", flush=True)
    yield
env = ce.ensure(spec, on_create=creating, on_wait=lambda m: print("WAITED", flush=True))
print("ROOT", env.root, flush=True)
"""


def test_two_builds_at_once_create_one_environment(isolated: Path, tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT.format(fake=FAKE), str(wheel)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    lines = [line for out, _ in outs for line in out.splitlines()]
    assert lines.count("CREATING") == 1, lines  # the other waited on the lock, or found it made
    roots = {line for line in lines if line.startswith("ROOT ")}
    assert len(roots) == 1
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert sorted(p.name for p in isolated.iterdir() if not p.name.startswith(".")) == [f"fakeconv-1.0-py{minor}"]


def test_list_shows_an_installed_environment(isolated: Path, tmp_path: Path) -> None:
    spec = fake_spec(str(fake_wheel(tmp_path)))
    doc = ce.describe(spec)
    assert doc["installed"] is False and doc["python"]["path"] == sys.executable
    assert doc["python"]["found_by"] == ce.PYTHON_ENV
    assert "not installed; would be created with Python" in ce.format_converter(doc)
    log = io.StringIO()  # a log, not a terminal: a line when creating starts, one when it ends
    ce.ensure(spec, on_create=ce.announced(Progress(log)))
    start, end = log.getvalue().splitlines()
    assert start.startswith("  creating the fakeconv 1.0 converter environment (once: a few minutes, 1 MB) with "
                            "Python ") and start.endswith(" ...")
    assert end.startswith(start[:-4] + " ... done (")
    doc = ce.describe(spec)
    assert doc["installed"] is True and doc["size_bytes"] > 0 and doc["packages"] == {"edgepack-fake-converter": "1.0"}
    text = ce.format_converter(doc)
    assert text.startswith(f"fakeconv 1.0 ({spec.requirement}): installed, Python ") and doc["folder"] in text


def test_the_converters_folder_follows_its_env_var_not_the_build_cache(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.delenv(ce.DIR_ENV, raising=False)
    monkeypatch.setenv("EDGEPACK_CACHE_DIR", str(tmp_path / "build-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ce.converters_dir() == tmp_path / "xdg" / "edgepack" / "converters"
    monkeypatch.setenv(ce.DIR_ENV, str(tmp_path / "mine"))
    assert ce.env_root(ce.ONNX2TF, "3.12") == tmp_path / "mine" / "onnx2tf-2.6.9-py3.12"


def _null() -> object:
    import contextlib
    return contextlib.nullcontext()


def test_an_environment_made_with_another_python_is_found(isolated: Path) -> None:
    """EDGEPACK_PYTHON312 may point at a 3.14: its environment is found next time, not remade."""
    spec = fake_spec("fakeconv==1.0")
    root = isolated / "fakeconv-1.0-py3.99"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / ce.STAMP).write_text(json.dumps({"requirement": spec.requirement, "python": "3.99.0"}))
    (isolated / "fakeconv-1.0-py3.98.part-123").mkdir()  # a creation under way is not an environment
    found = ce.installed(spec)
    assert found is not None and found.root == root and found.python_version == "3.99.0"
