"""What the user's entry points read, so a rebuild can tell "nothing changed" without calling them.

Calling a model entry point means importing torch and running the user's code; calling a data
entry point may import scikit-learn or read a dataset. On a rebuild with nothing changed that is
most of the time spent. While the entry points run the first time, an audit hook
(``sys.addaudithook``) records every file opened for reading and every folder listed through
Python; afterwards the local modules loaded in the process are added. The resulting
:class:`Fingerprint` (content hashes of those files, the listings of those folders, the installed
distributions and the Python version) is stored with the results. The next build re-hashes it: if
all of it is unchanged, the entry points would see exactly the same inputs, so their results are
taken from the cache.

What it cannot see: reads done by native code that bypasses Python's ``open`` (h5py, a
TensorFlow SavedModel read by TensorFlow itself: the packager adds the manifest's own source
path explicitly), environment variables, the clock, the network and subprocesses.
``edgepack build --reload-inputs`` calls the entry points regardless.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import site
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_active: list[Trace] = []
_lock = threading.Lock()
_hook_installed = False

# folders whose contents are covered by the installed-distributions part of the fingerprint (or
# are not files at all): reads there are not recorded
_VIRTUAL = ("/proc/", "/sys/", "/dev/")


def _installed_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # some virtualenv layouts
        pass
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user:
        roots.add(user)
    # edgepack's own code is part of every cache key already
    here = Path(__file__).resolve().parents[1]  # packager/
    roots.update({str(here), str(here.parent / "runtime")})
    return tuple(sorted(os.path.join(os.path.realpath(r), "") for r in roots if r))


@dataclass
class Trace:
    """Paths seen while tracing (absolute, as opened)."""

    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    # runs on every audited event of the process: return fast, never raise
    if not _active:
        return
    try:
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            if mode is not None:
                if any(c in str(mode) for c in "wax+"):
                    return
            elif isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR):
                return
            _active[-1].files.add(os.path.abspath(os.fsdecode(path)))
        elif event in ("os.listdir", "os.scandir"):
            path = args[0]
            if isinstance(path, int) or sys._getframe(1).f_code.co_name == "_fill_cache":
                return  # the import system listing a sys.path folder: modules are hashed apart
            _active[-1].dirs.add(os.path.abspath(os.fsdecode(path if path is not None else ".")))
    except Exception:  # an audit hook that raises would break the user's own open()
        pass


def _install() -> None:
    global _hook_installed
    with _lock:
        if not _hook_installed:
            sys.addaudithook(_hook)  # hooks cannot be removed: it idles when no trace is active
            _hook_installed = True


class tracing:
    """``with tracing() as trace:`` records what the code inside reads (nestable)."""

    def __init__(self) -> None:
        self.trace = Trace()

    def __enter__(self) -> Trace:
        _install()
        _active.append(self.trace)
        return self.trace

    def __exit__(self, *exc: object) -> None:
        _active.remove(self.trace)
        if _active:  # an outer trace sees what the inner one saw
            _active[-1].files |= self.trace.files
            _active[-1].dirs |= self.trace.dirs


def _source_of(path: str) -> str:
    """A cached ``.pyc`` stands for its source file (the ``.pyc`` changes on a mere touch)."""
    if path.endswith(".pyc") and f"{os.sep}__pycache__{os.sep}" in path:
        try:
            return importlib.util.source_from_cache(path)
        except ValueError:
            return path
    return path


def _local(path: str, roots: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return not real.startswith(_VIRTUAL) and not any(real.startswith(r) for r in roots)


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        return "absent"
    except IsADirectoryError:
        return "folder"
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    return h.hexdigest()


def _listing_hash(path: str) -> str:
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return "absent"
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    return hashlib.sha256("\0".join(names).encode()).hexdigest()


def _tree_files(path: Path) -> Iterator[str]:
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                yield str(p.resolve())
    else:
        yield str(path.resolve())


def installed_distributions() -> str:
    """A hash of every installed distribution's name and version (the ``*.dist-info`` folder
    names on ``sys.path``) and the interpreter: what reads inside site-packages depend on."""
    names = [platform.python_implementation(), platform.python_version(), sys.platform]
    for entry in sys.path:
        try:
            names += sorted(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


@dataclass
class Fingerprint:
    """Content hashes of the files and folder listings the inputs came from."""

    files: dict[str, str]
    dirs: dict[str, str]
    installed: str

    @classmethod
    def of(cls, trace: Trace, extra_paths: Sequence[Path] = ()) -> Fingerprint:
        """Hash what ``trace`` saw, plus ``extra_paths`` (files or whole folders), plus every
        local module loaded in this process (imports of already-loaded modules open no file)."""
        roots = _installed_roots()
        files = {_source_of(p) for p in trace.files}
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.endswith(".py") and os.path.isabs(path):
                files.add(os.path.abspath(path))
        for extra in extra_paths:
            files.update(_tree_files(Path(extra)))
        return cls(files={p: _file_hash(p) for p in sorted(files) if _local(p, roots)},
                   dirs={d: _listing_hash(d) for d in sorted(trace.dirs) if _local(d, roots)},
                   installed=installed_distributions())

    def changed(self) -> str | None:
        """The first thing that differs now (a short description), or None when nothing does."""
        if installed_distributions() != self.installed:
            return "installed packages changed"
        for path, digest in self.files.items():
            if _file_hash(path) != digest:
                return f"{path} changed"
        for path, digest in self.dirs.items():
            if _listing_hash(path) != digest:
                return f"folder {path} changed"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "dirs": self.dirs, "installed": self.installed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fingerprint:
        return cls(files=dict(d["files"]), dirs=dict(d["dirs"]), installed=str(d["installed"]))
