"""I/O faults in a build, produced for real: a full output disk or a read-only one, a refused
permission and a failing disk are one `error:` line with a hint and exit code 2, with nothing
partial left at --out and an older bundle there kept whole; the same faults on the build cache
are one warning and the build goes on to the same bytes (a cache is only an optimisation).

The faults are real filesystems, not mocks: small tmpfs mounts (filled with a filler file, or
mounted read-only), an immutable folder (which stops root too: EPERM), and for EIO an ext2
filesystem on a loop device whose backing memory file is sealed against writes, so the kernel
fails every write with "Input/output error". This needs root (mount, losetup); under CI=true a
missing capability FAILS with the reason, elsewhere the test is skipped with it.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.bundle import open_bundle

from ..conftest import REPO, TINY_MODEL, tiny_manifest

pytestmark = pytest.mark.slow
NAME = "tiny-x86-cpu"
KB = 1024


def need(ok: bool, reason: str) -> None:
    """A missing capability fails under CI (never a quiet skip there), skips elsewhere."""
    if ok:
        return
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"this CI machine cannot run the I/O fault tests: {reason}")
    pytest.skip(reason)


def sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def unmount(path: Path) -> None:
    if os.path.ismount(path) and sh("umount", str(path)).returncode != 0:
        sh("umount", "-l", str(path))  # busy: detach now, freed when the last user goes


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(size="2m")`` mounts a fresh tmpfs and returns its folder; all unmounted afterwards."""
    mounted: list[Path] = []
    need(os.geteuid() == 0, "not root: cannot mount a small tmpfs")

    def mount(size: str = "2m", ro: bool = False) -> Path:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        done = sh("mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if ro else ""), "tmpfs", str(path))
        need(done.returncode == 0, f"mount -t tmpfs failed: {done.stderr.strip()}")
        mounted.append(path)
        assert os.path.ismount(path), f"{path} is not a mount point after mount"
        return path
    yield mount
    for path in reversed(mounted):
        for folder in [p for p in path.rglob("*") if p.is_dir()]:  # undo chattr +i (else no clean-up)
            sh("chattr", "-i", str(folder))
        unmount(path)


@pytest.fixture
def failing_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """An ext2 filesystem on a loop device backed by a memfd; ``fail()`` seals the memfd against
    writes, after which the kernel fails every write to the filesystem with EIO (a real one)."""
    need(os.geteuid() == 0, "not root: cannot set up a loop device")
    need(all(shutil.which(t) for t in ("mkfs.ext2", "losetup", "mount")), "mkfs.ext2/losetup missing")
    fd = os.memfd_create("edgepack-eio", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, 32 * 1024 * KB)
    backing = f"/proc/{os.getpid()}/fd/{fd}"
    mnt, loop = tmp_path / "eio", ""
    mnt.mkdir()
    try:
        made = sh("mkfs.ext2", "-q", "-F", "-b", "1024", "-m", "0", backing)
        need(made.returncode == 0, f"mkfs.ext2 failed: {made.stderr.strip()}")
        attached = sh("losetup", "-f", "--show", backing)
        need(attached.returncode == 0, f"losetup failed (no loop devices?): {attached.stderr.strip()}")
        loop = attached.stdout.strip()
        done = sh("mount", "-o", "sync,errors=continue", loop, str(mnt))  # sync: errors reach write()
        need(done.returncode == 0, f"mounting the loop device failed: {done.stderr.strip()}")
        assert os.path.ismount(mnt)
        yield mnt, lambda: fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
    finally:
        unmount(mnt)
        if loop:
            sh("losetup", "-d", loop)
        os.close(fd)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.py").write_text(TINY_MODEL)
    return tiny_manifest(folder)


def edgepack_build(manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "packager", "build", str(manifest), "--out", str(out), "-q",
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=600)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def reference(project: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The archive sha256 of a normal build (the session's cache, on a normal disk)."""
    out = tmp_path_factory.mktemp("reference")
    done = edgepack_build(project, out)
    assert done.returncode == 0, done.stderr
    return sha(out / f"{NAME}.tar.gz")


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on ``disk``."""
    filler = disk / "filler"
    size = shutil.disk_usage(disk).free - leave + (filler.stat().st_size if filler.exists() else 0)
    with filler.open("wb") as fh:
        fh.truncate(0)
        fh.write(b"\0" * max(size, 0))
    assert abs(shutil.disk_usage(disk).free - leave) < 64 * KB
    return filler


def assert_one_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2; stderr is exactly one `error:` line holding ``words`` and its `hint:`."""
    lines = done.stderr.splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].strip().startswith("hint: "), \
        done.stderr[-3000:]
    assert all(w in lines[0] for w in words), (words, lines[0])
    return lines[0]


def leftovers(out: Path) -> list[str]:
    """Bundles, archives and temp folders under ``out``."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith(NAME) or "-tmp-" in p.name) \
        if out.is_dir() else []


def assert_cache_intact(root: Path) -> None:
    """Every entry is whole (its blobs match meta.json's hashes); no temp folder of a write is left."""
    for folder in root.glob("??/*"):
        meta = json.loads((folder / "meta.json").read_text())
        for name, digest in meta["_blobs"].items():
            assert sha(folder / name) == digest, f"{folder}/{name}"
        assert {p.name for p in folder.iterdir()} == {"meta.json", *meta["_blobs"]}, folder
    assert not list(root.glob(".put-*")) and not list(root.glob(".trash-*"))


def cache_warning(done: subprocess.CompletedProcess[str], out: Path, *words: str) -> None:
    """Exit 0; ONE warning line about the cache (in the summary), and the same in the build JSON."""
    assert done.returncode == 0, done.stderr[-3000:]
    shown = [line for line in (done.stdout + done.stderr).splitlines() if "cache" in line and "warning" in line]
    assert len(shown) == 1 and all(w in shown[0] for w in words), (words, done.stdout, done.stderr)
    summary = json.loads((out / "tiny.build.json").read_text())
    assert summary["cache"]["write_error"] and all(w in summary["cache"]["write_error"] for w in words)
    assert [w for w in summary["warnings"] if "cache" in w] == [summary["cache"]["write_error"]]
    bundle_doc = json.loads((out / NAME / "bundle.json").read_text())
    assert not any("cache" in w for w in bundle_doc["warnings"]), "a host's cache is not the bundle's business"


def test_full_output_disk_is_one_clear_error_and_keeps_the_previous_bundle(
        project: Path, reference: str, tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("2m")
    out = disk / "out"
    filler = fill(disk, leave=150 * KB)  # the bundle is ~0.5 MB (folder + archive)
    line = assert_one_error(edgepack_build(project, out), "--out", "no space left on device", str(out),
                            "needed about", "free")
    assert leftovers(out) == [], "a failed write leaves nothing at --out"
    filler.unlink()
    assert edgepack_build(project, out).returncode == 0
    before = sha(out / f"{NAME}.tar.gz")
    assert before == reference
    fill(disk, leave=150 * KB)
    assert_one_error(edgepack_build(project, out), "no space left on device", str(out))
    assert leftovers(out) == [NAME, f"{NAME}.measured.cdx.json", f"{NAME}.tar.gz"], \
        "the previous bundle (and its measured BOM), and no temp folder"
    assert sha(out / f"{NAME}.tar.gz") == before
    open_bundle(out / NAME).verify()
    print(line)


def test_full_cache_disk_is_one_warning_and_the_same_bundle(project: Path, reference: str,
                                                            tmpfs: Callable[..., Path], tmp_path: Path) -> None:
    disk = tmpfs("2m")
    fill(disk, leave=32 * KB)  # a cold build stores ~70 KB: some entries fit, then the disk is full
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "packager", "build", str(project), "--out", str(out),
                           "--cache-dir", str(disk / "cache")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    cache_warning(done, out, "no space left on device", str(disk / "cache"))
    assert sha(out / f"{NAME}.tar.gz") == reference
    assert_cache_intact(disk / "cache")


def test_read_only_output_is_one_clear_error(project: Path, reference: str, tmpfs: Callable[..., Path]) -> None:
    empty = tmpfs("1m", ro=True)
    assert_one_error(edgepack_build(project, empty), "read-only file system", str(empty))
    assert_one_error(edgepack_build(project, empty / "new"), "read-only file system", str(empty / "new"))
    disk = tmpfs("2m")
    assert edgepack_build(project, disk).returncode == 0
    done = sh("mount", "-o", "remount,ro", str(disk))
    assert done.returncode == 0, done.stderr
    assert_one_error(edgepack_build(project, disk), "read-only file system", str(disk))
    assert sha(disk / f"{NAME}.tar.gz") == reference
    open_bundle(disk / NAME).verify()


def test_read_only_cache_is_one_warning(project: Path, reference: str, tmpfs: Callable[..., Path],
                                        tmp_path: Path) -> None:
    cache = tmpfs("1m", ro=True)
    done = edgepack_build(project, tmp_path / "out", "--cache-dir", str(cache))
    cache_warning(done, tmp_path / "out", "read-only file system", str(cache))
    assert sha(tmp_path / "out" / f"{NAME}.tar.gz") == reference


def test_refused_permission_is_an_error_for_the_output_and_a_warning_for_the_cache(
        project: Path, reference: str, tmpfs: Callable[..., Path], tmp_path: Path) -> None:
    disk = tmpfs("2m")
    for folder in (disk / "out", disk / "cache"):
        folder.mkdir()
        done = sh("chattr", "+i", str(folder))  # immutable: refuses even root (EPERM)
        need(done.returncode == 0, f"chattr +i on tmpfs failed: {done.stderr.strip()}")
    assert_one_error(edgepack_build(project, disk / "out"), "permission denied", str(disk / "out"))
    done = edgepack_build(project, tmp_path / "out", "--cache-dir", str(disk / "cache"))
    cache_warning(done, tmp_path / "out", "permission denied", str(disk / "cache"))
    assert sha(tmp_path / "out" / f"{NAME}.tar.gz") == reference


def test_failing_disk_eio(project: Path, reference: str, failing_disk: tuple[Path, Callable[[], None]],
                          tmp_path: Path) -> None:
    disk, fail = failing_disk
    (disk / "out").mkdir()
    (disk / "cache").mkdir()
    fail()
    with pytest.raises(OSError) as probe:  # the fault is real
        (disk / "probe").write_bytes(b"x" * 4096)
    assert probe.value.errno == 5
    assert_one_error(edgepack_build(project, disk / "out"), "input/output error", str(disk / "out"))
    done = edgepack_build(project, tmp_path / "out", "--cache-dir", str(disk / "cache"))
    cache_warning(done, tmp_path / "out", "input/output error", str(disk / "cache"))
    assert sha(tmp_path / "out" / f"{NAME}.tar.gz") == reference
    with contextlib.suppress(OSError):
        assert not list((disk / "cache").glob("??/*")), "nothing was stored on the failing disk"
