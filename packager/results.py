"""What a build produced, per artifact, candidate and target: the records the summary, the
build report (--json) and the bundle documents are made from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.compare import ParityReport

CandidateStatus = Literal["ok", "parity-failed", "parity-failed-allowed", "dropped", "failed", "unsupported"]
TargetStatus = Literal["ok", "partial", "failed"]


@dataclass
class Made:
    """A freshly made artifact before it is checked: bytes, file suffix, and its record."""

    data: bytes
    suffix: str
    step: str
    details: dict[str, Any]
    notes: list[str]
    extras: dict[str, Any] = field(default_factory=dict)
    converter: str = ""


@dataclass
class Artifact:
    """One model file made for a variant (shared by every candidate that asks for it)."""

    variant: str
    precision: str
    data: bytes
    passes: list[dict[str, Any]]
    notes: list[str]
    parity: ParityReport
    accuracy: float | None
    host_latency_ms: float | None
    suffix: str = ".onnx"
    extras: dict[str, Any] = field(default_factory=dict)  # more candidate fields for bundle.json
    converter: str = ""  # what made the file: exporter + pass, TFLiteConverter, litert-torch, ...
    cached: bool = False  # came from the build cache
    explained: dict[str, Any] | None = None  # int8 that missed parity: where the error starts (per node)

    @property
    def filename(self) -> str:
        return self.variant.split("-", 1)[1] + self.suffix


@dataclass
class CandidateResult:
    """What happened to one candidate of one target."""

    id: str
    format: str
    precision: str
    status: CandidateStatus
    file: str | None = None
    size: int | None = None
    parity: ParityReport | None = None
    accuracy: float | None = None
    host_latency_ms: float | None = None
    message: str | None = None
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    speedup: float | None = None  # host latency of fp32 (same format) / this candidate's
    explained: dict[str, Any] | None = None  # int8 that missed parity: the per-node table

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "format": self.format, "precision": self.precision,
                "status": self.status, "file": self.file, "size": self.size,
                "parity": self.parity.to_dict() if self.parity else None,
                "accuracy": self.accuracy, "host_latency_ms": self.host_latency_ms,
                "message": self.message, "notes": self.notes, "cached": self.cached,
                "speedup_vs_fp32": self.speedup,
                **({"explained": self.explained} if self.explained is not None else {})}


@dataclass
class TargetResult:
    """What happened to one target."""

    target: str
    status: TargetStatus
    candidates: list[CandidateResult] = field(default_factory=list)
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    bundle_dir: str | None = None
    archive: str | None = None
    message: str | None = None
    measured_bom: str | None = None  # the bundle's BOM with host latency, beside it

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "status": self.status, "bundle_dir": self.bundle_dir,
                "archive": self.archive, "measured_bom": self.measured_bom, "message": self.message,
                "fallbacks": self.fallbacks,
                "candidates": [c.to_dict() for c in self.candidates]}


@dataclass
class BuildResult:
    """The whole build: per target results, shared steps, warnings."""

    name: str
    manifest: str
    targets: list[TargetResult]
    steps: list[dict[str, Any]]
    warnings: list[str]
    reference_accuracy: float | None
    golden: dict[str, Any]
    cache: dict[str, Any] = field(default_factory=dict)
    parallel: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    report: str | None = None  # the HTML report's path, once written
    metric: str = "accuracy"  # what reference_accuracy and each candidate's accuracy measure

    @property
    def ok(self) -> bool:
        return all(t.status == "ok" for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "manifest": self.manifest, "ok": self.ok,
                "warnings": self.warnings, "reference_accuracy": self.reference_accuracy, "metric": self.metric,
                "golden": self.golden, "steps": self.steps, "cache": self.cache, "parallel": self.parallel,
                "tools": self.tools, "report": self.report, "targets": [t.to_dict() for t in self.targets],
                "coverage": coverage(self.targets)}


CoverageResult = Literal["ok", "dropped", "failed", "unsupported"]
_COVERAGE: dict[CandidateStatus, CoverageResult] = {
    "ok": "ok", "dropped": "dropped", "unsupported": "unsupported", "failed": "failed",
    "parity-failed": "failed", "parity-failed-allowed": "failed"}


def coverage(targets: list[TargetResult]) -> dict[str, Any]:
    """The build's target x candidate matrix, as the zoo's scoreboard counts it: each cell ok,
    dropped, failed or unsupported with the build's reason, totals, and which targets got a
    bundle."""
    cells = [{"target": t.target, "candidate": c.id, "format": c.format, "precision": c.precision,
              "result": _COVERAGE[c.status], "reason": None if c.status == "ok" else c.message}
             for t in targets for c in t.candidates]
    totals = {r: sum(1 for c in cells if c["result"] == r) for r in ("ok", "dropped", "failed", "unsupported")}
    return {"cells": cells, "totals": totals,
            "bundles": {t.target: t.bundle_dir is not None for t in targets}}
