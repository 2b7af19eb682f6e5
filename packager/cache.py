"""A content-addressed build cache: a step's result is stored under a hash of everything it depends on.

Keys chain: an artifact's key holds its input's key, the step name and config, and the versions of
the tools that shape its output, so a changed weight, manifest field, target or tool version is a
different key (never a stale hit). Entries are written atomically (temp folder + rename), removed
atomically (renamed aside, then deleted) and their blobs are checked against recorded hashes on
read, so a killed build cannot corrupt the cache; the temp folders a killed build leaves are
removed by the next build that writes.

A cache is an optimisation: when its filesystem refuses a write (full, read-only, permission,
I/O error) the build goes on without storing, and the first failure is kept in ``write_error``
for one warning in the build summary.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .remote_cache import RemoteCache

DEFAULT_MAX_BYTES = 2 * 1024**3
TEMP_PREFIXES = (".put-", ".trash-")  # in the cache root: a write or a removal under way


def default_cache_dir() -> Path:
    """$EDGEPACK_CACHE_DIR/build, else $XDG_CACHE_HOME/edgepack/build, else ~/.cache/edgepack/build."""
    if os.environ.get("EDGEPACK_CACHE_DIR"):
        return Path(os.environ["EDGEPACK_CACHE_DIR"]) / "build"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack" / "build"


def tool_versions(*names: str) -> dict[str, str]:
    """Installed versions of distributions (absent ones as 'none'): part of every key."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def code_hash() -> str:
    """A hash of edgepack's own code (packager and runtime): a development checkout changes it
    without changing the version, and cached results must follow the code that made them."""
    global _CODE_HASH
    if _CODE_HASH is None:
        here = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for folder in (here, here.parent / "runtime"):
            for path in sorted(folder.rglob("*.py")):
                h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


_CODE_HASH: str | None = None


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Named arrays as .npz bytes (no pickles), in the dict's order."""
    buf = io.BytesIO()
    savez: Callable[..., None] = np.savez  # numpy's stubs type **kwds as its allow_pickle flag
    savez(buf, **arrays)
    return buf.getvalue()


def make_key(*parts: Any) -> str:
    """A stable hash of JSON-able parts (dict order does not matter)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def hash_arrays(arrays: dict[str, np.ndarray] | Iterable[dict[str, np.ndarray]]) -> str:
    """A hash of named arrays' names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for group in ([arrays] if isinstance(arrays, dict) else arrays):
        for name in sorted(group):
            a = np.ascontiguousarray(group[name])
            h.update(f"{name}|{a.dtype}|{a.shape}|".encode())
            h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class Entry:
    """A cached step result: JSON metadata and named binary blobs."""

    meta: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)


