"""Bundles are verified, not trusted: tampered runtime code, special files, archive bombs, and no
code execution from data (pickles in npz, a TorchScript artifact before its hash checks out)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.bundle import (
    BUNDLE_FILE,
    MAX_ARCHIVE_BYTES,
    MAX_ARCHIVE_BYTES_ENV,
    extract_archive,
    max_archive_bytes,
    open_bundle,
)
from runtime.errors import ArchiveError, BundleFormatError, FeedError, IntegrityError
from runtime.golden import load_golden, load_npz
from runtime.model import load

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the runtime's own code

def test_modified_runtime_code_refused_and_named(bundle_dir: Path) -> None:
    path = bundle_dir / "runtime" / "model.py"
    path.write_text(path.read_text() + "\nimport os  # backdoor\n")
    with pytest.raises(IntegrityError, match=r"modified: runtime/model.py \(size") as info:
        load(bundle_dir)
    assert info.value.where.endswith("runtime/model.py")


def test_extra_runtime_module_refused(bundle_dir: Path, tmp_path: Path,
                                      kit: types.ModuleType) -> None:
    (bundle_dir / "runtime" / "evil.py").write_text("import os\n")
    with pytest.raises(IntegrityError, match="unexpected: runtime/evil.py"):
        load(bundle_dir)
    with pytest.raises(IntegrityError, match="unexpected: runtime/evil.py"):
        load(kit.make_archive(bundle_dir, tmp_path / "evil.tar.gz"))


def test_extra_executable_in_backends_refused(bundle_dir: Path) -> None:
    (bundle_dir / "runtime" / "backends" / "_native.so").write_bytes(b"\x7fELF")
    with pytest.raises(IntegrityError, match="unexpected: runtime/backends/_native.so"):
        load(bundle_dir)


def test_tampered_bundled_runtime_refused_by_cli_inside_bundle(bundle_dir: Path) -> None:
    """Run from inside the bundle (its own runtime copy runs): a modified copy is refused."""
    path = bundle_dir / "runtime" / "select.py"
    path.write_text(path.read_text() + "# edited\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-m", "runtime", "verify", "--json"], cwd=bundle_dir,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["error"] == "bundle-integrity" and "runtime/select.py" in doc["message"]


def test_fifo_in_bundle_dir_refused(bundle_dir: Path) -> None:
    os.mkfifo(bundle_dir / "golden" / "pipe")
    with pytest.raises(IntegrityError, match=r"unexpected: golden/pipe \(special file\)"):
        open_bundle(bundle_dir).verify()


def test_listed_file_replaced_by_fifo_refused(bundle_dir: Path) -> None:
    target = bundle_dir / "README.md"
    target.unlink()
    os.mkfifo(target)
    with pytest.raises(IntegrityError, match=r"missing: README.md \(not a regular file\)"):
        open_bundle(bundle_dir).verify()  # never opened (reading a fifo would hang)


def test_symlinked_directory_refused(bundle_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (bundle_dir / "extra").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(IntegrityError, match=r"extra \(symlink\)"):
        open_bundle(bundle_dir).verify()


def test_listed_path_dot_is_a_format_error(bundle_dir: Path, kit: types.ModuleType) -> None:
    doc = json.loads((bundle_dir / BUNDLE_FILE).read_text())
    doc["candidates"][0]["file"] = "."
    (bundle_dir / BUNDLE_FILE).write_text(json.dumps(doc))
    with pytest.raises(BundleFormatError, match="not a relative path inside the bundle"):
        open_bundle(bundle_dir)


# --------------------------------------------------------------------------- archive bombs

def _bomb(path: Path, sizes: list[int]) -> Path:
    """A gzip tarball of zero-filled members: tiny on disk, large when unpacked."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("b")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        for i, size in enumerate(sizes):
            info = tarfile.TarInfo(f"b/zeros{i}.bin")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_archive_over_the_size_limit_refused_before_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _bomb(tmp_path / "bomb.tar.gz", [600_000, 600_000])
    assert path.stat().st_size < 10_000
    monkeypatch.setenv(MAX_ARCHIVE_BYTES_ENV, "1000000")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="unpacks to more than 1000000 bytes") as info:
        extract_archive(path, dest)
    assert info.value.where == str(path)
    assert MAX_ARCHIVE_BYTES_ENV in info.value.hint
    assert list(dest.iterdir()) == []
    with pytest.raises(ArchiveError, match="decompression bomb|more than"):
        open_bundle(path)
    monkeypatch.setenv(MAX_ARCHIVE_BYTES_ENV, "2000000")
    assert (extract_archive(path, dest) / "zeros1.bin").stat().st_size == 600_000


