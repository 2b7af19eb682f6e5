"""Read a bundle: safe archive extraction, and bundle.json parsed into its typed objects
(``runtime.bundle_json``, re-exported here).

Which files a bundle holds and how they are hashed is ``runtime.integrity`` (re-exported here:
the packager lists a bundle with the same code the runtime checks it with).
"""
from __future__ import annotations

import json
import os
import weakref
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .bundle_json import SCHEMA_VERSION, Bundle, Candidate, Golden
from .errors import ArchiveError, BundleFormatError, FileIOError, SignatureError
from .fileio import io_error, is_fault
from .integrity import (
    BUNDLE_FILE,
    SIGNATURE_FILE,
    UNLISTED_FILES,
    list_bundle_files,
    sha256_file,
    verify_files,
)
from .signing import PublicKey, verify_signature

if TYPE_CHECKING:
    import tarfile

__all__ = ["BUNDLE_FILE", "SCHEMA_VERSION", "SIGNATURE_FILE", "UNLISTED_FILES", "Bundle",
           "Candidate", "Golden", "archive_fault", "extract_archive", "is_archive", "list_bundle_files",
           "max_archive_bytes", "open_bundle", "read_bundle", "sha256_file", "verify_files"]

# Archive limits: a bundle is models + golden data + a small runtime; anything far bigger is a
# decompression bomb or not a bundle. Overridable for genuinely huge models.
MAX_ARCHIVE_BYTES = 4 << 30
MAX_ARCHIVE_BYTES_ENV = "EDGEPACK_MAX_ARCHIVE_BYTES"
MAX_ARCHIVE_MEMBERS = 100_000
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- safe extraction

def _member_path(member: tarfile.TarInfo) -> PurePosixPath:
    name = member.name
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError("absolute path in archive", where=name,
                           hint="bundle archives hold one relative top-level folder")
    p = PurePosixPath(name)
    if ".." in p.parts or "\\" in name:
        raise ArchiveError("'..' or backslash in archive path", where=name,
                           hint="the archive tries to write outside its folder; do not use it")
    return p


