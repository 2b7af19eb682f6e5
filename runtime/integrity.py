"""Which files a bundle holds and whether they are exactly the ones bundle.json lists.

The packager lists a bundle with ``list_bundle_files`` and the runtime checks it with
``verify_files``, so both sides agree on which files count and how they are hashed. Nothing is
ignored: bytecode, ``__pycache__/``, notes and editor backups are files like any other, and a
file bundle.json does not list makes the bundle untrusted (see ``runtime.code_guard``).

Standard library only (plus ``digest`` and ``errors``), so checking is cheap to import.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .code_guard import STATE
from .digest import sha256
from .errors import IntegrityError

BUNDLE_FILE = "bundle.json"
SIGNATURE_FILE = "bundle.sig"
MODEL_SIGNATURE_FILE = "model.sig"
# The only unlisted names the check accepts (at the bundle root, as regular files): bundle.json
# cannot hash itself, bundle.sig signs bundle.json (see runtime/signing.py), and model.sig signs
# every file, bundle.json included (OpenSSF model-signing, runtime/model_signing.py).
UNLISTED_FILES = frozenset({BUNDLE_FILE, SIGNATURE_FILE, MODEL_SIGNATURE_FILE})
_CHUNK = 1 << 20
_CODE_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".pth")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks so large models do not fill memory.

    In a bundle's runtime, a file hashed before in this process (by the code guard before it ran
    a module, or here) and unchanged since (``GuardState.known_digest``) is not read again."""
    if not STATE.active:
        return _hash_file(path)[0]
    known = STATE.known_digest(os.stat(path))
    if known is not None:
        return known
    digest, st = _hash_file(path)
    if st is not None:
        STATE.remember(st, digest)
    return digest


def _hash_file(path: str | os.PathLike[str]) -> tuple[str, os.stat_result | None]:
    """The digest, and the file's stat when it did not change while it was read."""
    with open(path, "rb") as fh:
        before = os.fstat(fh.fileno())
        digest = sha256(size_hint=before.st_size)
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
        after = os.fstat(fh.fileno())
    same = (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == \
        (after.st_size, after.st_mtime_ns, after.st_ctime_ns)
    return digest.hexdigest(), after if same else None


def walk_entries(root: Path) -> list[tuple[PurePosixPath, Path]]:
    """Every non-directory entry below ``root`` (symlinks not followed), sorted by relative path;
    a symlinked directory is an entry, not descended into."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            full = base / name
            found.append((PurePosixPath(full.relative_to(root).as_posix()), full))
        dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())
    return sorted(found)


def list_bundle_files(root: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The ``files`` section for a bundle dir: relpath -> {"sha256", "size"}; bundle.json and
    bundle.sig excluded (one cannot hash itself, the other is written after it)."""
    root = Path(root)
    files: dict[str, dict[str, Any]] = {}
    for rel, full in walk_entries(root):
        if str(rel) in UNLISTED_FILES:
            continue
        files[str(rel)] = {"sha256": sha256_file(full), "size": full.stat().st_size}
    return files


def check_relpath(rel: Any, where: str) -> PurePosixPath:
    """A path named in bundle.json must stay inside the bundle."""
    from .errors import BundleFormatError
    p = PurePosixPath(rel) if isinstance(rel, str) else PurePosixPath()
    if (not rel or not isinstance(rel, str) or not p.parts or p.is_absolute() or ".." in p.parts
            or "\\" in rel or ":" in p.parts[0] or "\x00" in rel):
        raise BundleFormatError(f"path {rel!r} is not a relative path inside the bundle",
                                where=where, hint="use POSIX relative paths without '..'")
    return p


def _unexpected(key: str, full: Path) -> str | None:
    """Why an unlisted entry is refused (None: bundle.json / bundle.sig at the root)."""
    try:
        st = full.lstat()
    except OSError:  # vanished while walking
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"{key} (symlink)"
    if key in UNLISTED_FILES and stat.S_ISREG(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        return f"{key} (special file)"  # fifo, device, socket
    if key.lower().endswith(_CODE_SUFFIXES) or "__pycache__" in PurePosixPath(key).parts:
        return f"{key} (bytecode or native code)"
    return key


def verify_files(root: str | os.PathLike[str], files: Mapping[str, Mapping[str, Any]],
                 *, display_root: str | None = None) -> None:
    """Refuse a bundle whose files differ from the ``files`` list; name every offending file.

    Every entry on disk must be listed (bundle.json and bundle.sig at the root excepted), every
    listed file must be a regular file with its size and sha256. ``display_root`` replaces
    ``root`` in the error's ``where`` (e.g. the archive's name when ``root`` is a temp dir that
    disappears).
    """
    root = Path(root)
    missing: list[str] = []
    modified: list[str] = []
    for rel, meta in sorted(files.items()):
        check_relpath(rel, f"{BUNDLE_FILE}: files")
        full = root / rel
        if full.is_symlink():
            missing.append(f"{rel} (symlink)")
            continue
        if not full.is_file():
            missing.append(rel if not full.exists() else f"{rel} (not a regular file)")
            continue
        if not isinstance(meta, Mapping):
            modified.append(f"{rel} (no sha256 in bundle.json)")
            continue
        size = full.stat().st_size
        if meta.get("size") is not None and size != meta["size"]:
            modified.append(f"{rel} (size {size} != {meta['size']})")
        elif sha256_file(full) != meta.get("sha256"):
            modified.append(f"{rel} (sha256 differs)")
    unexpected = [why for rel, full in walk_entries(root) if str(rel) not in files
                  for why in [_unexpected(str(rel), full)] if why is not None]
    problems = [f"{kind}: " + ", ".join(items) for kind, items in
                (("missing", missing), ("modified", modified), ("unexpected", unexpected)) if items]
    if problems:
        first = (missing or modified or unexpected)[0].split(" (")[0]
        code = any(x.endswith("(bytecode or native code)") for x in unexpected)
        raise IntegrityError(
            "bundle files do not match bundle.json (" + "; ".join(problems) + ")",
            where=f"{display_root or root}/{first}",
            hint="a bundle never holds bytecode or native code, so this copy was altered: "
                 "discard it, re-copy the bundle from the build host and check it with a "
                 "separately installed runtime (edgepack-runtime verify --key PUB BUNDLE)" if code
            else "re-copy the bundle from the build host or rebuild it; do not add, edit or "
                 "remove files inside a bundle")
