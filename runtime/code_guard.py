"""Only the bundle's listed source runs when this runtime runs from inside a bundle.

Python executes what it finds beside a package's sources before any check of ours can run:
bytecode in ``__pycache__/`` (accepted when its header names the source's mtime and size),
extension modules (``select.cpython-311-x86_64-linux-gnu.so`` wins over ``select.py``), and
top-level modules in the current folder (a ``numpy.py`` at the bundle root). So when this
package sits in a bundle (``bundle.json`` beside it), ``protect()``, called first thing by
``runtime/__init__.py``:

1. installs a finder for the package's submodules that reads ``.py`` files only and checks each
   file's sha256 against bundle.json before executing it; compiled code is cached outside the
   bundle (``~/.cache/edgepack/code``, keyed by that sha256), never in ``__pycache__/``;
2. checks the whole ``runtime/`` folder against bundle.json (every file listed and unchanged,
   nothing unlisted) before any other module of the package runs;
3. takes the bundle root off ``sys.path``, so nothing planted there shadows numpy or a backend.

Bundles ship ``runtime/__pycache__`` as an empty, listed file (``block_bytecode``): Python cannot
create that folder, so no bytecode is written into a bundle, and bytecode planted there replaces
a listed file.

Limits (the README's threat model): ``runtime/__init__.py``, this module and bytecode planted for
them run before any check, and a bundle.json rewritten to match edited files passes unless a
signature is checked. The trusted verifier is a separately installed runtime
(``edgepack-runtime verify --key PUB BUNDLE``): it never imports the bundle's code.

Standard library only: nothing else of the package is imported before the finder is in place.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import marshal
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any, Callable, Mapping, NoReturn

PYCACHE_BLOCKER = "__pycache__"  # inside the bundle's runtime/: an empty regular file
CODE_CACHE_ENV = "EDGEPACK_CODE_CACHE"  # a folder for compiled code, or "off"
_BUNDLE_FILE = "bundle.json"  # == integrity.BUNDLE_FILE (not imported: nothing before the finder)


@dataclass
class GuardState:
    """Whether this process's runtime runs from a bundle, and where its compiled code goes."""

    bundle_root: Path | None = None
    code_cache: Path | None = None
    cache_note: str = "not running from a bundle"

    @property
    def active(self) -> bool:
        return self.bundle_root is not None

    def to_dict(self) -> dict[str, Any]:
        return {"from_bundle": self.active,
                "bundle": None if self.bundle_root is None else str(self.bundle_root),
                "code_cache": None if self.code_cache is None else str(self.code_cache),
                "code_cache_note": self.cache_note}


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


def _sha256_hex(data: bytes) -> str:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef]  # Python >= 3.12
        except ImportError:
            from hashlib import sha256  # type: ignore[assignment]
    return str(sha256(data).hexdigest())


class _CodeCache:
    """Compiled code outside the bundle, one file per source sha256 (+ interpreter tag)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._checked = False

    def _usable(self) -> bool:
        """The folder must be ours and not writable by others (it holds code we execute)."""
        if self.folder is None:
            return False
        if not self._checked:
            self._checked = True
            try:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                st = self.folder.stat()
                if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                    self._disable(f"{self.folder} is not owned by this user or is writable by "
                                  "others; compiling from source instead")
            except OSError as exc:
                self._disable(f"{self.folder}: {exc.strerror or exc}; compiling from source")
        return self.folder is not None

    def _disable(self, note: str) -> None:
        self.folder = None
        STATE.code_cache, STATE.cache_note = None, note

    def code(self, path: str, source: bytes, digest: str,
             compile_source: Callable[[bytes, str], CodeType]) -> CodeType:
        name = f"{digest}.{sys.implementation.cache_tag}.opt{sys.flags.optimize}"
        magic = importlib.util.MAGIC_NUMBER
        if self._usable():
            assert self.folder is not None
            try:
                data = (self.folder / name).read_bytes()
                if data[:len(magic)] == magic:
                    code = marshal.loads(data[len(magic):])
                    import _imp
                    _imp._fix_co_filename(code, path)  # the cache is shared by every copy
                    return code  # type: ignore[no-any-return]
            except (OSError, ValueError, EOFError, TypeError):
                pass  # absent or unreadable: compile again
        code = compile_source(source, path)
        if self._usable() and not sys.dont_write_bytecode:
            assert self.folder is not None
            tmp = self.folder / f".{name}.{os.getpid()}.tmp"
            try:
                tmp.write_bytes(magic + marshal.dumps(code))
                os.replace(tmp, self.folder / name)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                self._disable(f"{self.folder}: {exc.strerror or exc}; compiling from source")
        return code


class _CheckedSourceLoader(importlib.machinery.SourceFileLoader):
    """Executes a listed ``.py`` file of the bundle's runtime once its sha256 checks out."""

    def __init__(self, fullname: str, path: str, finder: "_BundleCodeFinder") -> None:
        super().__init__(fullname, path)
        self._finder = finder

    def get_code(self, fullname: str) -> CodeType:
        source = self.get_data(self.path)  # the bytes checked are the bytes compiled
        digest = self._finder.check(self.path, source)
        return self._finder.cache.code(self.path, source, digest, self.source_to_code)


