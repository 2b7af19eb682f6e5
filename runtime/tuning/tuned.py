"""Where a tuned choice lives and what a lookup found: kept apart from ``tune`` (which reads the
device through ``doctor``) so that loading a bundle with no tuned file imports nothing more."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bundle import Bundle, is_archive

TUNED_SUFFIX = ".tuned.json"


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
    status: str  # match | no-file | fingerprint-differs | bundle-changed | unreadable | ...
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
