"""Isolated converter environments: a converter that cannot be installed beside edgepack's own
packages lives in a virtual environment of its own and runs as a subprocess.

onnx2tf is such a converter: its 1.x releases pin old tensorflow/numpy/onnx releases, and 2.x
needs Python >= 3.12 (edgepack runs on 3.11). So edgepack creates, once, a venv under the user
cache (``~/.cache/edgepack/converters/onnx2tf-<version>-py3.12``; ``$EDGEPACK_CONVERTERS_DIR``
moves it) from a Python >= 3.12 found on this machine, installs the pinned converter there (2.7 GB,
about a minute), and writes a stamp last. An environment is built in a ``.part`` folder and renamed
into place, under a lock, so a killed or concurrent creation never leaves a half-made one in use.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedError

if TYPE_CHECKING:
    from ..progress import Progress

PYTHON_ENV = "EDGEPACK_PYTHON312"  # an interpreter >= 3.12 to create converter environments with
DIR_ENV = "EDGEPACK_CONVERTERS_DIR"  # where converter environments live
STAMP = "edgepack-converter.json"  # written last: an environment without it is never used
INSTALL_TIMEOUT_S = 1800


@dataclass(frozen=True)
class ConverterSpec:
    """A converter edgepack runs from its own environment, pinned to one version."""

    name: str
    version: str
    requirement: str  # what pip installs
    module: str  # imported once installed, to prove the environment works
    packages: tuple[str, ...]  # distributions whose versions the stamp records
    min_python: tuple[int, int]
    pythons: tuple[str, ...]  # interpreter names looked up on PATH and in pyenv, preferred first
    size: str  # the disk it takes, for messages

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


ONNX2TF = ConverterSpec("onnx2tf", "2.6.9", "onnx2tf[tensorflow]==2.6.9", "onnx2tf",
                        ("onnx2tf", "tensorflow", "onnx", "onnxruntime", "ai-edge-litert", "numpy"),
                        (3, 12), ("3.12", "3.13"), "2.7 GB")
CONVERTERS = {ONNX2TF.name: ONNX2TF}

PYTHON_HINT = (f"install Python 3.12 (e.g. `pyenv install 3.12`, `uv python install 3.12`, or "
               f"`apt install python3.12 python3.12-venv`), or set {PYTHON_ENV}=/path/to/python3.12")


@dataclass(frozen=True)
class Interpreter:
    """A Python that can make venvs, and where it was found."""

    path: str
    version: str  # "3.12.1"
    found_by: str  # the env var, PATH or pyenv

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class ConverterEnv:
    """A complete converter environment: its folder, interpreter and stamp."""

    spec: ConverterSpec
    root: Path
    stamp: dict[str, Any]

    @property
    def python(self) -> Path:
        return python_in(self.root)

    @property
    def python_version(self) -> str:
        return str(self.stamp.get("python", "?"))

    @property
    def packages(self) -> dict[str, str]:
        return dict(self.stamp.get("packages", {}))


def converters_dir() -> Path:
    """$EDGEPACK_CONVERTERS_DIR, else $XDG_CACHE_HOME/edgepack/converters, else ~/.cache/edgepack/converters.

    Not under $EDGEPACK_CACHE_DIR: that is the build cache (tests point it at a temp folder), and
    a 2.7 GB environment must outlive it."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack" / "converters"


def python_in(root: Path) -> Path:
    return root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def env_root(spec: ConverterSpec, minor: str) -> Path:
    return converters_dir() / f"{spec.name}-{spec.version}-py{minor}"


# -- finding a Python >= 3.12 ---------------------------------------------------------------------

def probe(python: str) -> tuple[str | None, str]:
    """(version, "") when ``python`` runs and has venv + ensurepip, else (None, why not)."""
    code = "import sys, venv, ensurepip; print('%d.%d.%d' % sys.version_info[:3])"
    try:
        proc = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"cannot run it ({exc})"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return None, "no venv/ensurepip module" if "venv" in last or "ensurepip" in last else last
    return proc.stdout.strip(), ""


def _at_least(version: str, minimum: tuple[int, int]) -> bool:
    try:
        return tuple(int(p) for p in version.split(".")[:2]) >= minimum
    except ValueError:
        return False


def _pyenv_pythons(minor: str) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    return sorted((root / "versions").glob(f"{minor}.*/bin/python{minor}"), reverse=True)


