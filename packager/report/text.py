"""Readable text for build results, bundles and targets (the --json forms are the to_dict()s)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime.compare import OutputReport, format_parity_rows

from ..config.targets import Target
from ..results import BuildResult, CandidateResult


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Left-aligned fixed-width columns; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _worst(c: CandidateResult) -> tuple[float | None, float | None, float | None]:
    outs = c.parity.outputs if c.parity else []
    abs_ = [o.max_abs for o in outs if o.max_abs is not None]
    cos = [o.cosine for o in outs if o.cosine is not None]
    top = [o.top1 for o in outs if o.top1 is not None]
    return (max(abs_) if abs_ else None, min(cos) if cos else None, min(top) if top else None)


_STATUS_WORDS = {"ok": "ok", "parity-failed": "PARITY FAILED", "parity-failed-allowed": "parity failed (allowed)",
                 "dropped": "dropped (fallback)", "failed": "FAILED", "unsupported": "skipped: unsupported"}


def _status_color(status: str) -> str:
    return {"ok": "ok", "failed": "failed", "parity-failed": "failed", "dropped": "warning",
            "parity-failed-allowed": "warning", "unsupported": "dim"}.get(status, "")


def format_build(result: BuildResult, *, color: bool = False) -> str:
    """The build summary: per target, each candidate's size, parity, accuracy and status
    (``color``: ANSI colours on the status words, for a terminal)."""
    from ..progress import paint
    lines = [f"{result.name}: golden = {result.golden['source']}"]
    if result.reference_accuracy is not None:
        lines.append(f"original model {result.metric} on the evaluation data: {result.reference_accuracy:.4f}")
    for t in result.targets:
        where = f" -> {t.bundle_dir} (+ .tar.gz)" if t.bundle_dir else ""
        lines.append("")
        lines.append(f"target {t.target}: {paint(t.status.upper(), _status_color(t.status), color)}{where}")
        rows = [("candidate", "precision", "size", "max_abs", "cosine", "top1", "accuracy", "host ms", "vs fp32",
                 "status")]
        for c in t.candidates:
            max_abs, cos, top = _worst(c)
            rows.append((c.id, c.precision, human_size(c.size), _num(max_abs, ".3g"), _num(cos, ".6f"),
                         _num(top, ".3f"), _num(c.accuracy, ".4f"), _num(c.host_latency_ms, ".3f"),
                         "-" if c.speedup is None else f"{c.speedup:.2f}x",
                         # the last column: colour codes cannot upset the alignment
                         paint(_STATUS_WORDS.get(c.status, c.status), _status_color(c.status), color)
                         + (" (cached)" if c.cached else "")))
        lines.append(table(rows))
        for c in t.candidates:
            if c.message:
                lines.append(f"  - {c.id}: {c.message}")
            if c.status in ("parity-failed", "parity-failed-allowed", "dropped") and c.parity:
                lines.append(format_parity_rows(c.parity.outputs, indent="      "))
            if c.explained and c.explained.get("rows"):
                lines.append("      where the error starts (the nodes that add the most; build JSON: explained):")
                lines.extend(f"        {r['node']} ({r['op_type']}): SNR {r['snr_db']:.1f} dB, -{r['added_db']:.1f} dB "
                             f"here" + (f" (seen at {r['seen_at']})" if r.get("seen_at") else "")
                             + f", cosine {r['cosine']:.4f}" for r in c.explained["rows"][:3])
                if c.explained.get("hint"):
                    lines.append(f"      {c.explained['hint']}")
        if t.message and t.status == "failed":
            lines.append(f"  {t.message}")
    if result.cache.get("enabled"):
        lines.append("")
        lines.append(f"cache: {len(result.cache['hits'])} hit(s), {len(result.cache['misses'])} miss(es) in "
                     f"{result.cache['dir']}")
        remote = result.cache.get("remote")
        if remote:
            lines.append(f"remote cache {remote['base']}: {remote['hits']} entr{'y' if remote['hits'] == 1 else 'ies'} "
                         f"fetched, {remote['pushed']} stored")
            lines.extend(f"  refused (rebuilt): {why}" for why in remote["refused"])
            if remote["error"]:
                lines.append(f"  not used from then on: {remote['error']}")
    if result.report:
        lines.append(f"report: {result.report} (open it in a browser)")
    if result.warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in result.warnings)
    return "\n".join(lines)


def format_targets(targets: list[tuple[str, Target | None, str]]) -> str:
    """One row per target: name, arch, python, candidates in order, file."""
    rows = [("target", "arch", "python", "candidates (in order of preference)", "file")]
    for name, t, path in targets:
        if t is None:
            rows.append((name, "?", "?", "INVALID (edgepack targets --check shows why)", path))
        else:
            rows.append((name, t.arch, t.python, ", ".join(c.id for c in t.candidates), path))
    return table(rows, indent="")


def format_bundle(doc: dict[str, Any], integrity: str) -> str:
    """``edgepack inspect``: signature, candidates, sizes, parity, provenance, integrity."""
    t = doc.get("target", {})
    lines = [f"bundle {doc.get('name')} for {t.get('name')} ({t.get('arch')}, Python {t.get('python')})",
             f"integrity: {integrity}", "", "signature:"]
    for kind in ("inputs", "outputs"):
        for s in doc.get("signature", {}).get(kind, []):
            layout = f" {s['layout']}" if s.get("layout") else ""
            lines.append(f"  {kind[:-1]:6} {s['name']}: {s.get('dtype')} {s.get('shape')}{layout}")
    files = doc.get("files", {})
    lines += ["", "candidates (in order of preference):"]
    rows = [("id", "format", "precision", "providers", "size", "accuracy", "parity")]
    for c in doc.get("candidates", []):
        parity = c.get("parity") or {}
        rows.append((c["id"], c.get("format", ""), c.get("precision", ""), ",".join(c.get("providers", [])),
                     human_size(c.get("size")), _num(c.get("accuracy"), ".4f"),
                     "PASS" if parity.get("passed") else "FAIL"))
    lines.append(table(rows))
    for c in doc.get("candidates", []):
        outs = [OutputReport.from_dict(o) for o in (c.get("parity") or {}).get("outputs", [])]
        if outs:
            lines += ["", f"parity of {c['id']} ({(c.get('parity') or {}).get('checked_on', '')}):",
                      format_parity_rows(outs, indent="  ")]
        found = c.get("explained") or {}
        if found.get("rows"):
            lines.append("  where the error starts on the build host (the nodes that add the most):")
            lines += [f"    {r['node']} ({r['op_type']}): SNR {r['snr_db']:.1f} dB, -{r['added_db']:.1f} dB here"
                      for r in found["rows"][:3]]
        mixed = (c.get("conversion") or {}).get("mixed")
        if mixed and mixed.get("passed"):
            kept = (c.get("conversion") or {}).get("kept_float") or []
            lines.append(f"  mixed precision: {len(kept)} of {mixed.get('float_nodes', '?')} nodes kept in float "
                         f"({', '.join(kept) or 'none'}), {len(mixed.get('rounds', []))} round(s)")
        if c.get("explain"):
            x = c["explain"]
            size = sum(int(files[p].get("size", 0)) for p in (x["probe"], x["references"]) if p in files)
            lines.append(f"  verify --explain: {len(x['tensors'])} tensors probed on {x['samples']} golden samples "
                         f"({human_size(size)}: {x['probe']}, {x['references']})")
    for f in doc.get("fallbacks", []):
        lines.append(f"fallback: {f.get('candidate')} -> {f.get('next')}: {f.get('reason')}")
    for w in doc.get("warnings", []):
        lines.append(f"warning: {w}")
    prov = doc.get("provenance", {})
    src = prov.get("source", {})
    lines += ["", "provenance:",
              f"  source: {src.get('description')} sha256 {str(src.get('sha256', ''))[:16]}...",
              f"  exporter: {prov.get('exporter')}",
              "  tools: " + ", ".join(f"{k} {v}" for k, v in sorted(prov.get("tools", {}).items())),
              f"  built with edgepack {prov.get('edgepack')} on {prov.get('host', {}).get('platform')}"]
    lines.append(f"  files: {len(files)}, {human_size(sum(int(f.get('size', 0)) for f in files.values()))}")
    return "\n".join(lines)
