"""Read a bundle: bundle.json as typed objects, and safe archive extraction.

Which files a bundle holds and how they are hashed is ``runtime.integrity`` (re-exported here:
the packager lists a bundle with the same code the runtime checks it with).
"""
from __future__ import annotations

import json
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .compare import Tolerance
from .errors import ArchiveError, BundleFormatError, FileIOError, IntegrityError, SignatureError
from .fileio import io_error, is_fault
from .integrity import (
    BUNDLE_FILE,
    SIGNATURE_FILE,
    UNLISTED_FILES,
    check_relpath,
    list_bundle_files,
    sha256_file,
    verify_files,
)
from .signature import Signature
from .signing import PublicKey, SignatureInfo, verify_signature

if TYPE_CHECKING:
    import tarfile

__all__ = ["BUNDLE_FILE", "SCHEMA_VERSION", "SIGNATURE_FILE", "UNLISTED_FILES", "Bundle",
           "Candidate", "Golden", "archive_fault", "extract_archive", "is_archive", "list_bundle_files",
           "max_archive_bytes", "open_bundle", "read_bundle", "sha256_file", "verify_files"]

SCHEMA_VERSION = 1

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


# --------------------------------------------------------------------------- bundle.json model

def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise BundleFormatError(f"missing key {key!r}", where=where,
                                hint="rebuild the bundle with a matching edgepack version")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BundleFormatError(f"{key!r} must be {names}, got {type(value).__name__}",
                                where=where)
    return value


@dataclass(frozen=True)
class Candidate:
    """One artifact + backend + providers the runtime may try, in the bundle's order."""

    id: str
    file: str
    format: str
    backend: str
    precision: str | None
    providers: tuple[str, ...]
    provider_options: tuple[dict[str, Any], ...]
    threads: int | None
    tolerance: dict[str, Tolerance]
    raw: dict[str, Any] = field(repr=False, compare=False)
    # io_map: signature name -> artifact name, for artifacts whose names differ (TFLite).
    io_inputs: dict[str, str] = field(default_factory=dict)
    io_outputs: dict[str, str] = field(default_factory=dict)

    def artifact_input(self, name: str) -> str:
        """The artifact's name for signature input ``name`` (itself unless io_map renames it)."""
        return self.io_inputs.get(name, name)

    def artifact_output(self, name: str) -> str:
        return self.io_outputs.get(name, name)

    @classmethod
    def from_dict(cls, data: Any, *, where: str, default_threads: int | None) -> Candidate:
        if not isinstance(data, dict):
            raise BundleFormatError("candidate must be an object", where=where)
        cid = _require(data, "id", str, where)
        file = _require(data, "file", str, where)
        check_relpath(file, f"{where}.file")
        providers = data.get("providers") or []
        if not isinstance(providers, list) or not all(isinstance(p, str) for p in providers):
            raise BundleFormatError("'providers' must be a list of names", where=where)
        options = data.get("provider_options") or [{} for _ in providers]
        if (not isinstance(options, list) or len(options) != len(providers)
                or not all(isinstance(o, dict) for o in options)):
            raise BundleFormatError("'provider_options' must be one object per provider",
                                    where=where)
        threads = data.get("threads", default_threads)
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                    or threads < 0):
            raise BundleFormatError("'threads' must be a non-negative integer", where=where)
        tol_raw = data.get("tolerance") or {}
        if not isinstance(tol_raw, dict):
            raise BundleFormatError("'tolerance' must map output names to tolerances", where=where)
        tolerance = {name: Tolerance.from_dict(t, where=f"{where}.tolerance.{name}")
                     for name, t in tol_raw.items()}
        precision = data.get("precision")
        io_inputs, io_outputs = _parse_io_map(data.get("io_map"), where=f"{where}.io_map")
        return cls(id=cid, file=file, format=str(data.get("format", "")),
                   backend=_require(data, "backend", str, where),
                   precision=precision if isinstance(precision, str) else None,
                   providers=tuple(providers), provider_options=tuple(dict(o) for o in options),
                   threads=threads, tolerance=tolerance, raw=data, io_inputs=io_inputs,
                   io_outputs=io_outputs)


def _parse_io_map(data: Any, *, where: str) -> tuple[dict[str, str], dict[str, str]]:
    """``{"inputs": {sig: artifact}, "outputs": {...}}``; two names may not map to one tensor.

    Whether the keys are signature names is checked at selection time, so a bad map skips only
    its candidate.
    """
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or set(data) - {"inputs", "outputs"}:
        raise BundleFormatError("'io_map' must be {\"inputs\": {...}, \"outputs\": {...}}",
                                where=where)
    parts = []
    for key in ("inputs", "outputs"):
        part = data.get(key) or {}
        if not isinstance(part, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in part.items()):
            raise BundleFormatError(f"'io_map.{key}' must map signature names to artifact names",
                                    where=where)
        targets = list(part.values())
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise BundleFormatError(f"'io_map.{key}' maps several names to {dupes}", where=where)
        parts.append(dict(part))
    return parts[0], parts[1]


