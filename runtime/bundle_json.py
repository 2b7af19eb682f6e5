"""bundle.json as typed objects: the one schema both ways.

The runtime reads bundle.json with ``Bundle.from_dict`` and the packager writes it with
``Bundle.to_dict`` (never a dict literal), so writer and reader cannot drift:
``from_dict(to_dict(x)) == x`` and a written file equals ``to_dict(from_dict(file))``. Stdlib
dataclasses only, and no work at import time beyond defining them (this is on the cold path).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from .compare import Tolerance
from .errors import BundleFormatError, IntegrityError
from .integrity import BUNDLE_FILE, check_relpath, verify_files
from .iocast import IoCasts, parse_dtypes
from .probe_record import ExplainData
from .processing import Processing
from .signature import Signature
from .signing import SignatureInfo

SCHEMA_VERSION = 1


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


def _optional(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """A key the build records for people (absent or null: None); a wrong type is still an error."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BundleFormatError(f"{key!r} must be {names} or null, got {type(value).__name__}", where=where)
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
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # as read (or to_dict())
    # io_map: signature name -> artifact name, for artifacts whose names differ (TFLite).
    io_inputs: dict[str, str] = field(default_factory=dict)
    io_outputs: dict[str, str] = field(default_factory=dict)
    # the artifact's dtype per signature name where its converter changed it (int64 ids -> int32)
    io_input_dtypes: dict[str, str] = field(default_factory=dict)
    io_output_dtypes: dict[str, str] = field(default_factory=dict)
    # the build's record of the candidate (shown by inspect/report; selection does not need them)
    quantization: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None  # ParityReport.to_dict() + where it was checked
    accuracy: float | None = None
    size: int | None = None
    status: str | None = None
    notes: list[str] = field(default_factory=list)
    converter: str | None = None
    conversion: dict[str, Any] | None = None
    io: str | None = None  # tflite: "int8" or "float" tensors at the model's edge
    static_batch: int | None = None  # a batch fixed at conversion: larger batches run in slices
    # signature axes (other than the batch) the converter fixed: {input: {axis: length}}; other
    # lengths are refused with a FeedError before they reach the backend
    static_axes: dict[str, dict[str, int]] = field(default_factory=dict)
    quantized_engine: str | None = None  # torchscript int8: fbgemm / qnnpack
    explain: ExplainData | None = None  # verify --explain's probe and float references (target explain_bytes)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this runtime does not know, kept as they are

    def __post_init__(self) -> None:
        if not self.raw:  # made in code (the packager), not read: raw is what would be written
            object.__setattr__(self, "raw", self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The candidate as bundle.json holds it (``from_dict`` reads it back equal)."""
        out: dict[str, Any] = {
            "id": self.id, "file": self.file, "format": self.format, "precision": self.precision,
            "backend": self.backend, "providers": list(self.providers),
            "provider_options": [dict(o) for o in self.provider_options], "threads": self.threads,
            "tolerance": {name: t.to_dict() for name, t in self.tolerance.items()},
            "quantization": self.quantization, "parity": self.parity, "accuracy": self.accuracy,
            "size": self.size, "status": self.status, "notes": list(self.notes), "converter": self.converter,
            "conversion": self.conversion, **self.extra}
        if self.io_inputs or self.io_outputs or self.io_input_dtypes or self.io_output_dtypes:
            out["io_map"] = {"inputs": dict(self.io_inputs), "outputs": dict(self.io_outputs)}
            for key, dtypes in (("input_dtypes", self.io_input_dtypes), ("output_dtypes", self.io_output_dtypes)):
                if dtypes:
                    out["io_map"][key] = dict(dtypes)
        if self.static_axes:
            out["static_axes"] = {k: dict(v) for k, v in self.static_axes.items()}
        for key, value in (("io", self.io), ("static_batch", self.static_batch),
                           ("quantized_engine", self.quantized_engine)):
            if value is not None:
                out[key] = value
        if self.explain is not None:
            out["explain"] = self.explain.to_dict()
        return out

    def artifact_input(self, name: str) -> str:
        """The artifact's name for signature input ``name`` (itself unless io_map renames it)."""
        return self.io_inputs.get(name, name)

    def artifact_output(self, name: str) -> str:
        return self.io_outputs.get(name, name)

    def io_casts(self, signature: Signature) -> IoCasts | None:
        """The dtype conversions between ``signature`` and this artifact (None: none needed)."""
        return IoCasts.of(({s.name: s.dtype for s in signature.inputs}, {s.name: s.dtype for s in signature.outputs}),
                          (self.io_input_dtypes, self.io_output_dtypes))

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
        io = io_map_fields(data.get("io_map"), where=f"{where}.io_map")
        def opt(key: str, kind: type | tuple[type, ...]) -> Any:
            return _optional(data, key, kind, where)

        notes = opt("notes", list) or []
        if not all(isinstance(n, str) for n in notes):
            raise BundleFormatError("'notes' must be a list of strings", where=where)
        return cls(id=cid, file=file, format=str(data.get("format", "")),
                   backend=_require(data, "backend", str, where),
                   precision=precision if isinstance(precision, str) else None,
                   providers=tuple(providers), provider_options=tuple(dict(o) for o in options),
                   threads=threads, tolerance=tolerance, raw=data, **io,
                   quantization=opt("quantization", dict), parity=opt("parity", dict),
                   accuracy=opt("accuracy", (int, float)), size=opt("size", int), status=opt("status", str),
                   notes=list(notes), converter=opt("converter", str), conversion=opt("conversion", dict),
                   io=opt("io", str), static_batch=opt("static_batch", int),
                   static_axes=_static_axes(data.get("static_axes"), where),
                   quantized_engine=opt("quantized_engine", str),
                   explain=(ExplainData.from_dict(data["explain"], where=f"{where}.explain")
                            if data.get("explain") is not None else None),
                   extra={k: v for k, v in data.items() if k not in _CANDIDATE_KEYS})


_CANDIDATE_KEYS = frozenset({"id", "file", "format", "precision", "backend", "providers", "provider_options",
                             "threads", "tolerance", "io_map", "quantization", "parity", "accuracy", "size",
                             "status", "notes", "converter", "conversion", "io", "static_batch", "quantized_engine",
                             "static_axes", "explain"})


def _static_axes(data: Any, where: str) -> dict[str, dict[str, int]]:
    """``{"input_ids": {"1": 32}}``: input name -> axis (a string, as JSON keys are) -> length."""
    if data is None:
        return {}
    ok = isinstance(data, dict) and all(
        isinstance(k, str) and isinstance(v, dict) and all(
            isinstance(a, str) and a.isdigit() and a != "0" and isinstance(n, int) and not isinstance(n, bool)
            and n > 0 for a, n in v.items()) for k, v in data.items())
    if not ok:
        raise BundleFormatError("'static_axes' must map input names to {axis: length} (axes >= 1, lengths > 0)",
                                where=where)
    return {k: dict(v) for k, v in data.items()}


class IoFields(TypedDict, total=False):
    """``Candidate``'s io fields, as ``io_map_fields`` reads them from an io_map."""

    io_inputs: dict[str, str]
    io_outputs: dict[str, str]
    io_input_dtypes: dict[str, str]
    io_output_dtypes: dict[str, str]


def io_map_fields(data: Any, *, where: str) -> IoFields:
    """``Candidate``'s io fields from an io_map: ``{"inputs": {sig: artifact}, "outputs": {...}}``
    (two names may not map to one tensor), and optionally ``input_dtypes`` / ``output_dtypes``
    (the artifact's dtype per signature name, where its converter changed it).

    Whether the keys are signature names is checked at selection time, so a bad map skips only
    its candidate.
    """
    if data is None:
        return IoFields()
    if not isinstance(data, dict) or set(data) - {"inputs", "outputs", "input_dtypes", "output_dtypes"}:
        raise BundleFormatError("'io_map' must be {\"inputs\": {...}, \"outputs\": {...}} (and optionally "
                                "\"input_dtypes\", \"output_dtypes\")", where=where)
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
    return IoFields(io_inputs=parts[0], io_outputs=parts[1],
                    io_input_dtypes=parse_dtypes(data.get("input_dtypes"), "input_dtypes", where),
                    io_output_dtypes=parse_dtypes(data.get("output_dtypes"), "output_dtypes", where))


@dataclass(frozen=True)
class Golden:
    """Where the golden inputs/outputs live and how they are laid out."""

    inputs: str
    outputs: str
    batched: bool
    samples: int | None
    source: str | None = None  # where the samples came from (a file, an entry point, calibration)
    raw: tuple[str, ...] = ()  # the images sample i was pre-processed from (the end-to-end check)

    def to_dict(self) -> dict[str, Any]:
        out = {"inputs": self.inputs, "outputs": self.outputs, "samples": self.samples,
               "batched": self.batched, "source": self.source}
        return {**out, "raw": list(self.raw)} if self.raw else out

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
        source = data.get("source")
        raw = data.get("raw") or []
        if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
            raise BundleFormatError("'raw' must be a list of file names", where=where)
        for r in raw:
            check_relpath(r, f"{where}.raw")
        return cls(inputs=inputs, outputs=outputs, batched=batched,
                   samples=samples if isinstance(samples, int) else None,
                   source=source if isinstance(source, str) else None,
                   raw=tuple(raw))


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
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # as read (or to_dict())
    archive: Path | None = None  # the .tar.gz this was extracted from, if any
    signed_by: SignatureInfo | None = None  # set when opened with a public key that checked out
    description: str | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)  # candidates not built, and why
    evaluation: dict[str, Any] | None = None  # the original model's accuracy on held-out data
    processing: Processing | None = None  # pre/post-processing declared in the manifest
    extra: dict[str, Any] = field(default_factory=dict)  # keys this runtime does not know, kept as they are

    def __post_init__(self) -> None:
        if not self.raw:  # made in code (the packager), not read: raw is what would be written
            object.__setattr__(self, "raw", self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """bundle.json's content (the packager writes exactly this; ``from_dict`` reads it back equal)."""
        processing = {"processing": self.processing.to_dict()} if self.processing else {}
        return {**processing, "schema_version": SCHEMA_VERSION, "name": self.name, "description": self.description,
                "target": self.target, "signature": self.signature.to_dict(),
                "candidates": [c.to_dict() for c in self.candidates],
                "golden": self.golden.to_dict() if self.golden is not None else None,
                "files": self.files, "fallbacks": self.fallbacks, "skipped": self.skipped,
                "warnings": self.warnings, "evaluation": self.evaluation, "provenance": self.provenance,
                **self.extra}

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
        signature = Signature.from_dict(_require(data, "signature", dict, where), where=f"{where}: signature")
        processing = data.get("processing")
        return cls(root=root, name=str(data.get("name", root.name)), target=target, signature=signature,
                   processing=None if processing is None else Processing.from_dict(
                       processing, where=f"{where}: processing", signature=signature),
                   candidates=cands,
                   golden=None if golden is None else Golden.from_dict(golden,
                                                                       where=f"{where}: golden"),
                   files=files, fallbacks=list(data.get("fallbacks") or []),
                   warnings=[str(w) for w in data.get("warnings") or []],
                   provenance=dict(data.get("provenance") or {}), raw=data, archive=archive,
                   signed_by=signed_by, description=data.get("description"),
                   skipped=list(data.get("skipped") or []), evaluation=data.get("evaluation"),
                   extra={k: v for k, v in data.items() if k not in _BUNDLE_KEYS})

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
            referenced += [self.golden.inputs, self.golden.outputs, *self.golden.raw]
        if self.processing is not None:
            referenced += self.processing.files()
        unlisted = [r for r in referenced if r not in self.files]
        if unlisted:
            raise IntegrityError(f"file(s) used by the bundle but not hashed: {unlisted}",
                                 where=where, hint="rebuild the bundle with edgepack")
        shown = f"{self.archive}:{self.root.name}" if self.archive else str(self.root)
        verify_files(self.root, self.files, display_root=shown)


_BUNDLE_KEYS = frozenset({"schema_version", "name", "description", "target", "signature", "candidates", "golden",
                          "files", "fallbacks", "skipped", "warnings", "evaluation", "provenance",
                          "processing"})