def find_python(spec: ConverterSpec) -> Interpreter:
    """The interpreter to create ``spec``'s environment with: ${PYTHON_ENV} (only it, when set),
    else python3.12/python3.13 on PATH, else pyenv's; UnsupportedError naming what was tried."""
    need = ".".join(map(str, spec.min_python))
    explicit = os.environ.get(PYTHON_ENV)
    if explicit:
        version, why = probe(explicit)
        if version and _at_least(version, spec.min_python):
            return Interpreter(explicit, version, PYTHON_ENV)
        raise UnsupportedError(f"{spec.name} needs Python >= {need}, and {PYTHON_ENV}={explicit} is not one "
                               f"({why or 'Python ' + str(version)})", where=PYTHON_ENV,
                               hint=f"point {PYTHON_ENV} at a Python >= {need} that has venv, or unset it")
    tried: list[str] = []
    candidates = [(p, "PATH") for minor in spec.pythons if (p := shutil.which(f"python{minor}"))]
    candidates += [(str(p), "pyenv") for minor in spec.pythons for p in _pyenv_pythons(minor)]
    for path, how in candidates:
        version, why = probe(path)
        if version and _at_least(version, spec.min_python):
            return Interpreter(path, version, how)
        tried.append(f"{path}: {why or 'Python ' + str(version)}")
    names = "/".join(f"python{m}" for m in spec.pythons)
    raise UnsupportedError(f"{spec.name} needs Python >= {need} in an environment of its own, and no usable "
                           f"Python >= {need} was found ({PYTHON_ENV} unset; {names} on PATH and in pyenv"
                           + (f": {'; '.join(tried)}" if tried else ": none") + ")", hint=PYTHON_HINT)


# -- environments ---------------------------------------------------------------------------------

