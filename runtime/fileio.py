"""Files the runtime writes, and file-system faults as clear errors.

``atomic_write`` is the one way the runtime writes a file (``run --output``, ``--report``,
``X.tuned.json``): a temp file in the same folder, flushed to disk, then renamed over the
target, so a full disk or a crash never leaves half a file and an older file is kept whole.
``io_error`` turns an ``OSError`` (no space left, read-only file system, permission denied,
I/O error) into a ``FileIOError`` / ``OutputError`` that names the file and the cause, with a
hint that follows from the cause.

Standard output is a file too: ``GuardedStdout`` tells a fault writing it (a full disk it is
redirected to) from a fault in a file we write, and ``stdout_closed`` ends quietly when the
reader went away (``... | head``); both CLIs (the runtime's and the packager's) use them.
"""
from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal

from .errors import FileIOError, OutputError

Action = Literal["reading", "writing", "unpacking", "accessing"]

# Faults of the machine rather than of the bundle or the input: disk full, read-only, no
# permission, failing storage. A damaged file (BadZipFile, bad gzip) is not one of them.
FAULT_ERRNOS = frozenset(e for e in (
    errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EACCES, errno.EPERM,
    errno.EIO, errno.EFBIG, errno.ENXIO, errno.ENODEV, errno.EMFILE, errno.ENFILE,
    getattr(errno, "ESTALE", None), errno.ENAMETOOLONG) if e is not None)
_FULL = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG)
                  if e is not None)


def is_fault(exc: BaseException) -> bool:
    """An OSError that says the machine refused (see ``FAULT_ERRNOS``), not that data is bad."""
    return isinstance(exc, OSError) and exc.errno in FAULT_ERRNOS


def cause_of(exc: OSError) -> str:
    """'no space left on device', 'read-only file system', ... (lower case, no errno number)."""
    if exc.errno is not None:
        text = os.strerror(exc.errno)
    else:
        text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _folder(path: Path) -> Path:
    return path.absolute().parent


def hint_for(exc: OSError, path: str | os.PathLike[str], action: Action,
             instead: str | None = None) -> str:
    """How to fix ``exc`` met while ``action`` ``path``; ``instead`` is the command's own way
    around it ("write elsewhere: --output /other/y.npz"), added after the cause's fix."""
    p = Path(path)
    folder = p if action == "unpacking" else _folder(p)  # unpacking: path is the temp folder
    code = exc.errno
    if code in _FULL:
        if action == "unpacking":
            fix = (f"free space in the temp folder {folder}, or set TMPDIR to a folder with room "
                   f"for the unpacked bundle, or unpack it yourself (tar xzf) and pass the folder")
        else:
            fix = f"free space on the disk holding {folder} (df -h {folder})"
    elif code == errno.EROFS:
        fix = (f"{folder} is on a read-only file system: remount it read-write"
               if action != "unpacking" else
               f"the temp folder {folder} is on a read-only file system; set TMPDIR to a "
               f"writable folder, or unpack the archive yourself and pass the folder")
    elif code in (errno.EACCES, errno.EPERM):
        if action == "reading":
            fix = f"fix the permissions of {p} (chmod a+r) or run as a user who can read it"
        elif action == "unpacking":
            fix = f"you cannot write in the temp folder {folder}; set TMPDIR to one you can"
        else:
            fix = f"you cannot write in {folder}; fix its permissions or choose another folder"
    elif code == errno.EIO:
        fix = ("the storage device reported an I/O error: check it (dmesg; a failing SD card or "
               "USB stick?)" + (" and re-copy the bundle" if action == "reading" else ""))
    elif code == errno.ENOENT and action == "writing":
        fix = f"the folder {folder} does not exist (any more); create it or choose another"
    elif code in (errno.EMFILE, errno.ENFILE):
        fix = "too many files are open; close other programs or raise the limit (ulimit -n)"
    else:
        fix = f"check {p} and the file system holding it"
    return f"{fix}; {instead}" if instead else fix


def io_error(exc: OSError, path: str | os.PathLike[str], action: Action, *,
             where: str | None = None, instead: str | None = None,
             subject: str | None = None) -> FileIOError:
    """``exc`` as one clear error: "no space left on device writing y.npz", where = the file
    (or ``where``, e.g. "--output y.npz"); an OutputError when ``action`` is "writing".

    ``subject`` replaces the file's name in the message (e.g. "tiny.tar.gz into /tmp"); for
    "unpacking", ``path`` is the temp folder the archive is unpacked into."""
    cls = OutputError if action == "writing" else FileIOError
    name = subject or Path(path).name or str(path)
    return cls(f"{cause_of(exc)} {action} {name}", where=where or str(path),
               hint=hint_for(exc, path, action, instead))


def _temp_beside(target: Path, suffix: str, where: str | None,
                 instead: str | None) -> tuple[int, str]:
    """A new hidden temp file in ``target``'s folder; refused creation is an OutputError."""
    import tempfile  # lazily: cheap, but not needed by a command that writes nothing

    try:
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=_folder(target))
    except OSError as exc:
        raise io_error(exc, target, "writing", where=where, instead=instead) from exc


def check_writable(path: str | os.PathLike[str], *, where: str | None = None,
                   instead: str | None = None) -> None:
    """Fail before the work when ``path``'s folder cannot take a new file (read-only, no
    permission): create and remove an empty temp file there. A full disk shows only when
    writing, which ``atomic_write`` reports and cleans up."""
    fd, tmp = _temp_beside(Path(path), ".probe", where, instead)
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object], *,
                 where: str | None = None, instead: str | None = None,
                 mode: int = 0o644) -> Path:
    """Write ``path`` through ``write(fh)`` (a binary file): temp file in the same folder,
    flushed and fsynced, then renamed over ``path``. On any failure the temp file is removed
    and ``path`` is as it was; an OSError becomes an OutputError naming the file and cause."""
    target = Path(path)
    fd, tmp = _temp_beside(target, ".tmp", where, instead)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())  # a full disk may only say so here (delayed allocation, NFS)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise io_error(exc, target, "writing", where=where, instead=instead) from exc
        raise
    return target


# --------------------------------------------------------------------------- standard output

def stdout_closed() -> int:
    """The reader of our stdout went away (``... | head``): stop quietly, like other CLIs. Point
    stdout at /dev/null so the interpreter's final flush does not complain again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, as a shell reports a process killed by it


class StdoutFault(Exception):
    """Writing to stdout failed (a full disk it is redirected to): raised by ``GuardedStdout``
    in place of the OSError, so that main() can tell it from a fault in a file we write."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class GuardedStdout:
    """sys.stdout during a command: the same stream, with an OSError on write/flush (other
    than a closed pipe) raised as StdoutFault."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFault(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFault(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def stdout_fault() -> OSError | None:
    """The error stdout gives on flush (a full disk it is redirected to), or None. On a fault,
    stdout is pointed at /dev/null so the exit does not fail on the same bytes again."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return exc
    return None


def stdout_error(exc: OSError) -> FileIOError:
    try:  # the file stdout is redirected to, to name it
        target = os.readlink(f"/proc/self/fd/{sys.stdout.fileno()}")
    except (OSError, ValueError):
        target = "standard output"
    return io_error(exc, target, "writing", where="standard output",
                    subject=f"the output to {target}" if target != "standard output" else None,
                    instead="or redirect the output to a file on a disk with room")
