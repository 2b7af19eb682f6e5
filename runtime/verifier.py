"""Who checked a bundle, and how far that check can be trusted.

A bundle's own runtime copy can only vouch for itself so far: its ``__init__.py`` (and anything
planted for it) runs before any check, and without a signature check a bundle.json rewritten to
match edited files looks whole. A runtime installed separately (the ``edgepack-runtime`` wheel,
or the packager's ``edgepack inspect``) treats the bundle's ``runtime/`` as data: it hashes every
file with its own code, checks the signature with ``--key``, and runs nothing from the bundle.
This module names which of the two ran and compares the bundle's runtime code with the
checker's own, so a report says what its PASS is worth.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import __version__
from .bundle import Bundle
from .code_guard import STATE
from .integrity import sha256_file

VerifierKind = Literal["independent", "bundled", "other-bundle"]
TRUSTED_HINT = "for a trusted check run a separately installed runtime: " \
               "edgepack-runtime verify --key PUB BUNDLE"


@dataclass(frozen=True)
class VerifierReport:
    """Which runtime checked the bundle, and whether the bundle's runtime code equals its own."""

    kind: VerifierKind
    version: str
    location: str
    # bundle runtime files whose sha256 differs from the checker's copy, or that one side lacks;
    # None when the checker *is* the bundle's copy (nothing to compare against)
    differs: tuple[str, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "location": self.location,
                "trusted": self.kind == "independent",
                "runtime_code_same": None if self.differs is None else not self.differs,
                "runtime_code_differs": None if self.differs is None else list(self.differs)}

    def lines(self) -> list[str]:
        if self.kind != "independent":
            whose = "this bundle's own runtime" if self.kind == "bundled" else \
                f"another bundle's runtime ({self.location})"
            return [f"verified by: {whose}; it cannot vouch for code that ran before its checks "
                    f"({TRUSTED_HINT})"]
        lines = [f"verified by: edgepack runtime {self.version} at {self.location}, independent "
                 "of the bundle's code"]
        if self.differs:
            shown = ", ".join(self.differs[:6]) + (" ..." if len(self.differs) > 6 else "")
            lines.append(f"  the bundle's runtime code differs from this one's in {shown} "
                         "(another edgepack version, or edited: only a signature checked with "
                         "--key says who wrote it)")
        else:
            lines.append("  the bundle's runtime code is the same as this one's")
        return lines


def _own_code(package_dir: Path) -> dict[str, str]:
    """sha256 of this runtime's own .py files, keyed as a bundle lists them (runtime/...)."""
    return {f"runtime/{p.relative_to(package_dir).as_posix()}": sha256_file(p)
            for p in sorted(package_dir.rglob("*.py")) if "__pycache__" not in p.parts}


def describe_verifier(bundle: Bundle) -> VerifierReport:
    """Name the runtime that is checking ``bundle`` and compare their code (after verify())."""
    package_dir = Path(__file__).resolve().parent
    if STATE.bundle_root is not None:
        kind: VerifierKind = "bundled" if STATE.bundle_root == bundle.root.resolve() \
            else "other-bundle"
        return VerifierReport(kind, __version__, str(STATE.bundle_root), None)
    own = _own_code(package_dir)
    theirs = {rel: str(meta.get("sha256")) for rel, meta in bundle.files.items()
              if rel.startswith("runtime/") and rel.endswith(".py")}  # code only: not py.typed, the blocker
    differs = tuple(sorted(rel for rel in set(own) | set(theirs) if own.get(rel) != theirs.get(rel)))
    return VerifierReport("independent", __version__, str(package_dir), differs)
