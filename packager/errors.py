"""The packager's one exception tree. Every user error names what is wrong, where, and the fix.

    EdgepackError                 (exit code 2 from the CLI, never a traceback)
    +-- ConfigError
    |   +-- ManifestError
    |   +-- TargetError
    +-- SourceError
    +-- DataError
    +-- ConversionError
    |   +-- UnsupportedError
    +-- ParityError
    +-- BuildError
    |   +-- StaleInputsError      entry points gave other results with no input they read changed
    +-- SigningError              a signing key missing, unreadable or not ed25519 (signing.py)
    +-- DiskError                 the filesystem refused: no space, read-only, permission, I/O error
        +-- OutputError           ... while writing the bundles or reports to --out

Every class is drawn, those defined beside the code that raises them too (SigningError,
StaleInputsError in the build's inputs record); tests/packager/test_errors.py checks the drawing
against every EdgepackError subclass in the package.
"""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

from runtime.errors import HintedError


class EdgepackError(HintedError):
    """Base of every error the packager raises on purpose (the CLI prints it without a traceback).

    ``where`` is the file and field (``manifests/x.yaml: inputs[0].dtype``) or the step concerned;
    ``hint`` says how to fix it; ``code`` is a stable id for scripts and tests.
    """

    code = "edgepack-error"


class ConfigError(EdgepackError):
    """A manifest or target document is malformed, mistyped or inconsistent."""

    code = "config"


class ManifestError(ConfigError):
    """A manifest is invalid."""

    code = "manifest"


class TargetError(ConfigError):
    """A target is invalid or unknown."""

    code = "target"


class SourceError(EdgepackError):
    """The source model cannot be found, loaded, or does not match the manifest's signature."""

    code = "source"


class DataError(EdgepackError):
    """Calibration, golden or evaluation data is missing, malformed or does not fit the signature."""

    code = "data"


class ConversionError(EdgepackError):
    """A conversion or pass (export, simplify, quantize) failed."""

    code = "conversion"


class UnsupportedError(ConversionError):
    """The requested format/precision route is not supported."""

    code = "unsupported"


class ParityError(EdgepackError):
    """An artifact does not compute what the original model computes, within tolerance."""

    code = "parity"


class BuildError(EdgepackError):
    """One or more targets failed to build (the summary holds the details)."""

    code = "build"


class DiskError(EdgepackError):
    """The filesystem refused a read or write (no space, read-only, permission, I/O error): the
    machine's problem, not edgepack's, so a clear line instead of an internal error."""

    code = "disk"


class OutputError(DiskError):
    """The output folder (--out) could not take the bundles or reports."""

    code = "output"


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
DENIED = (errno.EACCES, errno.EPERM)


def not_installed(needs: str, package: str, extra: str, *, cls: type[EdgepackError] | None = None,
                  where: str | None = None, pin: str | None = None) -> EdgepackError:
    """The one error for a missing optional framework: what needs it, and the pip extra to install."""
    return (cls or SourceError)(f"{needs} needs {package}, which is not installed", where=where,
                                hint=f"pip install 'edgepack[{extra}]'" + (f" ({pin})" if pin else ""))


def _mb(n: int) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{-(-n // 1024)} KB"


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def disk_error(exc: OSError, doing: str, folder: Path, *, needed: int | None = None,
               cls: type[DiskError] = DiskError, where: str | None = None,
               option: str = "--out") -> DiskError:
    """One clear error from an OSError: what failed (``doing``, e.g. "writing the bundle"), where
    (``folder``, and the path the OS named if it lies outside it), why (from errno), and the fix.
    ``needed``: bytes the step would have written (shown beside the free space for ENOSPC);
    ``option``: the command-line option that chose ``folder`` (the hint says to change it)."""
    # a file inside ``folder`` is our own temp or part file: naming the folder says it; a path
    # outside it (a parent that could not be created) says more
    name = str(exc.filename) if exc.filename else None
    if name and (Path(name) == folder or folder in Path(name).parents):
        name = None
    at = f"{folder}" + (f" ({name})" if name else "")
    code = exc.errno
    if code in NO_SPACE:
        free = free_bytes(folder)
        sizes = [f"needed about {_mb(needed)}" if needed else None,
                 f"{_mb(free)} free" if free is not None else None]
        shown = ", ".join(s for s in sizes if s)
        reason = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
        message = f"{reason} while {doing} to {folder}" + (f" ({shown})" if shown else "")
        hint = f"free space on that filesystem or pass {option} on another one"
    elif code == errno.EROFS:
        message = f"read-only file system while {doing} to {at}"
        hint = f"pass {option} on a writable filesystem"
    elif code in DENIED:
        message = f"permission denied while {doing} to {at}"
        hint = f"pass {option} a folder you can write to, or fix its permissions"
    elif code == errno.EIO:
        message = f"input/output error while {doing} to {at}: the disk or filesystem failed"
        hint = f"check the device (dmesg), or pass {option} on another disk"
    else:
        message = f"{(exc.strerror or str(exc)).lower()} while {doing} to {at}"
        hint = f"check that folder, or pass {option} elsewhere"
    return cls(message, where=where, hint=hint)


FAULTS = {errno.ENOSPC: "free space on that filesystem", errno.EDQUOT: "free space within your disk quota",
          errno.EROFS: "use a writable filesystem", errno.EACCES: "fix the permissions or use another path",
          errno.EPERM: "fix the permissions or use another path",
          errno.EIO: "check the device (dmesg) or use another disk"}


def from_os_error(exc: BaseException) -> DiskError | None:
    """A filesystem fault no step caught (full, read-only, permission, I/O error) as a DiskError
    naming the file; None for anything else (a real bug stays an internal error)."""
    if not isinstance(exc, OSError) or exc.errno not in FAULTS:
        return None
    reason = (exc.strerror or str(exc)).lower()
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    return DiskError(f"{reason}" + (f": {where}" if where else ""), hint=FAULTS[exc.errno])
