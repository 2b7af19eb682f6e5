"""Only the bundle's listed source runs when this runtime runs from inside a bundle.

Python executes what it finds beside a package's sources before any check of ours can run:
bytecode in ``__pycache__/`` (accepted when its header names the source's mtime and size),
extension modules (``select.cpython-311-x86_64-linux-gnu.so`` wins over ``select.py``), and
top-level modules in the current folder (a ``numpy.py`` at the bundle root). So when this
package sits in a bundle (``bundle.json`` beside it), ``protect()``, called first thing by
``runtime/__init__.py``:

1. installs a finder for the package's submodules that reads ``.py`` files only and checks each
   file's sha256 against bundle.json before executing it (an unlisted or changed module is
   refused, under ``python -m runtime`` with the CLI's own error and exit 2); compiled code is
   cached outside the bundle (``runtime.code_cache``, keyed by that sha256), never in
   ``__pycache__/``;
2. takes the bundle root off ``sys.path``, so nothing planted there shadows numpy or a backend.

Every command then checks the whole bundle (``Bundle.verify``: every file listed and unchanged,
nothing unlisted) before it loads a model.

Bundles ship ``runtime/__pycache__`` as an empty, listed file (``block_bytecode``): Python cannot
create that folder, so no bytecode is written into a bundle, and bytecode planted there replaces
a listed file.

Limits (the README's threat model): ``runtime/__init__.py``, ``runtime/code_cache.py``, this
module and bytecode planted for them run before any check, and a bundle.json rewritten to match
edited files passes unless a signature is checked. The trusted verifier is a separately installed runtime
(``edgepack-runtime verify --key PUB BUNDLE``): it never imports the bundle's code.

Standard library and ``code_cache`` only: nothing else of the package runs before the finder is
in place.
"""
from __future__ import annotations

import importlib.machinery
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import CodeType
from typing import Any, NoReturn

from .code_cache import BUNDLE_FILE as _BUNDLE_FILE
from .code_cache import CodeCache, cache_folder, sha256_hex

PYCACHE_BLOCKER = "__pycache__"  # inside the bundle's runtime/: an empty regular file


class GuardState:
    """Whether this process's runtime runs from a bundle, where its compiled code goes, and the
    sha256 of every source the finder checked (``Bundle.verify`` reuses them: see known_digest)."""

    def __init__(self) -> None:
        self.bundle_root: Path | None = None
        self.cache = CodeCache(None, "not running from a bundle")
        self._digests: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}

    @property
    def active(self) -> bool:
        return self.bundle_root is not None

    @property
    def cache_note(self) -> str:
        return self.cache.note

    def remember(self, st: os.stat_result, digest: str) -> None:
        self._digests[(st.st_dev, st.st_ino)] = ((st.st_size, st.st_mtime_ns, st.st_ctime_ns),
                                                 digest)

    def known_digest(self, st: os.stat_result) -> str | None:
        """The sha256 this process computed for that very file, if it has not changed since:
        same inode, size, mtime and ctime (any write moves ctime, which cannot be set back)."""
        known = self._digests.get((st.st_dev, st.st_ino))
        if known is not None and known[0] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return known[1]
        return None

    def to_dict(self) -> dict[str, Any]:
        folder = self.cache.folder
        return {"from_bundle": self.active,
                "bundle": None if self.bundle_root is None else str(self.bundle_root),
                "code_cache": None if folder is None else str(folder),
                "code_cache_note": self.cache.note}


STATE = GuardState()


class TamperedCodeError(ImportError):
    """A module of the bundle's runtime is unlisted or differs from bundle.json: not executed.

    An ImportError (the import system raises it) that prints like the runtime's HintedError.
    """

    def __init__(self, message: str, *, where: str, hint: str, code: str = "bundle-integrity"):
        super().__init__(message)
        self.message, self.where, self.hint, self.code = message, where, hint, code

    def __str__(self) -> str:
        return f"{self.where}: {self.message}\n  hint: {self.hint}"

    def to_dict(self) -> dict[str, str | None]:
        return {"error": self.code, "message": self.message, "where": self.where,
                "hint": self.hint}


def block_bytecode(runtime_copy: Path) -> None:
    """Make a bundle's runtime copy unable to hold ``__pycache__/`` (packager side)."""
    (runtime_copy / PYCACHE_BLOCKER).write_bytes(b"")


