"""No unlisted code runs from a bundle: planted bytecode, native modules, shadowing modules and
edited sources are refused by the bundle's own runtime, named, and never executed.

Each attack is first shown to be real: stock Python (without runtime.code_guard) would run the
planted file. Then ``python -m runtime`` inside the bundle, with bytecode writing on (as on a
device: no PYTHON* variables), must refuse the bundle with exit 2 while the planted code's marker
file stays absent.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.bundle import BUNDLE_FILE, open_bundle
from runtime.code_guard import PYCACHE_BLOCKER
from runtime.errors import IntegrityError
from runtime.model import load


def payload(marker: Path) -> str:
    return f"\nimport pathlib as _p\n_p.Path({str(marker)!r}).write_text('planted code ran')\n"


def device_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A device's environment: no PYTHON* variables (bytecode writing on), a code cache of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["EDGEPACK_CODE_CACHE"] = str(tmp_path / "code-cache")
    env.update(extra)
    return env


def in_bundle(bundle: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=bundle, env=env, capture_output=True,
                          text=True, timeout=300)


def verify_json(bundle: Path, env: dict[str, str]) -> tuple[int, dict, str]:
    proc = in_bundle(bundle, env, "-m", "runtime", "verify", "--json")
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def plant_bytecode(bundle: Path, module: str, marker: Path) -> Path:
    """runtime/__pycache__/<module>.cpython-XY.pyc compiled from an edited source, its header
    naming the real file's mtime and size (what stock Python checks)."""
    src = bundle / "runtime" / f"{module}.py"
    code = compile(src.read_text() + payload(marker), str(src), "exec")
    st = src.stat()
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little") \
        + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    cache = bundle / "runtime" / PYCACHE_BLOCKER
    cache.unlink()  # the attacker must replace the listed blocker file with a folder
    cache.mkdir()
    pyc = Path(importlib.util.cache_from_source(str(src)))
    pyc.write_bytes(header + marshal.dumps(code))
    return pyc


def test_the_bundle_blocks_pycache_and_python_writes_no_bytecode_into_it(bundle_dir: Path,
                                                                         tmp_path: Path) -> None:
    blocker = bundle_dir / "runtime" / PYCACHE_BLOCKER
    assert blocker.is_file() and blocker.stat().st_size == 0
    assert f"runtime/{PYCACHE_BLOCKER}" in json.loads((bundle_dir / BUNDLE_FILE).read_text())["files"]
    env = device_env(tmp_path)
    for _ in range(2):  # the second run reads the code cache
        code, doc, err = verify_json(bundle_dir, env)
        assert code == 0 and doc["passed"], err
    assert blocker.is_file()
    assert not [p for p in bundle_dir.rglob("*") if p.suffix == ".pyc" or p.is_dir() and p.name == "__pycache__"]
    # compiled code went to the cache outside the bundle, one file per listed source's sha256
    listed = {m["sha256"] for rel, m in json.loads((bundle_dir / BUNDLE_FILE).read_text())["files"].items()
              if rel.startswith("runtime/") and rel.endswith(".py")}
    cached = {p.name.split(".")[0] for p in (tmp_path / "code-cache").iterdir()}
    assert cached and cached <= listed, cached - listed
    assert len(cached) >= 10  # __main__, bundle, model, select, backends ... all from the cache
    files = json.loads((bundle_dir / BUNDLE_FILE).read_text())["files"]
    assert files["runtime/code_guard.py"]["sha256"] in cached  # the guard itself too
    info = in_bundle(bundle_dir, env, "-m", "runtime", "info", "--json")
    assert json.loads(info.stdout)["runtime_code"] == {
        "from_bundle": True, "bundle": str(bundle_dir.resolve()),
        "code_cache": str((tmp_path / "code-cache").resolve()),
        "code_cache_note": str((tmp_path / "code-cache").resolve())}


def test_planted_bytecode_is_never_run_and_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    pyc = plant_bytecode(bundle_dir, "select", marker)
    # the attack is real: stock Python's loader takes the planted bytecode for runtime/select.py
    stock = importlib.machinery.SourceFileLoader("probe", str(bundle_dir / "runtime" / "select.py"))
    assert str(marker) in stock.get_code("probe").co_consts

    code, doc, err = verify_json(bundle_dir, device_env(tmp_path))
    assert code == 2, err
    assert not marker.exists(), "the planted bytecode ran"
    assert doc["error"] == "bundle-integrity"
    assert f"missing: runtime/{PYCACHE_BLOCKER} (not a regular file)" in doc["message"]
    assert f"runtime/__pycache__/{pyc.name} (bytecode or native code)" in doc["message"]
    assert "Traceback" not in err and "never holds bytecode" in doc["hint"]


def test_planted_native_module_is_never_loaded_and_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    runtime_dir = bundle_dir / "runtime"
    native = runtime_dir / f"select{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    native.write_bytes(b"\x7fELF not really a library")
    # the attack is real: stock Python prefers an extension module over select.py
    finder = importlib.machinery.FileFinder(
        str(runtime_dir), (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES))
    spec = finder.find_spec("runtime.select")
    assert spec is not None and spec.origin == str(native)

    code, doc, err = verify_json(bundle_dir, device_env(tmp_path))
    assert code == 2 and "Traceback" not in err, err
    assert f"unexpected: runtime/{native.name} (bytecode or native code)" in doc["message"]


