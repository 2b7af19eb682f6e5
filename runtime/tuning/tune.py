"""``python -m runtime tune``: measure every candidate that loads here and remember the fastest.

The target's candidate order is a guess made on the build host; on the device, measurements
decide. The choice is written BESIDE the bundle (``X.tuned.json`` next to ``X/`` or
``X.tar.gz``), never inside it, because the bundle's files are hash-checked. It is keyed by a
device fingerprint, so a copied bundle on another device, or after a backend upgrade, falls back
to the preference order; and it records the sha256 of bundle.json, so a rebuilt bundle needs a
new tune.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..bundle import Bundle
from ..device.facts import REAL_PATHS, DevicePaths, detect_emulation, read_cpuinfo
from ..errors import NoCandidateError, RuntimeBundleError
from ..fileio import atomic_write
from .fingerprint import bundle_json_sha256, device_fingerprint
from .timing import time_calls
from .tuned import TUNED_SCHEMA, read_tuned, tuned_path

if TYPE_CHECKING:
    from ..model import Model

STABLE_WITHIN = 0.02  # median of the last half within 2% of the whole run's median
# how to get past a folder that cannot take X.tuned.json (after the cause's own fix)
NO_WRITE_HINT = ("or run tune with --no-write to only measure, or copy the bundle to a writable "
                 "folder and tune it there")

# What happened to a candidate: only a "passed" one is timed and can be chosen.
TuneStatus = Literal["passed", "not-loaded", "failed", "parity-failed"]
PASSED: TuneStatus = "passed"
NOT_LOADED: TuneStatus = "not-loaded"
FAILED: TuneStatus = "failed"
PARITY_FAILED: TuneStatus = "parity-failed"


def measure(model: Model, feeds: Mapping[str, np.ndarray], *, warmup: int = 5,
            runs: int = 20, max_seconds: float = 3.0) -> dict[str, Any]:
    """Warm up, then time runs until the median is stable: at least ``runs``, stopping once the
    median of the last half is within 2% of the whole; never longer than ``max_seconds``."""
    t = time_calls(partial(model.run, feeds, validate=False), runs=runs, warmup=warmup,
                   first=partial(model.run, feeds), max_seconds=max_seconds,
                   stable_within=STABLE_WITHIN)
    ms = t.ms
    return {"first_ms": (t.first_s or 0.0) * 1e3, "warmup": t.warmup, "runs": len(ms),
            "stable": t.stable, "p50_ms": t.p50_ms, "p90_ms": t.percentile_ms(90),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "seconds": t.seconds}


@dataclass
class TuneResult:
    """What ``tune`` measured and chose; ``entry`` is what went into the file."""

    chosen: str | None
    measurements: list[dict[str, Any]]
    fingerprint: dict[str, Any]
    emulated: bool
    emulation: str
    path: Path
    written: bool
    entry: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["path"] = str(self.path)
        return doc


def _candidate_row(bundle: Bundle, cid: str, feeds: Mapping[str, np.ndarray], *, strict: bool,
                   golden: Any, warmup: int, runs: int, max_seconds: float) -> dict[str, Any]:
    """Load one candidate, check its parity and, when it passes, time it."""
    from ..model import load

    cand = bundle.candidate(cid)
    assert cand is not None
    row: dict[str, Any] = {"candidate": cid, "backend": cand.backend, "precision": cand.precision,
                           "providers": [], "degraded": False, "status": "", "parity": None,
                           "reason": ""}
    try:
        model = load(bundle, candidate=cid, strict=strict, verify_hashes=False)
    except NoCandidateError as exc:
        dec = exc.decisions[0]
        row.update(providers=dec.providers_in_use, degraded=dec.degraded, reason=dec.reason,
                   status=NOT_LOADED)
        return row
    with model:
        row.update(providers=model.providers, degraded=model.degraded,
                   reason=model.decisions[0].reason)
        try:
            report = model.verify(golden)
        except RuntimeBundleError as exc:
            if exc.code == "bundle-format":
                raise
            row.update(status=FAILED, reason=exc.message)
            return row
        row["parity"] = report.passed
        if not report.passed:
            failing = [o.name for o in report.outputs if not o.passed]
            row.update(status=PARITY_FAILED,
                       reason=f"golden parity failed for {failing}: never chosen")
            return row
        try:
            row.update(measure(model, feeds, warmup=warmup, runs=runs, max_seconds=max_seconds))
        except RuntimeBundleError as exc:
            row.update(status=FAILED, reason=exc.message)
            return row
        row["status"] = PASSED
    return row


def tune(bundle: Bundle, *, runs: int = 20, warmup: int = 5, max_seconds: float = 3.0,
         strict: bool = False, write: bool = True, paths: DevicePaths = REAL_PATHS,
         env: Mapping[str, str] | None = None) -> TuneResult:
    """Verify and time every candidate that loads here; pick the fastest that passes parity and
    (``write``) record it beside the bundle. The bundle's hashes must already be checked."""
    from ..golden import first_sample, load_golden

    if runs < 1 or warmup < 0 or max_seconds <= 0:
        raise ValueError("runs must be >= 1, warmup >= 0 and max_seconds > 0")
    golden = load_golden(bundle)
    feeds = first_sample(golden.inputs, golden.batched, batch=1)
    cpu = read_cpuinfo(paths.cpuinfo)
    emulated, why = detect_emulation(env, None, paths.binfmt_misc, cpu)
    rows = [_candidate_row(bundle, cand.id, feeds, strict=strict, golden=golden, warmup=warmup,
                           runs=runs, max_seconds=max_seconds) for cand in bundle.candidates]
    passed = [r for r in rows if r["status"] == PASSED]
    chosen = min(passed, key=lambda r: r["p50_ms"])["candidate"] if passed else None
    for r in passed:
        r["chosen"] = r["candidate"] == chosen
    fingerprint = device_fingerprint({c.backend for c in bundle.candidates}, paths=paths,
                                     env=env)
    entry = {"fingerprint": fingerprint, "candidate": chosen,
             "bundle_sha256": bundle_json_sha256(bundle), "bundle": bundle.name,
             "tuned_at": datetime.datetime.now(datetime.timezone.utc)
             .isoformat(timespec="seconds"),
             "emulated": emulated, "emulation": why if emulated else None,
             "settings": {"runs": runs, "warmup": warmup, "max_seconds": max_seconds,
                          "batch": 1},
             "measurements": rows}
    path = tuned_path(bundle)
    written = False
    if write and chosen is not None:
        write_entry(path, entry)
        written = True
    return TuneResult(chosen, rows, fingerprint, emulated, why, path, written, entry)