class BuildCache:
    """Get/put entries by key under ``root``; ``enabled=False`` makes every get a miss and put a no-op."""

    def __init__(self, root: Path | None = None, *, enabled: bool = True,
                 max_bytes: int = DEFAULT_MAX_BYTES, remote: RemoteCache | None = None) -> None:
        self.root = root or default_cache_dir()
        self.enabled = enabled
        self.remote = remote if enabled else None  # a registry shared with other machines (--cache-from/-to)
        self.max_bytes = max_bytes
        self.hits: list[str] = []
        self.misses: list[str] = []
        self.write_error: str | None = None  # the first write the filesystem refused; writes stop
        self._swept = False

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        """Whether an entry exists (not checked, not counted): for planning work, not for using it."""
        if not self.enabled:
            return False
        return (self._dir(key) / "meta.json").is_file() or (self.remote is not None and self.remote.has(key))

    def get(self, key: str, label: str) -> Entry | None:
        """The entry, if present and intact (a damaged one is removed and counts as a miss)."""
        if not self.enabled:
            return None
        entry = self.peek(key)
        (self.hits if entry is not None else self.misses).append(label)
        return entry

    def drop(self, key: str) -> None:
        self._remove(self._dir(key))

    def _remove(self, folder: Path) -> None:
        """Rename aside, then delete: a build killed meanwhile leaves a temp folder, never a torn entry."""
        if not folder.exists():
            return
        trash = self.root / f"{TEMP_PREFIXES[1]}pid{os.getpid()}-{os.urandom(6).hex()}"
        try:
            os.replace(folder, trash)
        except OSError:
            return  # a read-only cache, say: its entries stay, and are checked on every read
        shutil.rmtree(trash, ignore_errors=True)

    def peek(self, key: str) -> Entry | None:
        """``get`` without counting a hit or miss: for entries the caller must still validate.
        A local miss is looked up in the remote cache; a remote hit is kept locally too."""
        entry = self._peek_local(key)
        if entry is None and self.remote is not None:
            entry = self.remote.get(key)
            if entry is not None:
                try:
                    self._put(key, entry, replace=True)
                except OSError:
                    pass  # a local cache that refuses writes: the remote entry is used all the same
        return entry

    def _peek_local(self, key: str) -> Entry | None:
        if not self.enabled:
            return None
        folder = self._dir(key)
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._remove(folder)  # absent; or a folder without meta.json (torn by an older edgepack)
            return None
        except (OSError, ValueError):
            self._remove(folder)  # damaged: rebuild it
            return None
        try:
            blobs = {}
            for name, digest in meta.pop("_blobs").items():
                data = (folder / name).read_bytes()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ValueError(f"blob {name} does not match its hash")
                blobs[name] = data
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._remove(folder)  # damaged (a blob missing or altered): rebuild it
            return None
        now = time.time()
        try:
            os.utime(folder, (now, now))  # recently used: evicted last
        except OSError:
            pass  # a read-only cache still serves its entries
        return Entry(meta, blobs)

    def put(self, key: str, entry: Entry, *, replace: bool = False) -> None:
        """Store atomically; a concurrent writer of the same key wins harmlessly (same content).
        ``replace``: the key names a slot whose content changes (not a content address).
        A write the filesystem refuses is recorded (``write_error``), not raised: the build goes on."""
        if not self.enabled:
            return
        if self.remote is not None:
            self.remote.put(key, entry)
        if self.write_error is not None:
            return
        try:
            self._put(key, entry, replace)
            self.evict()
        except OSError as exc:
            from .errors import disk_error
            err = disk_error(exc, "storing a build step", self.root, needed=sum(map(len, entry.blobs.values())),
                             option="--cache-dir")
            self.write_error = (f"build cache not written: {err.message}; this build went on without "
                                f"caching its steps ({err.hint}, or --no-cache)")

    def _put(self, key: str, entry: Entry, replace: bool) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._swept:
            self._swept = True
            self.remove_stale_temps()
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIXES[0]}pid{os.getpid()}-", dir=self.root))
        try:
            digests = {}
            for name, data in entry.blobs.items():
                (tmp / name).write_bytes(data)
                digests[name] = hashlib.sha256(data).hexdigest()
            (tmp / "meta.json").write_text(json.dumps(dict(entry.meta, _blobs=digests), default=str),
                                           encoding="utf-8")
            final = self._dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if replace:
                self.drop(key)
            try:
                os.replace(tmp, final)
            except OSError:  # already there (another build put it first)
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove_stale_temps(self) -> list[str]:
        """Temp folders of builds that were killed (their process is gone): safe to delete."""
        from .bundle.writer import _alive
        removed = []
        for prefix in TEMP_PREFIXES:
            for tmp in self.root.glob(f"{prefix}*"):
                pid = tmp.name[len(prefix):].split("-")[0].removeprefix("pid")
                if pid.isdigit() and not _alive(int(pid)):
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(tmp.name)
        return removed

    def evict(self) -> list[str]:
        """Remove least recently used entries until the cache fits ``max_bytes``."""
        if not self.root.is_dir():
            return []
        entries = []
        total = 0
        for folder in self.root.glob("??/*"):
            try:  # another build may remove an entry meanwhile
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                entries.append((folder.stat().st_mtime, size, folder))
            except FileNotFoundError:
                continue
            total += size
        removed = []
        for _, size, folder in sorted(entries):
            if total <= self.max_bytes:
                break
            self._remove(folder)
            total -= size
            removed.append(folder.name)
        return removed

    def summary(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "dir": str(self.root), "hits": list(self.hits),
                "misses": list(self.misses), "write_error": self.write_error,
                "remote": self.remote.summary() if self.remote is not None else None}
