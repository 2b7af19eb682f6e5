"""The tuned choice ``load()`` uses: where ``X.tuned.json`` lives and whether it applies here.

Kept apart from ``tune`` (which measures) so that loading a bundle with no tuned file imports
this module and nothing more: the device is fingerprinted only when a file exists.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..bundle import Bundle, is_archive

if TYPE_CHECKING:
    from ..device.facts import DevicePaths

TUNED_SUFFIX = ".tuned.json"
TUNED_SCHEMA = "edgepack-tuned/1"

# Why a tuned choice was (not) used; ``match`` is the only one with a candidate.
TunedStatus = Literal["match", "no-file", "unreadable", "fingerprint-differs", "bundle-changed",
                      "tuned-fails", "disabled", "prefer", "candidate", "not-looked-up"]


def tuned_path(bundle: Bundle | str | os.PathLike[str]) -> Path:
    """``X.tuned.json`` beside bundle dir ``X/`` or beside archive ``X.tar.gz`` (never inside)."""
    if isinstance(bundle, Bundle):
        base = bundle.archive or bundle.root
    else:
        base = Path(bundle).resolve()
    name = base.name
    if is_archive(base):
        for suffix in (".tar.gz", ".tgz", ".tar"):
            if name.lower().endswith(suffix):
                name = name[:-len(suffix)]
                break
    return base.parent / f"{name}{TUNED_SUFFIX}"


@dataclass
class TunedLookup:
    """Whether a tuned choice applies to this device and bundle, and why (for info/explain)."""

    candidate: str | None
    status: TunedStatus
    text: str
    path: str | None = None
    entry: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def used(self) -> bool:
        return self.candidate is not None

    def to_dict(self) -> dict[str, Any]:
        return {"used": self.used, "candidate": self.candidate, "status": self.status,
                "text": self.text, "file": self.path,
                "tuned_at": (self.entry or {}).get("tuned_at"),
                "emulated": (self.entry or {}).get("emulated")}


NOT_LOOKED_UP = TunedLookup(None, "not-looked-up", "no tuned choice: not looked up")


def read_tuned(path: Path) -> dict[str, Any]:
    """The tuned-choice document; raises ValueError when it is not one."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("schema") != TUNED_SCHEMA \
            or not isinstance(doc.get("entries"), list):
        raise ValueError(f"not a {TUNED_SCHEMA} document")
    return doc


def tuned_choice(bundle: Bundle, *, prefer: str | None = None, candidate: str | None = None,
                 tuned: bool = True) -> TunedLookup:
    """The lookup ``load()`` and ``info`` make: none when asked for a candidate by name or told
    not to, the cheap answer when there is no file, else ``lookup_tuned``."""
    if candidate is not None:
        return TunedLookup(None, "candidate", f"no tuned choice: candidate={candidate} given")
    if not tuned:
        return TunedLookup(None, "disabled", "tuned choice ignored (tuned=False)")
    if prefer is not None:
        return TunedLookup(None, "prefer", f"no tuned choice: prefer={prefer} given")
    path = tuned_path(bundle)
    if not path.is_file():  # the common case: no need to fingerprint the device
        return TunedLookup(None, "no-file", f"no tuned choice: no file ({path.name})", str(path))
    return lookup_tuned(bundle)


def lookup_tuned(bundle: Bundle, *, paths: DevicePaths | None = None,
                 fingerprint: dict[str, Any] | None = None) -> TunedLookup:
    """The tuned candidate for this device, if the file beside the bundle has one that still
    applies: fingerprint equal, bundle.json unchanged, candidate still in the bundle."""
    from ..device.facts import REAL_PATHS
    from .fingerprint import bundle_json_sha256, device_fingerprint, differences, providers_of

    path = tuned_path(bundle)
    name = path.name
    if not path.is_file():
        return TunedLookup(None, "no-file", f"no tuned choice: no file ({name})", str(path))
    try:
        doc = read_tuned(path)
    except (OSError, ValueError) as exc:
        return TunedLookup(None, "unreadable", f"no tuned choice: {name} unreadable ({exc})",
                           str(path))
    entries = [e for e in doc["entries"] if isinstance(e, dict)
               and isinstance(e.get("fingerprint"), dict)]
    if not entries:
        return TunedLookup(None, "fingerprint-differs",
                           f"no tuned choice: {name} has no entries", str(path))
    backends = {c.backend for c in bundle.candidates}
    if fingerprint is None:
        cheap = device_fingerprint(backends, paths=paths or REAL_PATHS, providers=False)
    else:
        cheap = {k: v for k, v in fingerprint.items() if k != "providers"}
    diffs = [(differences({k: v for k, v in e["fingerprint"].items() if k != "providers"}, cheap),
              e) for e in entries]
    close = [e for d, e in diffs if not d]
    if close:
        full = dict(fingerprint) if fingerprint is not None and "providers" in fingerprint \
            else {**cheap, "providers": {b: providers_of(b) for b in sorted(backends)}}
        diffs = [(differences(e["fingerprint"], full), e) for e in close]
    matching = [e for d, e in diffs if not d]
    if not matching:
        fewest = min((d for d, _ in diffs), key=len)
        shown = "; ".join(fewest[:3]) + ("; ..." if len(fewest) > 3 else "")
        return TunedLookup(None, "fingerprint-differs",
                           f"no tuned choice: fingerprint differs from {name} ({shown}); "
                           f"run python -m runtime tune on this device", str(path))
    entry = matching[-1]
    if entry.get("bundle_sha256") != bundle_json_sha256(bundle):
        return TunedLookup(None, "bundle-changed",
                           f"no tuned choice: bundle changed since {name} was written "
                           f"(bundle.json sha256 differs); re-run python -m runtime tune",
                           str(path), entry)
    cid = entry.get("candidate")
    if not isinstance(cid, str) or bundle.candidate(cid) is None:
        return TunedLookup(None, "bundle-changed",
                           f"no tuned choice: {name} names candidate {cid!r}, not in the bundle",
                           str(path), entry)
    emu = " (emulated timings)" if entry.get("emulated") else ""
    return TunedLookup(cid, "match", f"tuned choice from {name} (fingerprint match){emu}",
                       str(path), entry)