def write_entry(path: Path, entry: dict[str, Any]) -> None:
    """Add ``entry``, replacing any with the same fingerprint; atomic, so a crash or a full disk
    mid-write never leaves a half file that load() would have to guess about (OutputError)."""
    entries: list[dict[str, Any]] = []
    if path.is_file():
        try:
            entries = [e for e in read_tuned(path)["entries"]
                       if isinstance(e, dict) and e.get("fingerprint") != entry["fingerprint"]]
        except (OSError, ValueError):
            entries = []  # an unreadable file is replaced, not merged
    doc = {"schema": TUNED_SCHEMA, "note": "written by python -m runtime tune; one entry per "
                                           "device fingerprint", "entries": entries + [entry]}
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data), instead=NO_WRITE_HINT)


def format_measurements(rows: list[dict[str, Any]], indent: str = "  ") -> str:
    """candidate | status | p50 | p90 | runs | providers / reason, aligned."""
    table = [("candidate", "status", "p50 ms", "p90 ms", "runs", "providers / reason")]
    for r in rows:
        if r["status"] == "passed":
            note = f"[{', '.join(r['providers'])}]" + ("" if r["stable"] else " (not stable)")
            if r.get("chosen"):
                note += "  <- fastest"
            table.append((r["candidate"], r["status"], f"{r['p50_ms']:.3f}",
                          f"{r['p90_ms']:.3f}", str(r["runs"]), note))
        else:
            table.append((r["candidate"], r["status"], "-", "-", "-", r["reason"]))
    widths = [max(len(t[i]) for t in table) for i in range(5)]
    return "\n".join((indent + "  ".join([t[i].ljust(widths[i]) for i in range(5)] + [t[5]]))
                     .rstrip() for t in table)