class _BundleCodeFinder:
    """Resolves ``runtime.*`` to listed ``.py`` files only: never bytecode, never ``.so``."""

    def __init__(self, package: str, pkg_dir: Path, root: Path,
                 files: Mapping[str, Any], cache: _CodeCache) -> None:
        self.prefix, self.pkg_dir, self.root = package + ".", pkg_dir, root
        self.files, self.cache = files, cache

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.prefix):
            return None
        parts = fullname.split(".")[1:]
        folder = self.pkg_dir.joinpath(*parts)
        init, module = folder / "__init__.py", folder.parent / f"{parts[-1]}.py"
        if init.is_file():
            file, search = init, [str(folder)]
        elif module.is_file():
            file, search = module, None
        else:  # no other finder may look: it would take a .so or a .pyc
            raise ModuleNotFoundError(f"No module named {fullname!r} (a bundle's runtime imports "
                                      "only its listed .py files)", name=fullname)
        spec = importlib.util.spec_from_file_location(
            fullname, file, loader=_CheckedSourceLoader(fullname, str(file), self),
            submodule_search_locations=search)
        assert spec is not None
        spec.cached = None  # nothing is read from or written to __pycache__
        return spec

    def check(self, path: str, source: bytes) -> str:
        rel = Path(path).relative_to(self.root).as_posix()
        meta = self.files.get(rel)
        digest = _sha256_hex(source)
        if not isinstance(meta, Mapping) or meta.get("sha256") != digest:
            raise TamperedCodeError(
                "not listed in bundle.json: not executed" if meta is None
                else "differs from its sha256 in bundle.json: not executed",
                where=f"{self.root}/{rel}",
                hint="re-copy the bundle from the build host; do not edit a bundle's runtime")
        return digest


def _cache_folder(root: Path) -> tuple[Path | None, str]:
    setting = os.environ.get(CODE_CACHE_ENV, "").strip()
    if setting.lower() == "off":
        return None, f"{CODE_CACHE_ENV}=off: compiling from source"
    try:
        base = Path(setting) if setting else Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack" / "code"
        base = base.resolve()
    except (OSError, RuntimeError) as exc:  # no home folder
        return None, f"no cache folder ({exc}); compiling from source"
    if base == root or root in base.parents:
        return None, f"{base} is inside the bundle: compiling from source"
    return base, str(base)


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
    try:
        files = _read_files(root)
        folder, note = _cache_folder(root)
        STATE.bundle_root, STATE.code_cache, STATE.cache_note = root, folder, note
        sys.meta_path.insert(0, _BundleCodeFinder(package, pkg_dir, root, files,
                                                  _CodeCache(folder)))
        from .integrity import verify_files  # through the finder: checked before it runs
        verify_files(root, files, within=pkg_dir.name)
    except Exception as exc:
        if hasattr(exc, "to_dict") and _cli_module(package):
            _refuse_cli(exc)
        raise
    finally:
        if STATE.active:
            _unshadow(root)
