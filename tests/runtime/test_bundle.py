"""Bundle reading, integrity checks and safe archive extraction."""
from __future__ import annotations

import json
import tarfile
import types
from pathlib import Path

import pytest

from runtime.bundle import BUNDLE_FILE, extract_archive, list_bundle_files, open_bundle, sha256_file, verify_files
from runtime.errors import ArchiveError, BundleFormatError, IntegrityError
from runtime.model import load


def test_open_dir_and_archive(bundle_dir: Path, bundle_tar: Path) -> None:
    b = open_bundle(bundle_dir)
    assert b.name == "tiny" and b.candidates[0].id == "onnx-fp32"
    assert b.signature.inputs[0].shape == ("batch", 4)
    b.verify()
    t = open_bundle(bundle_tar)
    assert t.root.name == "tiny-cpu" and t.archive == bundle_tar.resolve()
    t.verify()
    root = t.root
    assert root.is_dir()
    del t  # the temp dir goes with the Bundle
    import gc
    gc.collect()
    assert not root.exists()


def test_list_files_lists_everything_but_bundle_json(bundle_dir: Path) -> None:
    """Nothing is skipped: the runtime's __pycache__ blocker is a listed file, and bytecode that
    appears later is an unexpected file (no bundle ever holds bytecode)."""
    files = list_bundle_files(bundle_dir)
    assert BUNDLE_FILE not in files
    assert files["runtime/__pycache__"] == {"sha256": sha256_file(bundle_dir / "runtime/__pycache__"),
                                            "size": 0}
    assert files["models/tiny.fp32.onnx"]["sha256"] == sha256_file(
        bundle_dir / "models/tiny.fp32.onnx")
    verify_files(bundle_dir, files)
    (bundle_dir / "runtime" / "stray.pyc").write_bytes(b"c")
    with pytest.raises(IntegrityError, match=r"unexpected: runtime/stray.pyc \(bytecode or native code\)"):
        verify_files(bundle_dir, files)


def test_modified_file_is_named(bundle_dir: Path) -> None:
    model = bundle_dir / "models" / "tiny.fp32.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"modified: models/tiny.fp32.onnx \(sha256"):
        load(bundle_dir)


def test_missing_file_is_named(bundle_dir: Path) -> None:
    (bundle_dir / "golden" / "outputs.npz").unlink()
    with pytest.raises(IntegrityError, match="missing: golden/outputs.npz") as info:
        open_bundle(bundle_dir).verify()
    assert info.value.where and info.value.where.endswith("golden/outputs.npz")


@pytest.mark.parametrize("rel", ["runtime/evil.py", "models/extra.onnx", "lib/x.so",
                                 "golden/more.npz"])
def test_unlisted_code_or_model_refused(bundle_dir: Path, rel: str) -> None:
    (bundle_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle_dir / rel).write_text("print('hi')\n")
    with pytest.raises(IntegrityError, match=f"unexpected: {rel}"):
        load(bundle_dir)


def test_any_unlisted_file_refused(bundle_dir: Path) -> None:
    (bundle_dir / "notes.txt").write_text("harmless-looking")
    with pytest.raises(IntegrityError, match=r"unexpected: notes.txt\)"):
        open_bundle(bundle_dir).verify()
    (bundle_dir / "notes.txt").unlink()
    (bundle_dir / "golden" / "empty-folder").mkdir()  # an empty folder holds nothing to run
    open_bundle(bundle_dir).verify()


def test_unlisted_symlink_refused(bundle_dir: Path) -> None:
    (bundle_dir / "link.txt").symlink_to("/etc/hostname")
    with pytest.raises(IntegrityError, match=r"link.txt \(symlink\)"):
        open_bundle(bundle_dir).verify()


def test_referenced_file_must_be_hashed(bundle_dir: Path) -> None:
    doc = json.loads((bundle_dir / BUNDLE_FILE).read_text())
    del doc["files"]["models/tiny.fp32.onnx"]
    (bundle_dir / BUNDLE_FILE).write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="not hashed"):
        open_bundle(bundle_dir).verify()


def test_load_without_hash_check_still_runs(bundle_dir: Path) -> None:
    (bundle_dir / "runtime" / "evil.py").write_text("x = 1\n")
    with load(bundle_dir, verify_hashes=False) as model:
        assert model.candidate["id"] == "onnx-fp32"