class _CheckedSourceLoader(importlib.machinery.SourceFileLoader):
    """Executes a listed ``.py`` file of the bundle's runtime once its sha256 checks out."""

    def __init__(self, fullname: str, path: str, finder: _BundleCodeFinder) -> None:
        super().__init__(fullname, path)
        self._finder = finder

    def get_code(self, fullname: str) -> CodeType:
        with open(self.path, "rb") as fh:  # the bytes checked are the bytes compiled
            before = os.fstat(fh.fileno())
            source = fh.read()
            after = os.fstat(fh.fileno())
        unchanged = (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == \
            (after.st_size, after.st_mtime_ns, after.st_ctime_ns)  # not written while read
        known = STATE.known_digest(after) if unchanged else None  # Bundle.verify hashed it
        digest = self._finder.check(self.path, source, known)
        if unchanged:
            STATE.remember(after, digest)
        return self._finder.cache.code(self.path, source, digest, self.source_to_code)


class _BundleCodeFinder:
    """Resolves ``runtime.*`` to listed ``.py`` files only: never bytecode, never ``.so``."""

    def __init__(self, package: str, pkg_dir: Path, root: Path,
                 files: Mapping[str, Any], cache: CodeCache, cli: bool) -> None:
        self.prefix, self.pkg_dir, self.root = package + ".", pkg_dir, root
        self._pkg_dir, self._root = str(pkg_dir), str(root)
        self.files, self.cache, self.cli = files, cache, cli

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.prefix):
            return None
        base = os.path.join(self._pkg_dir, *fullname.split(".")[1:])  # strings: on every import
        init, module = os.path.join(base, "__init__.py"), base + ".py"
        if os.path.isfile(init):
            file, search = init, [base]
        elif os.path.isfile(module):
            file, search = module, None
        else:  # no other finder may look: it would take a .so or a .pyc
            raise ModuleNotFoundError(f"No module named {fullname!r} (a bundle's runtime imports "
                                      "only its listed .py files)", name=fullname)
        spec = importlib.machinery.ModuleSpec(
            fullname, _CheckedSourceLoader(fullname, file, self), origin=file,
            is_package=search is not None)
        spec.has_location, spec.cached = True, None  # nothing read from or written to __pycache__
        if search is not None:
            spec.submodule_search_locations = search
        return spec

    def check(self, path: str, source: bytes, digest: str | None = None) -> str:
        """``source`` (read from ``path``; ``digest``: its sha256 when already known) against
        bundle.json; refused unless listed with that sha256."""
        rel = path[len(self._root) + 1:].replace(os.sep, "/")  # find_spec built it under root
        meta = self.files.get(rel)
        digest = digest or sha256_hex(source)
        if not isinstance(meta, Mapping) or meta.get("sha256") != digest:
            what = f"unexpected: {rel}" if meta is None else f"modified: {rel} (sha256 differs)"
            error = TamperedCodeError(
                f"bundle files do not match bundle.json ({what}); not executed",
                where=f"{self.root}/{rel}",
                hint="re-copy the bundle from the build host or rebuild it; do not add, edit or "
                     "remove files inside a bundle")
            if self.cli:
                _refuse_cli(error)  # SystemExit passes through the import machinery untouched
            raise error
        return digest


def _read_files(root: Path) -> Mapping[str, Any]:
    path = root / _BUNDLE_FILE
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TamperedCodeError(f"cannot read: {exc}", where=str(path), code="bundle-format",
                                hint="the file is damaged; re-copy the bundle") from exc
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or not files:
        raise TamperedCodeError("no 'files' section: the runtime's code cannot be checked",
                                where=str(path), code="bundle-integrity",
                                hint="rebuild the bundle with edgepack")
    return files


def _unshadow(root: Path) -> None:
    """Drop the bundle root from sys.path: the runtime package is its only importable entry."""
    keep = []
    for entry in sys.path:
        try:
            same = Path(entry or os.getcwd()).resolve() == root
        except (OSError, ValueError):
            same = False
        if not same:
            keep.append(entry)
    sys.path[:] = keep


def _cli_module(package: str) -> bool:
    """True while ``python -m runtime ...`` imports this package (runpy sets argv[0] to -m)."""
    if sys.argv[:1] != ["-m"]:
        return False
    argv = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(argv[1:], 1):
        name = argv[i + 1] if arg == "-m" and i + 1 < len(argv) else (
            arg[2:] if arg.startswith("-m") and len(arg) > 2 else None)
        if name is not None:
            return name == package or name.startswith(package + ".")
    return False


def _refuse_cli(exc: Any) -> NoReturn:
    """The CLI's own error shape (text on stderr, --json on stdout), exit 2."""
    sys.stderr.write(f"error: {exc}\n")
    if "--json" in sys.argv[1:]:
        sys.stdout.write(json.dumps({"ok": False, **exc.to_dict()}, indent=2) + "\n")
    raise SystemExit(2)


def protect(package: str, init_file: str) -> None:
    """From ``__init__``: when this package is a bundle's runtime, run only its listed source."""
    pkg_dir = Path(init_file).resolve().parent
    root = pkg_dir.parent
    if STATE.active or not (root / _BUNDLE_FILE).is_file():
        return
    cli = _cli_module(package)
    try:
        files = _read_files(root)
    except TamperedCodeError as exc:
        if cli:
            _refuse_cli(exc)
        raise
    STATE.bundle_root, STATE.cache = root, CodeCache(*cache_folder(root))
    sys.meta_path.insert(0, _BundleCodeFinder(package, pkg_dir, root, files, STATE.cache, cli))
    _unshadow(root)