@dataclass(frozen=True)
class Golden:
    """Where the golden inputs/outputs live and how they are laid out."""

    inputs: str
    outputs: str
    batched: bool
    samples: int | None

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Golden:
        if not isinstance(data, dict):
            raise BundleFormatError("'golden' must be an object", where=where)
        inputs = _require(data, "inputs", str, where)
        outputs = _require(data, "outputs", str, where)
        check_relpath(inputs, f"{where}.inputs")
        check_relpath(outputs, f"{where}.outputs")
        batched = data.get("batched", True)
        if not isinstance(batched, bool):
            raise BundleFormatError("'batched' must be true or false", where=where)
        samples = data.get("samples")
        return cls(inputs=inputs, outputs=outputs, batched=batched,
                   samples=samples if isinstance(samples, int) else None)


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle.json plus the directory it describes."""

    root: Path
    name: str
    target: dict[str, Any]
    signature: Signature
    candidates: tuple[Candidate, ...]
    golden: Golden | None
    files: dict[str, dict[str, Any]]
    fallbacks: list[Any]
    warnings: list[str]
    provenance: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)
    archive: Path | None = None  # the .tar.gz this was extracted from, if any
    signed_by: SignatureInfo | None = None  # set when opened with a public key that checked out

    @classmethod
    def from_dict(cls, data: Any, root: Path, *, archive: Path | None = None,
                  signed_by: SignatureInfo | None = None) -> Bundle:
        where = str(root / BUNDLE_FILE)
        if not isinstance(data, dict):
            raise BundleFormatError("bundle.json must hold an object", where=where)
        version = _require(data, "schema_version", int, where)
        if version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            raise BundleFormatError(
                f"schema_version {version} is not supported (this runtime reads {SCHEMA_VERSION})",
                where=where,
                hint="use the runtime copy shipped inside the bundle" if newer
                else "rebuild the bundle with the current edgepack")
        target = data.get("target") or {}
        if not isinstance(target, dict):
            raise BundleFormatError("'target' must be an object", where=where)
        default_threads = target.get("threads") if isinstance(target.get("threads"), int) else None
        raw_cands = _require(data, "candidates", list, where)
        if not raw_cands:
            raise BundleFormatError("bundle lists no candidates", where=where,
                                    hint="every candidate failed at build time; see 'fallbacks'")
        cands = tuple(Candidate.from_dict(c, where=f"{where}: candidates[{i}]",
                                          default_threads=default_threads)
                      for i, c in enumerate(raw_cands))
        ids = [c.id for c in cands]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise BundleFormatError(f"duplicate candidate id(s) {dupes}", where=where)
        files = data.get("files") or {}
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise BundleFormatError("'files' must map paths to {sha256, size}", where=where)
        golden = data.get("golden")
        for key, kind in (("fallbacks", list), ("warnings", list), ("provenance", dict)):
            if data.get(key) is not None and not isinstance(data[key], kind):
                raise BundleFormatError(f"{key!r} must be a {kind.__name__}, got "
                                        f"{type(data[key]).__name__}", where=where)
        return cls(root=root, name=str(data.get("name", root.name)), target=target,
                   signature=Signature.from_dict(_require(data, "signature", dict, where),
                                                 where=f"{where}: signature"),
                   candidates=cands,
                   golden=None if golden is None else Golden.from_dict(golden,
                                                                       where=f"{where}: golden"),
                   files=files, fallbacks=list(data.get("fallbacks") or []),
                   warnings=[str(w) for w in data.get("warnings") or []],
                   provenance=dict(data.get("provenance") or {}), raw=data, archive=archive,
                   signed_by=signed_by)

    def path(self, rel: str) -> Path:
        """Absolute path of a file named in bundle.json."""
        return self.root / check_relpath(rel, f"{self.root / BUNDLE_FILE}")

    def candidate(self, cid: str) -> Candidate | None:
        return next((c for c in self.candidates if c.id == cid), None)

    def verify(self) -> None:
        """Check every file against ``files`` and that every referenced file is listed."""
        where = str(self.root / BUNDLE_FILE)
        if not self.files:
            raise IntegrityError("bundle.json has no 'files' section to check against",
                                 where=where, hint="rebuild the bundle with edgepack")
        referenced = [c.file for c in self.candidates]
        if self.golden is not None:
            referenced += [self.golden.inputs, self.golden.outputs]
        unlisted = [r for r in referenced if r not in self.files]
        if unlisted:
            raise IntegrityError(f"file(s) used by the bundle but not hashed: {unlisted}",
                                 where=where, hint="rebuild the bundle with edgepack")
        shown = f"{self.archive}:{self.root.name}" if self.archive else str(self.root)
        verify_files(self.root, self.files, display_root=shown)


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
