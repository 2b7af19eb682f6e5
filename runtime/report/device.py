"""``python -m runtime verify --report`` / ``bench --report``: the device's reports as one
self-contained HTML page each. ``render_device_report(kind, doc)``: ``kind`` is ``"verify"`` or
``"bench"``; ``doc`` is what ``verify --json`` / ``bench --json`` print (or an error document)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .charts import hbars
from .html import DEGRADED, as_mapping, as_seq, badge, bullets, esc, fmt_num, kv, page, table, verdict
from .parity import outputs_block, worst

ReportKind = Literal["verify", "bench"]


def _device_kv(dev: Mapping[str, Any]) -> str:
    return kv([(k, esc(v)) for k, v in dev.items() if v is not None])


def _error_block(doc: Mapping[str, Any]) -> str:
    return ('<div class="card failed"><h3>error ' + badge("failed", "ERROR") + "</h3>"
            + kv([("error", esc(doc.get("error"))),
                   ("message", f'<span class="failures">{esc(doc.get("message"))}</span>'),
                   ("where", esc(doc.get("where")) if doc.get("where") else ""),
                   ("hint", esc(doc.get("hint")) if doc.get("hint") else "")]) + "</div>")


def _signature_check(doc: Mapping[str, Any]) -> str:
    sig = as_mapping(doc.get("signature_check"))
    if not sig:
        return ""
    if not sig.get("checked", True) and len(sig) == 1:
        return '<span class="muted">not checked (no --key)</span>'
    return ", ".join(f"{esc(k)} <code>{esc(v)}</code>" for k, v in sig.items())


def _verify_body(doc: Mapping[str, Any]) -> str:
    passed = doc.get("passed")
    bundle = doc.get("bundle")
    for_target = " for target <code>" + esc(doc.get("target")) + "</code>" if doc.get("target") else ""
    parts = [f"<h1>edgepack verify{': <code>' + esc(bundle) + '</code>' if bundle else ''} "
             f"{verdict(passed) if doc.get('ok', True) else badge('failed', 'ERROR')}</h1>",
             f'<p class="sub">golden parity on this device{for_target}</p>']
    if doc.get("ok") is False:
        return "".join(parts) + _error_block(doc)
    cands = [as_mapping(c) for c in as_seq(doc.get("candidates"))]
    parts.append('<div class="card">' + kv([
        ("result", f"{sum(1 for c in cands if c.get('passed'))} of {len(cands)} candidate(s) checked pass"),
        ("golden samples", esc(doc.get("samples")) + (" (batched)" if doc.get("batched") else
                                                     " (one by one)" if doc.get("batched") is False else "")),
        ("signature", _signature_check(doc)),
    ]) + (("<h4>device</h4>" + _device_kv(as_mapping(doc.get("device")))) if doc.get("device") else "") + "</div>")
    rows = []
    for c in cands:
        rows.append((f'<a href="#cand-{esc(c.get("candidate"))}"><code>{esc(c.get("candidate"))}</code></a>',
                     esc(", ".join(map(str, as_seq(c.get("providers"))))),
                     '<span class="badge b-warn">DEGRADED</span>' if c.get("degraded") else "no",
                     *(fmt_num(v, s) for v, s in zip(worst([as_mapping(o) for o in as_seq(c.get("outputs"))]),
                                                  (".3g", ".6f", ".3f"), strict=False)),
                     verdict(c.get("passed"))))
    parts.append("<h2>candidates checked</h2>" + (table(
        ("candidate", "providers", "degraded", "max_abs", "cosine", "top1", "parity"), rows, num=(3, 4, 5),
        cls="summary")
        or '<p class="muted">none</p>'))
    for c in cands:
        status = "ok" if c.get("passed") else "failed"
        parts.append(f'<section class="card candidate {status}" id="cand-{esc(c.get("candidate"))}" '
                     f'data-candidate="{esc(c.get("candidate"))}">'
                     f"<h3><code>{esc(c.get('candidate'))}</code> {verdict(c.get('passed'))}"
                     + (" " + DEGRADED if c.get("degraded") else "") + "</h3>"
                     + kv([("providers", esc(", ".join(map(str, as_seq(c.get("providers"))))))])
                     + outputs_block(as_seq(c.get("outputs")), c.get("tolerance"))
                     + _explained_block(as_mapping(c.get("explained"))) + "</section>")
    decisions = [as_mapping(d) for d in as_seq(doc.get("decisions"))]
    if decisions and doc.get("mode") == "all":  # each candidate was loaded on its own
        decisions = [dict(d, status="loads" if d.get("status") == "selected" else d.get("status"))
                     for d in decisions]
    if decisions:
        heading = ("which candidates load here (--all)" if doc.get("mode") == "all"
                   else "candidate selection")
        parts.append(f"<h2>{heading}</h2>" + table(
            ("candidate", "status", "backend", "precision", "providers asked", "in use", "reason"),
            [(f"<code>{esc(d.get('candidate'))}</code>", badge(d.get("status") or "-"), esc(d.get("backend")),
              esc(d.get("precision")), esc(", ".join(map(str, as_seq(d.get("providers_asked"))))),
              esc(", ".join(map(str, as_seq(d.get("providers_in_use"))))),
              esc(d.get("reason")) + bullets(as_seq(d.get("notes")))) for d in decisions], cls="msg"))
    return "".join(parts)


def _explained_block(x: Mapping[str, Any]) -> str:
    """verify --explain: the per-tensor SNR on this device against the build host's, along the
    graph's depth (a bar per tensor: the SNR lost at it here), then the rows."""
    if not x:
        return ""
    if x.get("error"):
        return (f'<div class="explained"><h4>where the error starts on this device</h4><p class="muted">'
                f'{esc(x.get("error"))}; {esc(x.get("hint"))}</p></div>')
    rows = [as_mapping(r) for r in as_seq(x.get("rows"))]
    chart = hbars([(f"{r.get('depth')} {str(r.get('op_type'))[:7]}", r.get("added_db")) for r in rows], "dB lost")
    worse = {r.get("node") for r in (as_mapping(w) for w in as_seq(x.get("worse_than_host")))}
    body = [(f"<code>{esc(r.get('node'))}</code>", esc(r.get("op_type")), fmt_num(r.get("depth"), "d"),
             fmt_num(r.get("snr_db"), ".1f"), fmt_num(r.get("host_snr_db"), ".1f"), fmt_num(r.get("added_db"), ".1f"),
             badge("failed", "WORSE THAN HOST") if r.get("node") in worse else "") for r in rows]
    first = x.get("first_worse_than_host")
    return ('<div class="explained"><h4>where the error starts on this device</h4>'
            + (f"<p>first tensor more than 6 dB below the build host: <code>{esc(first)}</code></p>" if first else
               '<p class="muted">every probed tensor within 6 dB of the build host</p>')
            + chart + table(("node", "op", "depth", "SNR dB here", "SNR dB on host", "lost here (dB)", ""), body,
                            num=(2, 3, 4, 5)) + "</div>")