def read_stamp(root: Path) -> dict[str, Any] | None:
    """The stamp of a complete environment (None: absent, unreadable, or its python is gone)."""
    try:
        stamp = json.loads((root / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or not python_in(root).exists():  # exists(): the base Python is still there
        return None
    return stamp


def installed(spec: ConverterSpec) -> ConverterEnv | None:
    """A complete environment for ``spec`` (made with any Python), the preferred Pythons first."""
    prefix = f"{spec.name}-{spec.version}-py"
    try:
        minors = [p.name[len(prefix):] for p in converters_dir().iterdir()
                  if p.name.startswith(prefix) and "." in p.name[len(prefix):] and ".part-" not in p.name]
    except OSError:
        return None
    for minor in sorted(minors, key=lambda m: (spec.pythons.index(m) if m in spec.pythons else len(spec.pythons), m)):
        root = env_root(spec, minor)
        stamp = read_stamp(root)
        if stamp is not None and stamp.get("requirement") == spec.requirement:
            return ConverterEnv(spec, root, stamp)
    return None


def ensure(spec: ConverterSpec, *, on_create: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
           on_wait: Callable[[str], None] | None = None) -> ConverterEnv:
    """``spec``'s environment, created first if there is none. ``on_create(message)`` wraps the
    creation (a progress step); ``on_wait`` is told when another process is creating it."""
    found = installed(spec)
    if found is not None:
        return found
    python = find_python(spec)
    root = env_root(spec, python.minor)
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _folder_error(exc, root) from None
    with locked(root.parent / f".{root.name}.lock", on_wait=lambda: on_wait and on_wait(
            f"waiting for another edgepack process creating {root}")):
        stamp = read_stamp(root)
        if stamp is not None and stamp.get("requirement") == spec.requirement:
            return ConverterEnv(spec, root, stamp)  # made meanwhile by the process we waited for
        message = (f"creating the {spec.label} converter environment (once: a few minutes, {spec.size}) "
                   f"with Python {python.version} in {root}")
        with on_create(message) if on_create else contextlib.nullcontext():
            return create(spec, python, root)


def announced(progress: Progress) -> Callable[[str], contextlib.AbstractContextManager[Any]]:
    """``ensure``'s ``on_create`` for a progress display: a step line, and where no spinner shows
    (a log, CI) a line when it starts too, since creating takes minutes."""
    def on_create(message: str) -> contextlib.AbstractContextManager[Any]:
        if not progress.tty:
            progress.note(f"  {message} ...")
        return progress.step(message)
    return on_create


def create(spec: ConverterSpec, python: Interpreter, root: Path) -> ConverterEnv:
    """Make the environment in ``<root>.part-<pid>``, stamp it, and rename it into place (called
    under the lock: a ``.part`` folder left there is a killed creation's, removed first)."""
    for stale in root.parent.glob(f"{root.name}.part-*"):
        shutil.rmtree(stale, ignore_errors=True)
    part = root.parent / f"{root.name}.part-{os.getpid()}"
    try:
        # -I: the caller's PYTHONPATH (edgepack's Python's packages) must not leak into the new Python
        _run([python.path, "-I", "-m", "venv", str(part)], f"creating a venv with {python.path}", spec)
        _run([str(python_in(part)), "-I", "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
              spec.requirement], f"installing {spec.requirement}", spec)
        packages = json.loads(_run([str(python_in(part)), "-I", "-c", _VERSIONS.format(spec.module, spec.packages)],
                                   f"importing {spec.module}", spec))
        stamp = {"converter": spec.name, "version": spec.version, "requirement": spec.requirement,
                 "python": python.version, "base_python": python.path, "found_by": python.found_by,
                 "packages": packages, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (part / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        if root.exists():  # half-made by an older edgepack or removed stamp: replaced whole
            shutil.rmtree(root)
        os.replace(part, root)
    except OSError as exc:
        raise _folder_error(exc, root) from None
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return ConverterEnv(spec, root, stamp)


_VERSIONS = ("import json, {0}; from importlib import metadata as m\n"
             "out = {{}}\n"
             "for n in {1!r}:\n"
             "    try: out[n] = m.version(n)\n"
             "    except m.PackageNotFoundError: pass\n"
             "print(json.dumps(out))")


def _run(cmd: list[str], doing: str, spec: ConverterSpec) -> str:
    """Run one creation command; its last error line in an UnsupportedError when it fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                              env={**os.environ, "PIP_NO_INPUT": "1"})
    except subprocess.TimeoutExpired:
        raise UnsupportedError(f"{doing} took over {INSTALL_TIMEOUT_S // 60} minutes; gave up",
                               where=f"{spec.name} environment", hint=_retry(spec)) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.upper().startswith("ERROR")] or lines or [f"exit status {proc.returncode}"]
        raise UnsupportedError(f"{doing} failed: {errors[-1][:400]}", where=f"{spec.name} environment",
                               hint="check the network or your pip configuration (pip.conf, PIP_INDEX_URL), "
                                    "then " + _retry(spec))
    return proc.stdout


def _retry(spec: ConverterSpec) -> str:
    return f"run `edgepack converters install {spec.name}` to try again"


def _folder_error(exc: OSError, root: Path) -> UnsupportedError:
    return UnsupportedError(f"cannot write the converter environment {root}: {(exc.strerror or str(exc)).lower()}",
                            where=DIR_ENV, hint=f"free space or fix permissions there, or set {DIR_ENV} to "
                                                "another folder")


@contextlib.contextmanager
def locked(path: Path, *, on_wait: Callable[[], Any] | None = None) -> Iterator[None]:
    """An exclusive lock on ``path`` (fcntl; where there is none, the atomic rename alone
    keeps concurrent creations safe: the loser's environment replaces an identical one)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- listing --------------------------------------------------------------------------------------

def folder_bytes(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def describe(spec: ConverterSpec, *, sizes: bool = True) -> dict[str, Any]:
    """What ``edgepack converters list`` shows for one converter: installed or not, where, and
    which Python would create it (or why none)."""
    env = installed(spec)
    doc: dict[str, Any] = {"name": spec.name, "version": spec.version, "requirement": spec.requirement,
                           "installed": env is not None, "folder": str(env.root if env else converters_dir()),
                           "host_python": platform.python_version()}
    if env is not None:
        doc.update(python=env.python_version, packages=env.packages, created=env.stamp.get("created"))
        if sizes:
            doc["size_bytes"] = folder_bytes(env.root)
        return doc
    try:
        python = find_python(spec)
        doc["python"] = {"path": python.path, "version": python.version, "found_by": python.found_by}
    except UnsupportedError as exc:
        doc["python"] = None
        doc["problem"] = {"message": exc.message, "hint": exc.hint}
    return doc


def format_converter(doc: dict[str, Any]) -> str:
    """``describe``'s document as the lines ``edgepack converters list`` prints."""
    head = f"{doc['name']} {doc['version']} ({doc['requirement']})"
    if doc["installed"]:
        size = f", {doc['size_bytes'] / 1e9:.1f} GB" if "size_bytes" in doc else ""
        return f"{head}: installed, Python {doc['python']}{size}\n  {doc['folder']}"
    python = doc.get("python")
    if python:
        how = f"would be created with Python {python['version']} ({python['path']}, found by {python['found_by']})"
    else:
        how = f"cannot be created here: {doc['problem']['message']}\n  hint: {doc['problem']['hint']}"
    return (f"{head}: not installed; {how}\n  created on first use by a build that needs it, or now with "
            f"`edgepack converters install {doc['name']}` (in {doc['folder']})")
