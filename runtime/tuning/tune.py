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
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .bundle import BUNDLE_FILE, Bundle, sha256_file
from .device import REAL_PATHS, DevicePaths, detect_emulation, read_cpuinfo
from .errors import RuntimeBundleError
from .fileio import atomic_write
from .inventory import backend_packages, backend_providers
from .tuned import TunedLookup, tuned_path

if TYPE_CHECKING:
    from .model import Model

TUNED_SCHEMA = "edgepack-tuned/1"
STABLE_WITHIN = 0.02  # median of the last half within 2% of the whole run's median
# how to get past a folder that cannot take X.tuned.json (after the cause's own fix)
NO_WRITE_HINT = ("or run tune with --no-write to only measure, or copy the bundle to a writable "
                 "folder and tune it there")


# --------------------------------------------------------------------------- where / who

def bundle_json_sha256(bundle: Bundle) -> str:
    return sha256_file(bundle.root / BUNDLE_FILE)


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def device_fingerprint(backends: Iterable[str], *, paths: DevicePaths = REAL_PATHS,
                       providers: bool = True,
                       env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a latency ranking depends on: arch, CPU, usable cores, Python, numpy, the
    backends' package versions and (``providers``) what each backend can run on.

    Without ``providers`` nothing is imported, so a device that differs anyway is told so cheaply.
    """
    cpu = read_cpuinfo(paths.cpuinfo)
    names = sorted(set(backends))
    fp: dict[str, Any] = {
        "arch": platform.machine(), "cpu": cpu.model, "cpus": _usable_cpus(),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}", "numpy": np.__version__,
        "emulated": detect_emulation(env, None, paths.binfmt_misc, cpu)[0],
        "packages": {name: backend_packages(name) for name in names}}
    if providers:
        fp["providers"] = {name: _providers_of(name) for name in names}
    return fp


def _providers_of(name: str) -> list[str]:
    try:
        return backend_providers(name)[1]
    except Exception as exc:  # not importable: that is a fact about the device too
        return [f"unavailable: {type(exc).__name__}"]


def _diff(recorded: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Readable differences between two fingerprints ("python: 3.10 -> 3.11")."""
    out = []
    for key in sorted(set(recorded) | set(now)):
        a, b = recorded.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


# --------------------------------------------------------------------------- reading the file

def read_tuned(path: Path) -> dict[str, Any]:
    """The tuned-choice document; raises ValueError when it is not one."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("schema") != TUNED_SCHEMA \
            or not isinstance(doc.get("entries"), list):
        raise ValueError(f"not a {TUNED_SCHEMA} document")
    return doc


def lookup_tuned(bundle: Bundle, *, paths: DevicePaths = REAL_PATHS,
                 fingerprint: Mapping[str, Any] | None = None) -> TunedLookup:
    """The tuned candidate for this device, if the file beside the bundle has one that still
    applies: fingerprint equal, bundle.json unchanged, candidate still in the bundle."""
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
        cheap = device_fingerprint(backends, paths=paths, providers=False)
    else:
        cheap = {k: v for k, v in fingerprint.items() if k != "providers"}
    diffs = [(_diff({k: v for k, v in e["fingerprint"].items() if k != "providers"}, cheap), e)
             for e in entries]
    close = [e for d, e in diffs if not d]
    if close:
        full = dict(fingerprint) if fingerprint is not None and "providers" in fingerprint \
            else {**cheap, "providers": {b: _providers_of(b) for b in sorted(backends)}}
        diffs = [(_diff(e["fingerprint"], full), e) for e in close]
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


# --------------------------------------------------------------------------- measuring

def measure(model: Model, feeds: Mapping[str, np.ndarray], *, warmup: int = 5,
            runs: int = 20, max_seconds: float = 3.0) -> dict[str, Any]:
    """Warm up, then time runs until the median is stable: at least ``runs``, stopping once the
    median of the last half is within 2% of the whole; never longer than ``max_seconds``."""
    start = time.perf_counter()
    deadline = start + max_seconds
    t = time.perf_counter()
    model.run(feeds)  # validates feeds once
    first = time.perf_counter() - t
    done_warmup = 0
    while done_warmup < warmup and time.perf_counter() < deadline:
        model.run(feeds, validate=False)
        done_warmup += 1
    times: list[float] = []
    stable = False
    while len(times) < 1_000_000:
        t = time.perf_counter()
        model.run(feeds, validate=False)
        now = time.perf_counter()
        times.append(now - t)
        n = len(times)
        if n >= max(runs, 2) and (n == max(runs, 2) or n % 5 == 0):
            whole = float(np.median(times))
            last = float(np.median(times[n // 2:]))
            if abs(last - whole) <= STABLE_WITHIN * whole:
                stable = True
                break
        if now >= deadline:
            break
    ms = np.asarray(times) * 1e3
    return {"first_ms": first * 1e3, "warmup": done_warmup, "runs": len(times),
            "stable": stable, "p50_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)), "mean_ms": float(ms.mean()),
            "min_ms": float(ms.min()), "seconds": time.perf_counter() - start}


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


def tune(bundle: Bundle, *, runs: int = 20, warmup: int = 5, max_seconds: float = 3.0,
         strict: bool = False, write: bool = True, paths: DevicePaths = REAL_PATHS,
         env: Mapping[str, str] | None = None) -> TuneResult:
    """Verify and time every candidate that loads here; pick the fastest that passes parity and
    (``write``) record it beside the bundle. The bundle's hashes must already be checked."""
    from .golden import check_parity, first_sample, load_golden
    from .model import Model
    from .select import order_candidates, try_candidate

    if runs < 1 or warmup < 0 or max_seconds <= 0:
        raise ValueError("runs must be >= 1, warmup >= 0 and max_seconds > 0")
    g_in, g_out, batched = load_golden(bundle)
    feeds = first_sample(g_in, batched, batch=1)
    cpu = read_cpuinfo(paths.cpuinfo)
    emulated, why = detect_emulation(env, None, paths.binfmt_misc, cpu)
    rows: list[dict[str, Any]] = []
    for cand in order_candidates(bundle, None):
        backend, dec = try_candidate(bundle, cand, strict=strict)
        row: dict[str, Any] = {"candidate": cand.id, "backend": cand.backend,
                               "precision": cand.precision, "providers": dec.providers_in_use,
                               "degraded": dec.degraded, "status": "", "parity": None,
                               "reason": dec.reason}
        rows.append(row)
        if backend is None:
            row["status"] = "not-loaded"
            continue
        with Model(bundle, backend, cand, [dec]) as model:
            try:
                report = check_parity(model, g_in, g_out, batched)
            except RuntimeBundleError as exc:
                if exc.code == "bundle-format":
                    raise
                row.update(status="failed", reason=exc.message)
                continue
            row["parity"] = report.passed
            if not report.passed:
                failing = [o.name for o in report.outputs if not o.passed]
                row.update(status="parity-failed",
                           reason=f"golden parity failed for {failing}: never chosen")
                continue
            try:
                row.update(measure(model, feeds, warmup=warmup, runs=runs,
                                   max_seconds=max_seconds))
            except RuntimeBundleError as exc:
                row.update(status="failed", reason=exc.message)
                continue
            row["status"] = "passed"
    passed = [r for r in rows if r["status"] == "passed"]
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
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), instead=NO_WRITE_HINT)


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