def _bench_body(doc: Mapping[str, Any]) -> str:
    bundle = doc.get("bundle")
    parts = [f"<h1>edgepack bench{': <code>' + esc(bundle) + '</code>' if bundle else ''} "
             f"{badge('ok') if doc.get('ok', True) else badge('failed', 'ERROR')}</h1>",
             f'<p class="sub">latency and throughput on this device'
             f'{" for target <code>" + esc(doc.get("target")) + "</code>" if doc.get("target") else ""}</p>']
    if doc.get("ok") is False:
        return "".join(parts) + _error_block(doc)
    parts.append('<div class="card">' + kv([
        ("candidate", f"<code>{esc(doc.get('candidate'))}</code>"
         + (' <span class="badge b-warn">DEGRADED</span>' if doc.get("degraded") else "")),
        ("providers", esc(", ".join(map(str, as_seq(doc.get("providers")))))),
        ("backend version", esc(doc.get("backend_version"))),
        ("runs", f"{esc(doc.get('runs'))} timed after {esc(doc.get('warmup'))} warmup, batch {esc(doc.get('batch'))}"),
        ("throughput", f"<b>{fmt_num(doc.get('inferences_per_s'), '.1f')}</b> inferences/s, "
                       f"{fmt_num(doc.get('samples_per_s'), '.1f')} samples/s"),
        ("signature", _signature_check(doc)),
    ]) + "</div>")
    timings = [("p50", doc.get("p50_ms")), ("p90", doc.get("p90_ms")), ("p99", doc.get("p99_ms")),
               ("mean", doc.get("mean_ms")), ("min", doc.get("min_ms")), ("max", doc.get("max_ms"))]
    once = [("hash check", doc.get("verify_ms")), ("load", doc.get("load_ms")),
            ("first inference", doc.get("first_ms"))]
    parts.append("<h2>latency per inference</h2>" + '<div class="card">'
                 + table([k for k, _ in timings], [[fmt_num(v, ".3f", " ms") for _, v in timings]],
                          num=range(len(timings)), cls="latency compact")
                 + f"<figure>{hbars(timings, 'ms')}</figure></div>")
    parts.append("<h2>one-off costs</h2>" + '<div class="card">'
                 + table([k for k, _ in once], [[fmt_num(v, ".2f", " ms") for _, v in once]], num=range(3),
                          cls="compact")
                 + "</div>")
    if doc.get("device"):
        parts.append('<h2>device</h2><div class="card">' + _device_kv(as_mapping(doc.get("device"))) + "</div>")
    return "".join(parts)


def render_device_report(kind: str, doc: Mapping[str, Any]) -> str:
    """A device report: ``kind`` ``"verify"`` or ``"bench"``, ``doc`` that command's --json document."""
    doc = as_mapping(doc)
    if kind == "verify":
        body = _verify_body(doc)
    elif kind == "bench":
        body = _bench_body(doc)
    else:
        raise ValueError(f"unknown report kind {kind!r}; use 'verify' or 'bench'")
    name = doc.get("bundle")
    return page(f"edgepack {kind}" + (f": {name}" if name else ""), body)
