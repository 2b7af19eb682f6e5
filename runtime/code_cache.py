"""Compiled code of a bundle's runtime, cached outside the bundle and keyed by source sha256.

A bundle's ``runtime/__pycache__`` is blocked (see ``code_guard``), so Python cannot cache the
bytecode of a bundle's runtime itself; compiling it on every start would cost tens of ms of a
~100 ms cold start. The cache lives in ``$EDGEPACK_CODE_CACHE`` (``off`` disables it), else
``$XDG_CACHE_HOME/edgepack/code`` or ``~/.cache/edgepack/code``: never inside the bundle, and only
in a folder owned by this user and writable by no one else (it holds code that is executed).
A file is named by the source's sha256, so every bundle with the same runtime shares it, and a
changed source can never pick up another's code.

Standard library only, and small: it is compiled from source on every start, before anything
else of the package, so that ``load_code_guard`` can take the (larger) guard from the cache.
"""
from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Callable
from importlib._bootstrap_external import MAGIC_NUMBER  # = importlib.util's, without its imports
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import CodeType, ModuleType

CODE_CACHE_ENV = "EDGEPACK_CODE_CACHE"  # a folder for compiled code, or "off"
BUNDLE_FILE = "bundle.json"  # == integrity.BUNDLE_FILE (not imported: nothing before the guard)


def sha256_hex(data: bytes) -> str:
    """CPython's own SHA-256 (no OpenSSL start-up cost; see runtime.digest)."""
    for name in ("_sha256", "_sha2"):  # Python <= 3.11, >= 3.12
        try:
            return str(__import__(name).sha256(data).hexdigest())
        except ImportError:
            continue
    from hashlib import sha256
    return sha256(data).hexdigest()


def cache_folder(bundle_root: Path) -> tuple[Path | None, str]:
    """The folder for ``bundle_root``'s compiled code, or None and why not."""
    setting = os.environ.get(CODE_CACHE_ENV, "").strip()
    if setting.lower() == "off":
        return None, f"{CODE_CACHE_ENV}=off: compiling from source"
    try:
        base = Path(setting) if setting else Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack" / "code"
        base = base.resolve()
    except (OSError, RuntimeError) as exc:  # no home folder
        return None, f"no cache folder ({exc}); compiling from source"
    if base == bundle_root or bundle_root in base.parents:
        return None, f"{base} is inside the bundle: compiling from source"
    return base, str(base)


class CodeCache:
    """Compiled code in ``folder``, one file per source sha256 (+ interpreter tag)."""

    def __init__(self, folder: Path | None, note: str) -> None:
        self.folder, self.note = folder, note
        self._checked = False

    def _usable(self) -> bool:
        if self.folder is not None and not self._checked:
            self._checked = True
            try:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                st = self.folder.stat()
                if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                    self._disable(f"{self.folder} is not owned by this user or is writable by "
                                  "others; compiling from source")
            except OSError as exc:
                self._disable(f"{self.folder}: {exc.strerror or exc}; compiling from source")
        return self.folder is not None

    def _disable(self, note: str) -> None:
        self.folder, self.note = None, note

    def code(self, path: str, source: bytes, digest: str,
             compile_source: Callable[[bytes, str], CodeType]) -> CodeType:
        """The code of ``source`` (whose sha256 is ``digest``): cached, or compiled and cached."""
        name = f"{digest}.{sys.implementation.cache_tag}.opt{sys.flags.optimize}"
        magic = MAGIC_NUMBER
        if self._usable():
            assert self.folder is not None
            try:
                data = (self.folder / name).read_bytes()
                if data[:len(magic)] == magic:
                    code = marshal.loads(data[len(magic):])
                    fix_filename = vars(__import__("_imp"))["_fix_co_filename"]
                    fix_filename(code, path)  # the cache is shared by every copy
                    return code
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


def _compile(source: bytes, path: str) -> CodeType:
    return compile(source, path, "exec", dont_inherit=True)


def load_code_guard(package: str, init_file: str) -> ModuleType:
    """``<package>.code_guard``; in a bundle its code comes from the cache (the guard runs
    before any check, like this module and ``__init__``: see the README's threat model)."""
    name = f"{package}.code_guard"
    pkg_dir = Path(init_file).resolve().parent
    if not (pkg_dir.parent / BUNDLE_FILE).is_file():
        from importlib import import_module
        return import_module(name)
    path = str(pkg_dir / "code_guard.py")
    cache = CodeCache(*cache_folder(pkg_dir.parent))
    with open(path, "rb") as fh:
        source = fh.read()
    module = ModuleType(name)
    module.__spec__ = spec = ModuleSpec(name, None, origin=path)
    spec.has_location, spec.cached = True, None
    module.__file__, module.__package__, module.__loader__ = path, package, None
    sys.modules[name] = module
    try:
        exec(cache.code(path, source, sha256_hex(source), _compile), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    vars(sys.modules[package])["code_guard"] = module
    return module
