"""``python -m runtime doctor``: what this device is, what is installed, and whether a bundle fits.

This module assembles the report and formats it for a person; the parts live beside it:
``facts`` (CPU, memory, OS, board, emulation), ``inventory`` (backends, providers, CUDA,
TensorRT), ``requirements`` (installed versions, requirements.txt checks) and ``known_bad``
(combinations that are known not to work). Their public names are re-exported here.
Frameworks are imported only when a backend is inspected, and never when a known-bad rule says
importing it crashes.
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..bundle import Bundle
from ..errors import IntegrityError
from ..select import SKIPPED, Decision, walk
from .facts import (
    ARM_PARTS,
    ARMV80_PARTS,
    JETPACK,
    NVIDIA_PARTS,
    REAL_PATHS,
    CpuInfo,
    DevicePaths,
    canon_arch,
    detect_emulation,
    device_facts,
    read_cpuinfo,
    read_cuda_version,
    read_device_tree_model,
    read_meminfo,
    read_nv_tegra_release,
    read_os_release,
)
from .inventory import (
    BACKEND_DISTS,
    backend_packages,
    backend_providers,
    cuda_report,
    inspect_backends,
    tensorrt_report,
)
from .known_bad import KNOWN_BAD, KnownBad, check_known_bad, known_bad_table
from .requirements import (
    Requirement,
    check_requirements,
    installed_version,
    normalize_name,
    version_key,
    version_matches,
)

__all__ = ["ARMV80_PARTS", "ARM_PARTS", "BACKEND_DISTS", "JETPACK", "KNOWN_BAD", "NVIDIA_PARTS",
           "REAL_PATHS", "CpuInfo", "DevicePaths", "KnownBad", "Requirement",
           "backend_packages", "backend_providers", "check_known_bad", "check_requirements",
           "cuda_report", "detect_emulation", "device_facts", "format_report",
           "inspect_backends", "installed_version", "known_bad_table", "read_cpuinfo",
           "read_cuda_version", "read_device_tree_model", "read_meminfo",
           "read_nv_tegra_release", "read_os_release", "report", "tensorrt_report",
           "version_key", "version_matches"]


# --------------------------------------------------------------------------- the report

def _bundle_section(bundle: Bundle, *, machine: str, cpu: CpuInfo,
                    version_of: Callable[[str], str | None],
                    skip_backends: Mapping[str, str], problems: list[str],
                    fixes: list[str]) -> dict[str, Any]:
    """Target match, requirements, and which candidates load here."""
    target = bundle.target
    checks: list[dict[str, Any]] = []
    want_arch = target.get("arch")
    if want_arch:
        ok = canon_arch(str(want_arch)) == canon_arch(machine)
        checks.append({"check": "arch", "want": want_arch, "have": machine, "ok": ok,
                       "fix": None if ok else f"use a bundle built for {machine} (this one is "
                                              f"for {want_arch})"})
    want_py = target.get("python")
    if want_py:
        have_py = f"{sys.version_info[0]}.{sys.version_info[1]}"
        ok = str(want_py) == have_py
        checks.append({"check": "python", "want": str(want_py), "have": have_py, "ok": ok,
                       "fix": None if ok else f"run the bundle with Python {want_py} (python"
                                              f"{want_py} -m venv ...); its pins are for it"})
    for c in checks:
        if not c["ok"]:
            problems.append(f"{c['check']}: the bundle's target wants {c['want']}, this device "
                            f"has {c['have']}")
            fixes.append(c["fix"])
    req_path = bundle.root / "requirements.txt"
    reqs: list[Requirement] = []
    if req_path.is_file():
        reqs = check_requirements(req_path.read_text(encoding="utf-8", errors="replace"),
                                  machine=machine, version_of=version_of)
        for r in reqs:
            if not r.ok:
                problems.append(f"requirement {r.line}: {r.note}")
                if r.fix:
                    fixes.append(r.fix)
    integrity: str | None = None
    try:
        bundle.verify()
    except IntegrityError as exc:
        integrity = str(exc)
        problems.append(f"bundle files: {exc.message}")
        fixes.append(exc.hint or "re-copy the bundle")
    decisions: list[Decision] = []
    selected: str | None = None
    if integrity is None:  # never load artifacts from a bundle that fails its hash check
        crashing = [c for c in bundle.candidates if c.backend in skip_backends]
        safe = dataclasses.replace(bundle, candidates=tuple(
            c for c in bundle.candidates if c.backend not in skip_backends))
        found: dict[str, Decision] = {}
        if safe.candidates:
            chosen, decs = walk(safe, probe_all=True)
            if chosen is not None:
                selected = chosen[1].id
                chosen[0].close()
            found = {d.candidate: d for d in decs}
        for cand in crashing:
            found[cand.id] = Decision(cand.id, SKIPPED, f"not tried: {skip_backends[cand.backend]}",
                                      cand.backend, cand.precision, list(cand.providers))
        decisions = [found[c.id] for c in bundle.candidates]
        if selected is None:
            problems.append("no candidate of the bundle loads on this device")
    from ..tuning.tuned import lookup_tuned

    tuning = lookup_tuned(bundle).to_dict() if integrity is None else None
    return {"path": str(bundle.archive or bundle.root), "name": bundle.name,
            "target": {k: target.get(k) for k in ("name", "arch", "python", "description")},
            "checks": checks, "requirements": [r.to_dict() for r in reqs],
            "integrity": integrity or "ok", "candidates": [d.to_dict() for d in decisions],
            "selected": selected, "tuning": tuning}


def report(bundle: Bundle | None = None, *, paths: DevicePaths = REAL_PATHS,
           machine: str | None = None, deep: bool = False,
           versions: Mapping[str, str | None] | None = None,
           env: Mapping[str, str] | None = None, query_gpus: bool = True) -> dict[str, Any]:
    """The whole doctor report as one JSON-ready document; ``ok`` false when there is
    something to fix. ``versions`` overrides installed versions (tests fake a Pi's packages)."""
    from ..backends import backend_names

    facts = device_facts(paths, machine=machine, env=env)
    cpu: CpuInfo = facts.pop("_cpu")
    machine = facts["arch"]

    def version_of(dist: str) -> str | None:
        if versions is not None:
            want = normalize_name(dist)
            return next((v for k, v in versions.items() if normalize_name(k) == want), None)
        return installed_version(dist)

    names = backend_names()
    watched = {d for dists in BACKEND_DISTS.values() for d in dists}
    watched |= {r.package for r in KNOWN_BAD}
    watched |= {r.with_package[0] for r in KNOWN_BAD if r.with_package}
    watched.add("numpy")
    have = {d: version_of(d) for d in sorted(watched)}
    problems: list[str] = []
    fixes: list[str] = []
    hits = check_known_bad(machine=machine, cpu=cpu, versions=have)
    # A bundle's pins count too: a pin that would crash here is caught before pip installs it.
    pinned_hits: list[dict[str, Any]] = []
    if bundle is not None and (bundle.root / "requirements.txt").is_file():
        pins = {r.name: v for r in check_requirements(
            (bundle.root / "requirements.txt").read_text(encoding="utf-8", errors="replace"),
            machine=machine, version_of=lambda _n: None)
            for op, v in r.specs if op in ("==", "===")}
        merged = {**have, **pins}
        seen = {h["id"] for h in hits}
        pinned_hits = [dict(h, pinned=True) for h in check_known_bad(
            machine=machine, cpu=cpu, versions=merged) if h["id"] not in seen]
    for h in hits + pinned_hits:
        where = "requirements.txt pins " if h.get("pinned") else ""
        problems.append(f"known bad: {where}{h['matched']}: {h['reason']}")
        fixes.append(h["fix"])
    skip = {h["crashes_import"]: f"known bad ({h['id']}): importing it would crash"
            for h in hits if h.get("crashes_import")}
    inspect = set(names) if deep else {"onnxruntime", "tflite"}
    if bundle is not None:
        inspect |= {c.backend for c in bundle.candidates}
    doc: dict[str, Any] = {
        "ok": True, "device": facts,
        "accelerators": {"cuda": cuda_report(version_path=paths.cuda_version,
                                             query_gpus=query_gpus),
                         "tensorrt": tensorrt_report()},
        "backends": inspect_backends(names, inspect=inspect, skip=skip, version_of=version_of),
        "packages": {k: v for k, v in have.items() if v is not None},
        "known_bad": hits + pinned_hits, "bundle": None}
    if bundle is not None:
        doc["bundle"] = _bundle_section(bundle, machine=machine, cpu=cpu, version_of=version_of,
                                        skip_backends=skip, problems=problems, fixes=fixes)
    doc["problems"] = problems
    doc["fixes"] = list(dict.fromkeys(f for f in fixes if f))
    doc["ok"] = not problems
    return doc


# --------------------------------------------------------------------------- human output

def _rows(pairs: Sequence[tuple[str, Any]], indent: str = "  ") -> list[str]:
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {'-' if v is None or v == '' else v}" for k, v in pairs]


def _gib(n: int | None) -> str | None:
    return None if n is None else f"{n / (1 << 30):.1f} GiB"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    return [(indent + "  ".join([str(r[i]).ljust(widths[i]) for i in range(len(widths))]
                                + [str(r[-1])])).rstrip() for r in [header, *rows]]


def format_report(doc: Mapping[str, Any]) -> str:
    """Sections with aligned rows, for a person at the device's terminal."""
    dev, cpu = doc["device"], doc["device"]["cpu"]
    lines = ["device:"]
    mem = dev["memory"]
    pairs: list[tuple[str, Any]] = [
        ("arch", dev["arch"]), ("cpu", cpu["model"]), ("cores", cpu["cores"]),
        ("memory", (f"{_gib(mem['total_bytes'])} total, {_gib(mem['available_bytes'])} available"
                    if mem["total_bytes"] else None)),
        ("os", dev["os"]), ("kernel", dev["kernel"]), ("python", dev["python"])]
    if dev["raspberry_pi"]:
        pairs.append(("raspberry pi", dev["raspberry_pi"]))
    elif dev["board"]:
        pairs.append(("board", dev["board"]))
    if dev["jetson"]:
        j = dev["jetson"]
        pairs.append(("jetson", f"{j.get('module') or 'Jetson'}, L4T {j.get('l4t') or '?'}, "
                                f"JetPack {j.get('jetpack') or '?'}"))
    if cpu.get("dotprod") is not None:
        pairs.append(("arm features", f"dotprod {'yes' if cpu['dotprod'] else 'no'}, "
                                      f"atomics {'yes' if cpu['atomics'] else 'no'}"))
    pairs.append(("emulated", "YES: " + dev["emulation"] if dev["emulated"] else "no"))
    lines += _rows(pairs)
    cuda, trt = doc["accelerators"]["cuda"], doc["accelerators"]["tensorrt"]
    lines.append("accelerators:")
    cuda_text = "no" if not cuda["present"] else ", ".join(
        x for x in (f"nvidia-smi {cuda['nvidia_smi']}" if cuda["nvidia_smi"] else "",
                    f"libcudart {cuda['libcudart']}" if cuda["libcudart"] else "",
                    f"toolkit {cuda['toolkit']}" if cuda["toolkit"] else "") if x)
    acc = [("cuda", cuda_text)] + [("gpu", g) for g in cuda["gpus"]]
    acc.append(("tensorrt", "no" if not trt["present"] else ", ".join(
        x for x in (f"libnvinfer {trt['libnvinfer']}" if trt["libnvinfer"] else "",
                    f"python {trt['python']}" if trt["python"] else "") if x)))
    lines += _rows(acc)
    lines.append("backends:")
    rows = []
    for b in doc["backends"]:
        pkgs = ", ".join(f"{k} {v}" for k, v in b["packages"].items()) or "-"
        if b["inspected"] and b["importable"]:
            what = ", ".join(b["providers"]) or "-"
            if b.get("cuda_devices"):
                what += f" ({', '.join(b['cuda_devices'])})"
        else:
            what = b["note"] or "-"
        rows.append((b["name"], pkgs, what))
    lines += _table(("backend", "installed", "providers / devices"), rows)
    if doc["known_bad"]:
        lines.append("known bad combinations found:")
        for h in doc["known_bad"]:
            lines.append(f"  {h['id']}: {h['matched']}")
            lines.append(f"    {h['reason']}")
            lines.append(f"    fix: {h['fix']}  ({h['source']})")
    b = doc["bundle"]
    if b is not None:
        lines.append(f"bundle: {b['name']} ({b['path']}), target {b['target'].get('name') or '-'}")
        for c in b["checks"]:
            lines.append(f"  {c['check']:<8} want {c['want']}, have {c['have']}: "
                         f"{'ok' if c['ok'] else 'MISMATCH'}")
        if b["requirements"]:
            lines.append("  requirements.txt:")
            lines += _table(("requirement", "installed", "status"), [
                (r["line"], r["installed"] or "-", "ok" if r["ok"] else r["note"] or "problem")
                for r in b["requirements"]], indent="    ")
        lines.append(f"  files: {'ok' if b['integrity'] == 'ok' else 'DO NOT MATCH bundle.json'}")
        if b["candidates"]:
            lines.append("  candidates here:")
            lines += _table(("candidate", "status", "reason"), [
                (d["candidate"], d["status"] + (" (degraded)" if d["degraded"] else ""),
                 d["reason"]) for d in b["candidates"]], indent="    ")
        if b["tuning"]:
            lines.append(f"  tuning: {b['tuning']['text']}")
    if doc["problems"]:
        lines.append("problems:")
        lines += [f"  - {p}" for p in doc["problems"]]
        lines.append("fixes:")
        lines += [f"  {f}" for f in doc["fixes"]]
    else:
        lines.append("no problems found" + (": this device matches the bundle"
                                             if b is not None else ""))
    return "\n".join(lines)