def test_real_bundle_archive_under_a_small_limit(bundle_dir: Path, tmp_path: Path,
                                                 kit: types.ModuleType,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tar = kit.make_archive(bundle_dir, tmp_path / "b.tar.gz")
    with load(tar) as model:  # the default limit (4 GiB) is far away
        assert model.candidate["id"] == "onnx-fp32"
    monkeypatch.setenv(MAX_ARCHIVE_BYTES_ENV, "4096")
    with pytest.raises(ArchiveError, match="unpacks to more than 4096 bytes"):
        load(tar)


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_bad_limit_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv(MAX_ARCHIVE_BYTES_ENV, value)
    with pytest.raises(ArchiveError, match="not a positive byte count") as info:
        extract_archive(_bomb(tmp_path / "x.tar.gz", [10]), tmp_path / "o")
    assert info.value.where == MAX_ARCHIVE_BYTES_ENV


def test_default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_ARCHIVE_BYTES_ENV, raising=False)
    assert max_archive_bytes() == MAX_ARCHIVE_BYTES == 4 << 30


def test_too_many_members_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.bundle as rb

    monkeypatch.setattr(rb, "MAX_ARCHIVE_MEMBERS", 5)
    with pytest.raises(ArchiveError, match="more than 5 members"):
        extract_archive(_bomb(tmp_path / "many.tar.gz", [1] * 10), tmp_path / "o")


def test_truncated_gzip_is_an_archive_error(bundle_dir: Path, tmp_path: Path,
                                            kit: types.ModuleType) -> None:
    tar = kit.make_archive(bundle_dir, tmp_path / "b.tar.gz")
    data = tar.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="cannot read archive"):
        open_bundle(cut)


# --------------------------------------------------------------------------- no code from data

def _rewrite_golden(root: Path, kit: types.ModuleType, **arrays: Any) -> None:
    np.savez(root / "golden" / "outputs.npz", **arrays)
    kit.write_bundle_json(root, json.loads((root / BUNDLE_FILE).read_text()))


def test_golden_npz_with_object_array_refused(bundle_dir: Path, kit: types.ModuleType) -> None:
    """Pickled object arrays are never unpickled, even in a hash-valid bundle."""
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = {"a": 1}, [1, 2]
    _rewrite_golden(bundle_dir, kit, y=evil, label=np.zeros(8, np.int64))
    bundle = open_bundle(bundle_dir)
    bundle.verify()  # the file is listed and hashed: only the loader stands in the way
    with pytest.raises(BundleFormatError, match="pickled object array, which is refused") as info:
        load_golden(bundle)
    assert info.value.where.endswith("golden/outputs.npz")


def test_cli_input_npy_with_object_array_refused(bundle_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-m", "runtime", "run", str(bundle_dir), "--json",
                           "--input", str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["error"] == "bad-feed" and "allow_pickle" in doc["message"]


def test_damaged_npz_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(BundleFormatError, match="cannot read npz"):
        load_npz(str(path))
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(BundleFormatError, match="not an .npz archive"):
        load_npz(str(tmp_path / "a.npy"))


def test_every_np_load_in_runtime_refuses_pickles() -> None:
    for path in sorted((REPO / "runtime").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "np.load(" in line and not line.lstrip().startswith(("#", '"')):
                assert "allow_pickle=False" in line, f"{path}:{n}: {line.strip()}"
            assert "pickle.load" not in line and "torch.load(" not in line, f"{path}:{n}"


def test_tampered_torchscript_never_reaches_jit_load(bundle_factory: Callable[..., Path],
                                                     kit: types.ModuleType,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    root = bundle_factory(
        candidates=[kit.candidate("ts", "models/tiny.fp32.pt", backend="torchscript")],
        artifacts={"models/tiny.fp32.pt": kit.make_torchscript("fp32")}, onnx_model=False)
    calls: list[str] = []
    real = torch.jit.load

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", spy)
    with load(root) as model:  # intact: loads, through the spy
        assert model.candidate["id"] == "ts"
    assert len(calls) == 1
    pt = root / "models" / "tiny.fp32.pt"
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0x01
    pt.write_bytes(bytes(data))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("torch.jit.load ran on an artifact whose hash did not check out")

    monkeypatch.setattr(torch.jit, "load", refuse)
    with pytest.raises(IntegrityError, match=r"modified: models/tiny.fp32.pt \(sha256"):
        load(root)
    with pytest.raises(IntegrityError):
        load(root, prefer="ts", probe_all=True)


def test_feed_arrays_of_objects_refused(bundle_dir: Path) -> None:
    with load(bundle_dir) as model:
        with pytest.raises(FeedError, match="dtype object does not match float32"):
            model.run({"x": np.array([[object()] * 4], dtype=object)})
