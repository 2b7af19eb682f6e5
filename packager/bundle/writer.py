"""Write a bundle directory and its deterministic archive, atomically."""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import runtime
from runtime.bundle import BUNDLE_FILE, Bundle, list_bundle_files
from runtime.code_guard import block_bytecode

from ..errors import BuildError, OutputError, disk_error
from .signing import SigningKeys

SIGNATURE_FILE = "bundle.sig"
MODEL_SIGNATURE_FILE = "model.sig"  # OpenSSF model-signing (bundle/model_sig.py)
LOCK_FILE = ".edgepack.lock"  # in the output folder: serialises moving bundles into place

RUNTIME_DIR = Path(runtime.__file__).resolve().parent
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez without timestamps, so the same arrays always give the same bytes (no pickles)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def runtime_files() -> list[Path]:
    """The runtime package's files (no caches), relative to RUNTIME_DIR, sorted."""
    return sorted(p.relative_to(RUNTIME_DIR) for p in RUNTIME_DIR.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"))


def copy_runtime(dest: Path) -> None:
    """A clean copy of the runtime package (no caches) into the bundle. File by file, not
    shutil.copytree: a full disk must raise its own OSError, not a list of every file that failed."""
    for rel in runtime_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RUNTIME_DIR / rel, dest / rel)
    block_bytecode(dest)  # runtime/__pycache__ as an empty listed file: no bytecode in a bundle


def write_archive(src_dir: Path, archive: Path, top: str) -> None:
    """A byte-for-byte reproducible tar.gz: sorted entries, fixed times, owners and modes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = sorted(src_dir.rglob("*"), key=lambda p: p.relative_to(src_dir).as_posix())
        for path in [src_dir] + entries:
            rel = path.relative_to(src_dir).as_posix()
            name = top if rel == "." else f"{top}/{rel}"
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, path.stat().st_size
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
    with archive.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on ``path`` for the block; released if the process dies."""
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def remove_stale_temps(out_dir: Path) -> list[str]:
    """Temp folders left by builds that were killed (their process is gone): safe to delete."""
    removed = []
    for tmp in out_dir.glob(".*.pid*-tmp-*"):
        pid = tmp.name.rsplit(".pid", 1)[-1].split("-tmp-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BundleWriter:
    """Builds a bundle in a temp folder next to the output, then moves it into place at once.

    An interrupted build leaves only a hidden temp folder, never a half bundle at the final path.
    A filesystem that refuses a write (full, read-only, I/O error) is an OutputError naming the
    folder, with the temp folder removed and any previous bundle left as it was.
    """

    def __init__(self, out_dir: Path, bundle_name: str, *, expected_bytes: int = 0) -> None:
        self.out_dir = out_dir
        self.bundle_name = bundle_name
        # folder + archive (models compress little): shown when the disk is full
        self.expected_bytes = 2 * (expected_bytes + sum((RUNTIME_DIR / r).stat().st_size for r in runtime_files()))
        with self._io():
            out_dir.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{bundle_name}.pid{os.getpid()}-tmp-", dir=out_dir))
            self.root = self.tmp / bundle_name
            self.root.mkdir()

    @contextlib.contextmanager
    def _io(self) -> Iterator[None]:
        """OSError -> OutputError (after removing the temp folder, so the free space shown is real)."""
        try:
            yield
        except OSError as exc:
            if hasattr(self, "tmp"):
                self.discard()
            raise disk_error(exc, f"writing the bundle {self.bundle_name}", self.out_dir,
                             needed=self.expected_bytes, cls=OutputError, where="--out",
                             option="--out") from exc

    def write_bytes(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        with self._io():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return path

    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_npz(self, rel: str, arrays: Mapping[str, np.ndarray]) -> None:
        path = self.root / rel
        with self._io():
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npz(path, arrays)

    def finish(self, document: Bundle, keys: SigningKeys | None = None,
               attest: Callable[[dict[str, dict[str, Any]]], dict[str, bytes]] | None = None) -> tuple[Path, Path]:
        """Add the runtime, the attestations ``attest`` makes from every file's hash, and bundle.json
        (with every file's hash), sign it if asked (bundle.sig, then model.sig over everything),
        archive, and move into place."""
        with self._io():
            return self._finish(document, keys or SigningKeys(), attest)

    def _finish(self, document: Bundle, keys: SigningKeys,
                attest: Callable[[dict[str, dict[str, Any]]], dict[str, bytes]] | None) -> tuple[Path, Path]:
        copy_runtime(self.root / "runtime")
        if attest is not None:  # the BOM and provenance describe every other file
            for rel, data in attest(list_bundle_files(self.root)).items():
                (self.root / rel).write_bytes(data)
        # written only through the runtime's own classes: what the device reads is what was written
        document = replace(document, root=self.root, files=list_bundle_files(self.root), raw={})
        data = (json.dumps(document.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")
        (self.root / BUNDLE_FILE).write_bytes(data)
        if keys.bundle is not None:
            from .signing import sign
            (self.root / SIGNATURE_FILE).write_text(json.dumps(sign(data, keys.bundle), indent=2) + "\n",
                                                    encoding="utf-8")
        if keys.model is not None:
            from .model_sig import model_signature
            (self.root / MODEL_SIGNATURE_FILE).write_bytes(model_signature(self.root, self.bundle_name, keys.model))
        archive_tmp = self.tmp / f"{self.bundle_name}.tar.gz"
        write_archive(self.root, archive_tmp, self.bundle_name)
        final_dir = self.out_dir / self.bundle_name
        final_archive = self.out_dir / f"{self.bundle_name}.tar.gz"
        # one build at a time moves a bundle into place: two builds into the same folder end with
        # one whole bundle, never the folder of one and the archive of the other
        with _locked(self.out_dir / LOCK_FILE):
            for path, kind in ((final_archive, "file"), (final_dir, "folder")):
                if path.exists() and (path.is_dir() != (kind == "folder") or path.is_symlink()):
                    raise BuildError(f"{path} exists and is not a {kind} edgepack wrote", where="--out",
                                     hint="move it away, or choose another output folder")
            # old archive out first: a kill between these steps leaves a whole (old or new) folder
            # and no archive, never an archive that disagrees with the folder
            if final_archive.exists():
                final_archive.unlink()
            previous = self.tmp / "previous"
            if final_dir.exists():
                os.replace(final_dir, previous)
            try:
                os.replace(self.root, final_dir)
            except OSError:
                if previous.exists():  # put the old (whole) folder back before giving up
                    os.replace(previous, final_dir)
                raise
            os.replace(archive_tmp, final_archive)
        self.discard()
        return final_dir, final_archive

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