@pytest.mark.parametrize("name", ["numpy.py", "sitecustomize.py", "usercustomize.py"])
def test_planted_module_at_the_bundle_root_is_never_imported_and_is_refused(
        bundle_dir: Path, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    (bundle_dir / name).write_text(payload(marker))
    if name == "numpy.py":  # the attack is real: the folder Python runs in comes first on sys.path
        proc = in_bundle(bundle_dir, device_env(tmp_path), "-B", "-c", "import numpy")
        assert proc.returncode == 0 and marker.exists(), proc.stderr
        marker.unlink()
    code, doc, err = verify_json(bundle_dir, device_env(tmp_path))
    assert code == 2, err
    assert not marker.exists(), f"the planted {name} ran"
    assert doc["message"].endswith(f"(unexpected: {name})")


def test_planted_pth_file_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    for where in (bundle_dir, bundle_dir / "runtime"):
        (where / "evil.pth").write_text("import os\n")
    code, doc, _ = verify_json(bundle_dir, device_env(tmp_path))
    assert code == 2
    assert "evil.pth (bytecode or native code)" in doc["message"]
    assert "runtime/evil.pth (bytecode or native code)" in doc["message"]


def test_edited_runtime_module_is_refused_before_it_runs(bundle_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = bundle_dir / "runtime" / "select.py"
    path.write_text(path.read_text() + payload(marker))
    code, doc, err = verify_json(bundle_dir, device_env(tmp_path))
    assert code == 2 and not marker.exists(), err
    assert doc["error"] == "bundle-integrity" and "modified: runtime/select.py" in doc["message"]
    assert doc["where"] == f"{bundle_dir}/runtime/select.py"
    # imported as a library from inside the bundle, the package refuses too (the CLI is not special)
    lib = in_bundle(bundle_dir, device_env(tmp_path), "-c", "import runtime")
    assert lib.returncode == 1 and "TamperedCodeError" in lib.stderr and "modified: runtime/select.py" in lib.stderr
    assert not marker.exists()


def test_unlisted_runtime_module_cannot_be_imported(bundle_dir: Path, tmp_path: Path) -> None:
    """Even past the check (a file added after import), the finder runs listed sources only."""
    script = ("import pathlib, runtime\n"
              "pathlib.Path('runtime/extra.py').write_text('X = 1\\n')\n"
              "try:\n    import runtime.extra\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n")
    proc = in_bundle(bundle_dir, device_env(tmp_path), "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("TamperedCodeError") and "(unexpected: runtime/extra.py); not executed" in proc.stdout


def test_unlisted_plain_file_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    (bundle_dir / "notes.txt").write_text("hello\n")
    with pytest.raises(IntegrityError, match=r"unexpected: notes.txt\)"):
        load(bundle_dir)
    code, doc, _ = verify_json(bundle_dir, device_env(tmp_path))
    assert code == 2 and doc["message"].endswith("(unexpected: notes.txt)")


def test_symlinks_in_an_extracted_bundle_are_refused(bundle_dir: Path, tmp_path: Path) -> None:
    golden = bundle_dir / "golden" / "inputs.npz"
    copy = tmp_path / "inputs.npz"
    copy.write_bytes(golden.read_bytes())  # same bytes: only the link itself is wrong
    golden.unlink()
    golden.symlink_to(copy)
    (bundle_dir / "runtime" / "extra.py").symlink_to(bundle_dir / "runtime" / "select.py")
    with pytest.raises(IntegrityError) as info:
        open_bundle(bundle_dir).verify()
    assert "missing: golden/inputs.npz (symlink)" in str(info.value)
    code, doc, _ = verify_json(bundle_dir, device_env(tmp_path))
    assert code == 2 and "unexpected: runtime/extra.py (symlink)" in doc["message"]


def test_code_cache_inside_the_bundle_or_shared_is_not_used(bundle_dir: Path, tmp_path: Path) -> None:
    env = device_env(tmp_path, EDGEPACK_CODE_CACHE=str(bundle_dir / "code"))
    for _ in range(2):
        code, doc, err = verify_json(bundle_dir, env)
        assert code == 0 and doc["passed"], err
    assert not (bundle_dir / "code").exists()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # writable by anyone: code from there would not be ours
    env = device_env(tmp_path, EDGEPACK_CODE_CACHE=str(shared))
    code, doc, err = verify_json(bundle_dir, env)
    assert code == 0, err
    assert list(shared.iterdir()) == []
    info = json.loads(in_bundle(bundle_dir, env, "-m", "runtime", "info", "--json").stdout)
    assert info["runtime_code"]["code_cache"] is None
    assert "writable by others; compiling from source" in info["runtime_code"]["code_cache_note"]


def test_a_module_changed_after_its_check_is_still_caught(bundle_dir: Path, tmp_path: Path) -> None:
    """Bundle.verify reuses the digest the finder computed only while the file is untouched:
    a same-size edit with its mtime set back (ctime still moves) is hashed again and refused."""
    script = ("import os, pathlib, runtime, runtime.select\n"
              "p = pathlib.Path('runtime/select.py'); st = p.stat(); data = bytearray(p.read_bytes())\n"
              "data[-2:-1] = b'#' if data[-2:-1] != b'#' else b' '\n"
              "p.write_bytes(bytes(data)); os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\n"
              "assert (p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)\n"
              "try:\n    runtime.load('.')\nexcept runtime.IntegrityError as exc:\n    print(exc.message)\n")
    proc = in_bundle(bundle_dir, device_env(tmp_path), "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bundle files do not match bundle.json (modified: runtime/select.py (sha256 differs))"