@pytest.mark.parametrize("version", [0, 2])
def test_schema_version_checked(bundle_dir: Path, version: int) -> None:
    doc = json.loads((bundle_dir / BUNDLE_FILE).read_text())
    doc["schema_version"] = version
    (bundle_dir / BUNDLE_FILE).write_text(json.dumps(doc))
    with pytest.raises(BundleFormatError, match=f"schema_version {version} is not supported"):
        open_bundle(bundle_dir)


def test_bad_json_and_missing_bundle(tmp_path: Path, bundle_dir: Path) -> None:
    with pytest.raises(BundleFormatError, match="no bundle.json"):
        open_bundle(tmp_path)
    with pytest.raises(BundleFormatError, match="no such file"):
        open_bundle(tmp_path / "nope")
    (bundle_dir / BUNDLE_FILE).write_text("{not json")
    with pytest.raises(BundleFormatError, match="cannot read"):
        open_bundle(bundle_dir)


def test_candidate_path_escaping_bundle_refused(bundle_dir: Path) -> None:
    doc = json.loads((bundle_dir / BUNDLE_FILE).read_text())
    doc["candidates"][0]["file"] = "../outside.onnx"
    (bundle_dir / BUNDLE_FILE).write_text(json.dumps(doc))
    with pytest.raises(BundleFormatError, match="not a relative path inside the bundle"):
        open_bundle(bundle_dir)


def test_duplicate_candidate_ids_refused(bundle_dir: Path, kit: types.ModuleType) -> None:
    doc = json.loads((bundle_dir / BUNDLE_FILE).read_text())
    doc["candidates"].append(dict(doc["candidates"][0]))
    kit.write_bundle_json(bundle_dir, doc)
    with pytest.raises(BundleFormatError, match="duplicate candidate id"):
        open_bundle(bundle_dir)


# --------------------------------------------------------------------------- archives

def _tar(kit: types.ModuleType, tmp_path: Path, *members: dict) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        kit.add_member(tar, "b", type=tarfile.DIRTYPE, mode=0o755)
        kit.add_member(tar, "b/bundle.json", b"{}")
        for m in members:
            kit.add_member(tar, **m)
    return path


@pytest.mark.parametrize("member,needle", [
    ({"name": "/etc/passwd"}, "absolute path"),
    ({"name": "b/../../escape.txt"}, "'..'"),
    ({"name": "b/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "link in archive"),
    ({"name": "b/hard", "type": tarfile.LNKTYPE, "linkname": "b/bundle.json"}, "link in archive"),
    ({"name": "b/dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "device, fifo"),
    ({"name": "b/fifo", "type": tarfile.FIFOTYPE}, "device, fifo"),
    ({"name": "other/file.txt"}, "outside the single top-level folder"),
    ({"name": "toplevel.txt"}, "outside the single top-level folder"),
])
def test_unsafe_archive_refused(tmp_path: Path, member: dict, needle: str,
                                kit: types.ModuleType) -> None:
    path = _tar(kit, tmp_path, member)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=needle) as info:
        extract_archive(path, dest)
    assert info.value.where == member["name"]
    assert list(dest.iterdir()) == []  # nothing written before the check finished
    with pytest.raises(ArchiveError):
        open_bundle(path)


def test_unreadable_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(ArchiveError, match="cannot read archive"):
        open_bundle(path)


def test_archive_strips_special_modes(bundle_dir: Path, tmp_path: Path,
                                      kit: types.ModuleType) -> None:
    tar_path = kit.make_archive(bundle_dir, tmp_path / "b.tar.gz")
    root = extract_archive(tar_path, tmp_path / "x")
    mode = (root / "bundle.json").stat().st_mode & 0o7777
    assert mode == 0o644
    verify_files(root, list_bundle_files(bundle_dir))


def test_extraction_drops_setuid_and_group_write(tmp_path: Path, kit: types.ModuleType) -> None:
    path = _tar(kit, tmp_path, {"name": "b/tool", "mode": 0o6777})
    root = extract_archive(path, tmp_path / "x")
    assert (root / "tool").stat().st_mode & 0o7777 == 0o755


def test_integrity_error_in_archive_names_the_archive(bundle_dir: Path, tmp_path: Path,
                                                      kit: types.ModuleType) -> None:
    (bundle_dir / "runtime" / "evil.py").write_text("x = 1\n")
    tar_path = kit.make_archive(bundle_dir, tmp_path / "b.tar.gz")
    with pytest.raises(IntegrityError) as info:
        load(tar_path)
    assert info.value.where == f"{tar_path.resolve()}:tiny-cpu/runtime/evil.py"
