"""The file system refusing a runtime command: a full disk, a read-only folder, a file we may not
read, a failing device. Each is ONE ``error:`` line naming the file and the cause, a ``hint:``,
exit 2 (never 3, "internal error"), and nothing partial left behind.

Full and read-only disks are real: small tmpfs mounts (``mount`` needs root; chmod does not stop
root, a read-only mount does). A file that cannot be read is real too: the command runs as root
without root's file-permission override (``setpriv``), on a file with mode 000. Only the I/O
error (EIO) is injected, as storage that fails on cue is not at hand. Without root, ``mount`` or
``setpriv`` these tests fail under CI (CI=true) and are skipped elsewhere.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _lacking(reason: str) -> NoReturn:
    """A missing capability: fail under CI (with the reason), skip elsewhere."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}, and CI=true: the I/O fault tests need root and tmpfs mounts")
    pytest.skip(reason)


def _root_only() -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _lacking("not root: mounting a tmpfs (and running as nobody) needs root")


class Tmpfs:
    """Mounts small tmpfs folders under tmp_path; all unmounted at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mounted: list[Path] = []

    def __call__(self, name: str, *, size: str = "256k", read_only: bool = False) -> Path:
        _root_only()
        folder = self.base / name
        folder.mkdir()
        folder.chmod(0o755)
        opts = f"size={size},mode=0755" + (",ro" if read_only else "")
        try:
            proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)],
                                  capture_output=True, text=True)
        except FileNotFoundError:
            _lacking("no `mount` command")
        if proc.returncode != 0:
            _lacking(f"mount -t tmpfs failed: {proc.stderr.strip()}")
        self.mounted.append(folder)
        assert os.path.ismount(folder)
        return folder

    @staticmethod
    def remount_read_only(folder: Path) -> None:
        proc = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        with pytest.raises(OSError) as info:
            (folder / "probe").write_bytes(b"x")
        assert info.value.errno == errno.EROFS

    def unmount_all(self) -> None:
        problems = []
        for folder in reversed(self.mounted):
            proc = subprocess.run(["umount", str(folder)], capture_output=True, text=True)
            if proc.returncode != 0:  # busy: detach it anyway, so no mount outlives the test
                problems.append(f"umount {folder}: {proc.stderr.strip()}")
                subprocess.run(["umount", "-l", str(folder)], capture_output=True)
            if os.path.ismount(folder):
                problems.append(f"{folder} is still mounted")
        assert not problems, problems


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    mounts = Tmpfs(tmp_path)
    try:
        yield mounts
    finally:
        mounts.unmount_all()


def fill(folder: Path) -> None:
    """Write a file until the disk is full (unbuffered, so nothing is pending afterwards)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as info:
            while True:
                os.write(fd, b"\0" * 4096)
        assert info.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert shutil.disk_usage(folder).free == 0