def max_archive_bytes() -> int:
    """The uncompressed-size limit: ``EDGEPACK_MAX_ARCHIVE_BYTES`` or 4 GiB."""
    text = os.environ.get(MAX_ARCHIVE_BYTES_ENV, "").strip()
    if not text:
        return MAX_ARCHIVE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise ArchiveError(f"{MAX_ARCHIVE_BYTES_ENV}={text!r} is not a positive byte count",
                           where=MAX_ARCHIVE_BYTES_ENV, hint="e.g. 8589934592 for 8 GiB, or unset it")
    return value


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a .tar.gz bundle into dest after checking every member; return the bundle root.

    Only regular files and directories under one top-level folder are accepted: no absolute
    paths, '..', links, devices or fifos, and at most ``max_archive_bytes()`` uncompressed (a
    decompression bomb is refused while its headers are read, before any byte is written).
    Checks run on all members before anything is written.
    """
    import shutil
    import tarfile  # only for archives: not on the path of a bundle folder's cold start

    archive, dest = Path(archive), Path(dest)
    limit = max_archive_bytes()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members: list[tarfile.TarInfo] = []
            total = 0
            top: str | None = None
            for m in tar:  # lazily: stop at the first member over a limit
                members.append(m)
                if len(members) > MAX_ARCHIVE_MEMBERS:
                    raise ArchiveError(f"archive has more than {MAX_ARCHIVE_MEMBERS} members",
                                       where=str(archive),
                                       hint="not an edgepack bundle; do not extract it")
                total += max(m.size, 0) if m.isfile() else 0
                if total > limit:
                    raise ArchiveError(
                        f"archive unpacks to more than {limit} bytes (limit "
                        f"{MAX_ARCHIVE_BYTES_ENV}={limit}; reached at {m.name})",
                        where=str(archive),
                        hint=f"a decompression bomb or not a bundle; if the bundle really is "
                             f"this large, set {MAX_ARCHIVE_BYTES_ENV} to a higher byte count")
                p = _member_path(m)
                if m.issym() or m.islnk():
                    raise ArchiveError(f"link in archive (-> {m.linkname})", where=m.name,
                                       hint="bundle archives contain no links")
                if not (m.isfile() or m.isdir()):
                    raise ArchiveError("device, fifo or other special member in archive",
                                       where=m.name, hint="bundle archives hold only files")
                parts = [x for x in p.parts if x != "."]
                if not parts:
                    continue
                if top is None:
                    top = parts[0]
                if parts[0] != top or (len(parts) == 1 and not m.isdir()):
                    raise ArchiveError(f"member outside the single top-level folder {top!r}",
                                       where=m.name,
                                       hint="a bundle archive holds exactly one folder")
            if top is None:
                raise ArchiveError("archive is empty", where=str(archive))
            for m in members:
                target = dest.joinpath(*[x for x in PurePosixPath(m.name).parts if x != "."])
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None:  # pragma: no cover - isfile() members always have data
                    raise ArchiveError("unreadable member", where=m.name)
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                os.chmod(target, m.mode & 0o755)  # never setuid/setgid/sticky or group-write
    except OSError as exc:
        if is_fault(exc):  # the machine refused (disk full, read-only, no permission)
            raise archive_fault(archive, exc) from exc
        raise ArchiveError(f"cannot read archive: {exc}", where=str(archive),
                           hint="is this a complete .tar.gz bundle?") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"cannot read archive: {exc}", where=str(archive),
                           hint="is this a complete .tar.gz bundle?") from exc
    return dest / top


def archive_fault(archive: str | os.PathLike[str], exc: OSError) -> FileIOError:
    """An archive that could not be unpacked because of the machine: the temp folder is full,
    read-only or not ours (unpacking), or the archive itself cannot be read (reading)."""
    import errno
    import tempfile

    tmp = tempfile.gettempdir()
    name = str(exc.filename or "")
    writing = exc.errno in (errno.ENOSPC, errno.EROFS, errno.EFBIG,
                            getattr(errno, "EDQUOT", errno.ENOSPC)) \
        or (name != "" and Path(name).absolute().is_relative_to(Path(tmp).absolute()))
    if writing:
        return io_error(exc, tmp, "unpacking", where=str(archive),
                        subject=f"{Path(archive).name} into the temp folder {tmp}")
    return io_error(exc, name or archive, "reading", where=str(archive))


def read_bundle(root: str | os.PathLike[str], *, archive: Path | None = None,
                public_key: PublicKey | None = None) -> Bundle:
    """Parse bundle.json in a bundle directory.

    With ``public_key``, bundle.sig is checked against the very bytes that are then parsed,
    before anything in them is used (SignatureError when unsigned, by another key, or changed).
    """
    root = Path(root).resolve()
    path = root / BUNDLE_FILE
    if not path.is_file():
        raise BundleFormatError(f"no {BUNDLE_FILE} here", where=str(root),
                                hint="pass a bundle directory or its .tar.gz archive")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleFormatError(f"cannot read: {exc}", where=str(path),
                                hint="the file is damaged; re-copy the bundle") from exc
    signed_by = verify_signature(root, public_key, data=raw) if public_key is not None else None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: bad JSON, or an integer longer than Python's digit limit
        raise BundleFormatError(f"cannot read: {exc}", where=str(path),
                                hint="the file is damaged; re-copy the bundle") from exc
    return Bundle.from_dict(data, root, archive=archive, signed_by=signed_by)


def is_archive(path: str | os.PathLike[str]) -> bool:
    name = str(path).lower()
    return name.endswith((".tar.gz", ".tgz", ".tar"))


def open_bundle(path: str | os.PathLike[str], *, public_key: PublicKey | None = None) -> Bundle:
    """Open a bundle directory, or extract a .tar.gz to a temp dir removed with the Bundle/at exit.

    ``public_key``: refuse the bundle unless bundle.sig is a good signature by that key (checked
    before bundle.json is parsed; see ``runtime.signing``).
    """
    p = Path(path)
    if p.is_dir():
        return read_bundle(p, public_key=public_key)
    if p.is_file() and is_archive(p):
        import shutil
        import tempfile
        try:
            tmp = tempfile.mkdtemp(prefix="edgepack-bundle-")
        except OSError as exc:
            raise (archive_fault(p, exc) if is_fault(exc) else exc) from None
        try:
            root = extract_archive(p, tmp)
            bundle = read_bundle(root, archive=p.resolve(), public_key=public_key)
        except SignatureError as exc:  # name the archive, not a temp dir about to vanish
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.where and exc.where.startswith(str(root)):
                exc.where = f"{p.resolve()}:{root.name}{exc.where[len(str(root)):]}"
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        weakref.finalize(bundle, shutil.rmtree, tmp, True)
        return bundle
    if not p.exists():
        raise BundleFormatError("no such file or directory", where=str(p),
                                hint="pass a bundle directory or its .tar.gz archive")
    raise BundleFormatError("not a bundle directory or .tar.gz archive", where=str(p),
                            hint="pass a bundle directory or its .tar.gz archive")