def cli(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (), **kw: Any
        ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    base.update(env or {})
    kw.setdefault("capture_output", "stdout" not in kw)
    if "stdout" in kw:
        kw["stderr"] = subprocess.PIPE
    return subprocess.run([*prefix, sys.executable, "-m", "runtime", *args], cwd=REPO, env=base,
                          text=True, timeout=300, **kw)


def assert_one_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, stderr = one ``error:`` line (holding every needle) and one ``hint:`` line."""
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 2, err
    assert lines[0].startswith("error: ") and lines[1].startswith("  hint: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[1]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- run --output

def test_run_output_on_a_full_disk(tmpfs: Tmpfs, bundle_dir: Path) -> None:
    disk = tmpfs("full")
    old = disk / "y.npz"
    np.savez(old, y=np.zeros(3, np.float32))  # an earlier output: kept whole, not half-replaced
    before = old.read_bytes()
    fill(disk)
    proc = cli("run", str(bundle_dir), "--output", str(old))
    hint = assert_one_error(proc, f"--output {old}", "no space left on device writing y.npz")
    assert f"df -h {disk}" in hint and "--output" in hint
    assert listing(disk) == ["filler", "y.npz"] and old.read_bytes() == before  # no temp file

    proc = cli("run", "--json", str(bundle_dir), "--output", str(disk / "new.npz"))
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"] == "output-failed"
    assert doc["message"] == "no space left on device writing new.npz"
    assert listing(disk) == ["filler", "y.npz"]


def test_run_output_into_a_read_only_folder(tmpfs: Tmpfs, bundle_dir: Path) -> None:
    disk = tmpfs("ro", read_only=True)
    proc = cli("run", str(bundle_dir), "--output", str(disk / "y.npz"))
    hint = assert_one_error(proc, "read-only file system writing y.npz")
    assert "read-only" in hint and "--output /" in hint
    assert listing(disk) == []
    assert proc.stdout == ""  # refused before the run, not after


def test_run_output_is_whole_when_written(tmpfs: Tmpfs, bundle_dir: Path) -> None:
    """The same small disk with room: the atomic write lands the file and nothing else."""
    disk = tmpfs("room")
    proc = cli("run", str(bundle_dir), "--output", str(disk / "y"))
    assert proc.returncode == 0, proc.stderr
    assert listing(disk) == ["y.npz"] and f"wrote {disk / 'y.npz'}" in proc.stdout
    with np.load(disk / "y.npz") as got:
        assert set(got.files) == {"y", "label"}


# --------------------------------------------------------------------------- --report

@pytest.mark.parametrize("command", ["verify", "bench"])
@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_report_into_a_full_or_read_only_folder(command: str, kind: str, tmpfs: Tmpfs,
                                                bundle_dir: Path) -> None:
    disk = tmpfs(kind, read_only=kind == "read-only")
    if kind == "full":
        fill(disk)
    report = disk / "report.html"
    extra = ["--runs", "3", "--warmup", "0"] if command == "bench" else []
    proc = cli(command, str(bundle_dir), "--report", str(report), *extra)
    cause = "no space left on device" if kind == "full" else "read-only file system"
    hint = assert_one_error(proc, f"--report {report}", f"{cause} writing report.html")
    assert "--report /" in hint
    assert listing(disk) == (["filler"] if kind == "full" else [])
    proc = cli(command, "--json", str(bundle_dir), "--report", str(report), *extra)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"] == "output-failed"


# --------------------------------------------------------------------------- tune

def _bundle_on(disk: Path, bundle_dir: Path) -> Path:
    root = disk / bundle_dir.name
    shutil.copytree(bundle_dir, root)
    return root


def test_tune_beside_a_bundle_on_a_read_only_disk(tmpfs: Tmpfs, bundle_dir: Path) -> None:
    disk = tmpfs("media", size="4m")
    root = _bundle_on(disk, bundle_dir)
    tmpfs.remount_read_only(disk)
    proc = cli("tune", str(root), "--runs", "3", "--max-seconds", "0.2")
    hint = assert_one_error(proc, str(disk / "tiny-cpu.tuned.json"),
                            "read-only file system writing tiny-cpu.tuned.json")
    assert "--no-write" in hint
    assert proc.stdout == ""  # refused before measuring
    assert listing(disk) == ["tiny-cpu"]
    proc = cli("tune", str(root), "--runs", "3", "--max-seconds", "0.2", "--no-write")
    assert proc.returncode == 0 and "not written (--no-write)" in proc.stdout, proc.stderr


def test_tune_beside_a_bundle_on_a_full_disk(tmpfs: Tmpfs, bundle_dir: Path) -> None:
    disk = tmpfs("sd", size="4m")
    root = _bundle_on(disk, bundle_dir)
    fill(disk)
    proc = cli("tune", "--json", str(root), "--runs", "3", "--max-seconds", "0.2")
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["error"] == "output-failed" and "--no-write" in doc["hint"]
    assert doc["message"] == "no space left on device writing tiny-cpu.tuned.json"
    assert listing(disk) == ["filler", "tiny-cpu"]  # no tuned file, no temp file
    assert cli("verify", str(root)).returncode == 0  # the bundle itself is untouched


# --------------------------------------------------------------------------- archives

def _unpacked_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_archive_with_a_full_temp_folder(tmpfs: Tmpfs, bundle_dir: Path, bundle_tar: Path) -> None:
    tmp = tmpfs("tmp", size="256k")
    assert _unpacked_bytes(bundle_dir) > 256 * 1024  # it cannot fit: the fault is real
    proc = cli("info", str(bundle_tar), env={"TMPDIR": str(tmp)})
    hint = assert_one_error(proc, str(bundle_tar), "no space left on device unpacking "
                            f"tiny-cpu.tar.gz into the temp folder {tmp}")
    assert "TMPDIR" in hint and "tar xzf" in hint
    assert listing(tmp) == []  # the half-unpacked copy is gone
    proc = cli("verify", "--json", str(bundle_tar), env={"TMPDIR": str(tmp)})
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"] == "io-error"
    assert listing(tmp) == []


def test_archive_with_an_unusable_tmpdir_says_where_it_went(tmpfs: Tmpfs,
                                                            bundle_tar: Path) -> None:
    """Python falls back to /tmp when TMPDIR cannot take a file: not silently."""
    tmp = tmpfs("tmp-ro", read_only=True)
    proc = cli("verify", str(bundle_tar), env={"TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr
    assert f"warning: TMPDIR={tmp} cannot take files" in proc.stderr
    used = re.search(r"the archive is unpacked into (\S+) instead", proc.stderr)
    assert used and Path(used.group(1)).is_dir() and Path(used.group(1)) != tmp, proc.stderr


# --------------------------------------------------------------------------- reading

def without_file_permission_override() -> list[str]:
    """A command prefix that runs as root but without the capabilities that let root read any
    file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so chmod 000 really stops it."""
    _root_only()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        _lacking("no `setpriv` (util-linux) to drop root's file-permission override")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("rel", ["models/tiny.fp32.onnx", "golden/inputs.npz"])
def test_a_bundle_file_that_cannot_be_read(bundle_dir: Path, rel: str) -> None:
    prefix = without_file_permission_override()
    (bundle_dir / rel).chmod(0)
    probe = subprocess.run([*prefix, sys.executable, "-c",
                            f"open({str(bundle_dir / rel)!r}, 'rb')"],
                           capture_output=True, text=True)
    assert "PermissionError" in probe.stderr, probe.stderr  # the fault is real
    for command in ("info", "run", "verify"):
        proc = cli(command, str(bundle_dir), prefix=prefix)
        hint = assert_one_error(proc, str(bundle_dir / rel),
                                f"permission denied reading {Path(rel).name}")
        assert "chmod a+r" in hint


def test_an_io_error_reading_the_bundle(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """EIO from the storage (a dying SD card) while the model file is read: injected into the
    runtime's own reads, since no real device fails on cue."""
    import builtins

    import runtime.bundle
    import runtime.cli as cli_main

    hashing = sys.modules[runtime.bundle.sha256_file.__module__]  # where the hash check reads
    model = bundle_dir / "models" / "tiny.fp32.onnx"
    failed: list[str] = []

    def failing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(file) == model:
            failed.append(str(file))
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", failing_open, raising=False)
    assert cli_main.main(["verify", str(bundle_dir)]) == 2
    assert failed, "the injected fault never fired"
    err = capsys.readouterr().err
    assert err.startswith(f"error: {model}: input/output error reading tiny.fp32.onnx\n"), err
    assert "dmesg" in err and "re-copy the bundle" in err


def test_an_io_error_while_writing_leaves_nothing(bundle_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """EIO halfway through writing --output (injected): no half file, no temp file."""
    import runtime.cli as cli_main

    out = tmp_path / "out"
    out.mkdir()
    calls: list[int] = []

    def failing_savez(fh: Any, **arrays: Any) -> None:
        calls.append(1)
        fh.write(b"PK\x03\x04 half an archive")
        fh.flush()
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(np, "savez", failing_savez)
    assert cli_main.main(["run", str(bundle_dir), "--output", str(out / "y.npz")]) == 2
    assert calls == [1]
    err = capsys.readouterr().err
    assert f"error: --output {out / 'y.npz'}: input/output error writing y.npz" in err, err
    assert listing(out) == []


# --------------------------------------------------------------------------- stdout

def test_stdout_redirected_to_a_full_disk(tmpfs: Tmpfs, bundle_dir: Path) -> None:
    disk = tmpfs("out")
    target = disk / "info.json"
    with open(target, "w") as fh:
        fill(disk)
        proc = cli("info", "--json", str(bundle_dir), stdout=fh)
    hint = assert_one_error(proc, "standard output", "no space left on device writing the "
                            f"output to {target}")
    assert "redirect" in hint
    assert "Exception ignored" not in proc.stderr


def test_a_missing_capability_fails_under_ci_and_skips_elsewhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no root, and CI=true"):
        _lacking("no root")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="no root"):
        _lacking("no root")
