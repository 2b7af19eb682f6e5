"""The build's HTML report (``<out>/<name>.report.html``): per target and candidate the size,
parity statistics, an error histogram per output, host latency against fp32, fallbacks, skipped
candidates and provenance. Built from the runtime's report pieces (``runtime.report``), so the
build and device reports look alike; it lives here because only the packager writes it.

``render_build_report(doc)``: ``doc`` is the build JSON (``<out>/<name>.build.json``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.report.html import (
    as_mapping,
    as_seq,
    badge,
    bullets,
    card_class,
    details,
    esc,
    fmt_num,
    fmt_size,
    kv,
    page,
    table,
    verdict,
)
from runtime.report.parity import outputs_block, worst

__all__ = ["render_build_report"]

_TIMES, _DELTA, _ELLIPSIS = "\u00d7", "\u0394", "\u2026"


def _accuracy(acc: Any, ref: Any) -> str:
    if not isinstance(acc, (int, float)) or isinstance(acc, bool):
        return "-"
    text = fmt_num(acc, ".4f")
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        text += f' <span class="muted">({_DELTA} {esc(format(acc - ref, "+.4f"))})</span>'
    return text


def _status_cell(c: Mapping[str, Any]) -> str:
    out = badge(c.get("status") or "-")
    if c.get("cached"):
        out += ' <span class="badge b-info">CACHED</span>'
    return out


def _candidate_card(t_name: str, c: Mapping[str, Any], ref_acc: Any) -> str:
    cid = c.get("id")
    status = c.get("status")
    parity = as_mapping(c.get("parity"))
    speed = c.get("speedup_vs_fp32")
    info = kv([
        ("format / precision", f"{esc(c.get('format'))} / {esc(c.get('precision'))}"),
        ("file", f"<code>{esc(c.get('file'))}</code>" if c.get("file") else ""),
        ("size", esc(fmt_size(c.get("size")))),
        ("host latency", fmt_num(c.get("host_latency_ms"), ".3f", " ms")
         + (f" ({fmt_num(speed, '.2f', _TIMES)} vs fp32)" if speed is not None else "")),
        ("accuracy", _accuracy(c.get("accuracy"), ref_acc)
         + (f' <span class="muted">reference {fmt_num(ref_acc, ".4f")}</span>'
            if isinstance(ref_acc, (int, float)) else "")),
        ("converter", esc(c.get("converter")) if c.get("converter") else ""),
        ("parity checked on", esc(parity.get("checked_on")) if parity.get("checked_on") else ""),
        ("status", _status_cell(c)),
        ("message", f'<span class="{"failures" if card_class(status) == "failed" else ""}">'
                    f"{esc(c.get('message'))}</span>" if c.get("message") else ""),
        ("notes", bullets(as_seq(c.get("notes")))),
    ])
    parity_html = (outputs_block(as_seq(parity.get("outputs")), c.get("tolerance"))
                   if parity else '<p class="muted">no parity: the candidate was not built</p>')
    parity_verdict = verdict(parity.get("passed")) if parity else ""
    return (f'<section class="card candidate {card_class(status)}" id="{esc(t_name)}--{esc(cid)}" '
            f'data-candidate="{esc(cid)}" data-status="{esc(status)}">'
            f'<h3><code>{esc(cid)}</code> {_status_cell(c)}</h3><div class="cand-body"><div>{info}</div>'
            f"<div><h4>parity {parity_verdict}</h4>{parity_html}{_explained(c)}</div></div></section>")


def _explained(c: Mapping[str, Any]) -> str:
    """The per-node table of an int8 candidate that missed parity, with a bar per node for the SNR
    it loses (50 dB, what an ideal 8-bit quantizer gives, is the full width)."""
    found = as_mapping(c.get("explained"))
    rows = [as_mapping(r) for r in as_seq(found.get("rows"))]
    if not rows:
        return ""

    def bar(added: Any) -> str:
        width = max(0.0, min(100.0, float(added) * 2)) if isinstance(added, (int, float)) else 0.0
        return (f'<svg width="100" height="10" role="img" aria-label="{esc(fmt_num(added, ".1f"))} dB">'
                f'<rect width="{width:.0f}" height="10" fill="#c0392b"/></svg>')

    body = [(f"<code>{esc(r.get('node'))}</code>"
             + (f' <span class="muted">seen at <code>{esc(r["seen_at"])}</code></span>' if r.get("seen_at") else ""),
             esc(r.get("op_type")), fmt_num(r.get("depth"), "d"),
             fmt_num(r.get("snr_db"), ".1f"), fmt_num(r.get("added_db"), ".1f") + " " + bar(r.get("added_db")),
             fmt_num(r.get("cosine"), ".5f"), "yes" if r.get("quantized") else "no") for r in rows]
    hint = f'<p class="muted">{esc(found.get("hint"))}</p>' if found.get("hint") else ""
    return ('<div class="explained"><h4>where the error starts</h4>'
            + table(("node", "op", "depth", "SNR dB", "SNR lost here (dB)", "cosine", "int8"), body, num=(2, 3, 5))
            + hint + "</div>")


def _target_section(t: Mapping[str, Any], ref_acc: Any) -> str:
    name = t.get("target")
    cands = [c for c in as_seq(t.get("candidates")) if isinstance(c, Mapping)]
    rows = []
    for c in cands:
        parity = as_mapping(c.get("parity"))
        max_abs, cos, top = worst([o for o in as_seq(parity.get("outputs")) if isinstance(o, Mapping)])
        speed = c.get("speedup_vs_fp32")
        rows.append((f'<a href="#{esc(name)}--{esc(c.get("id"))}"><code>{esc(c.get("id"))}</code></a>',
                     esc(c.get("format")), esc(c.get("precision")), esc(fmt_size(c.get("size"))),
                     fmt_num(max_abs), fmt_num(cos, ".6f"), fmt_num(top, ".3f"), _accuracy(c.get("accuracy"), ref_acc),
                     fmt_num(c.get("host_latency_ms"), ".3f"), fmt_num(speed, ".2f", _TIMES),
                     _status_cell(c)))
    summary = table(("candidate", "format", "precision", "size", "max_abs", "cosine", "top1",
                      "accuracy", "host ms", "vs fp32", "status"), rows, num=(3, 4, 5, 6, 7, 8, 9),
                     cls="summary")
    where = kv([("bundle", f"<code>{esc(t.get('bundle_dir'))}</code>" if t.get("bundle_dir") else
                  '<span class="muted">none written</span>'),
                 ("archive", f"<code>{esc(t.get('archive'))}</code>" if t.get("archive") else ""),
                 ("message", f'<span class="{"failures" if t.get("status") == "failed" else ""}">'
                             f"{esc(t.get('message'))}</span>" if t.get("message") else "")])
    # what fell back, what was not built, and why
    fell = []
    for f in as_seq(t.get("fallbacks")):
        f = as_mapping(f)
        fell.append((f"<code>{esc(f.get('candidate'))}</code>",
                     "-" if f.get("next") in (None, "", "-") else f"<code>{esc(f.get('next'))}</code>",
                     esc(f.get("reason"))))
    not_built = [(f"<code>{esc(c.get('id'))}</code>", badge(c.get("status")), esc(c.get("message")))
                 for c in cands if c.get("status") in ("failed", "unsupported", "parity-failed")]
    noted = [(f"<code>{esc(c.get('id'))}</code>", bullets(as_seq(c.get("notes"))))
             for c in cands if as_seq(c.get("notes"))]
    why = ""
    if fell:
        why += "<h4>fallbacks</h4>" + table(("candidate", "fell back to", "reason"), fell, cls="msg")
    if not_built:
        why += "<h4>not in the bundle</h4>" + table(("candidate", "status", "reason"), not_built, cls="msg")
    if noted:
        why += "<h4>candidate notes</h4>" + table(("candidate", "notes"), noted, cls="msg")
    cards = "".join(_candidate_card(str(name), c, ref_acc) for c in cands)
    return (f'<section class="target" id="target-{esc(name)}" data-target="{esc(name)}">'
            f"<h2>target <code>{esc(name)}</code> {badge(t.get('status') or '-')}</h2>"
            f'<div class="card">{where}{summary or "<p class=muted>no candidates</p>"}{why}</div>'
            f"{cards}</section>")


def _tools(doc: Mapping[str, Any]) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for src in (as_mapping(as_mapping(doc.get("provenance")).get("tools")), as_mapping(doc.get("tools"))):
        tools.update(src)
    for t in as_seq(doc.get("targets")):  # per-target provenance, when a build doc carries it
        tools.update(as_mapping(as_mapping(as_mapping(t).get("provenance")).get("tools")))
    return tools


def _provenance(doc: Mapping[str, Any]) -> str:
    steps = [as_mapping(s) for s in as_seq(doc.get("steps"))]
    rows = [(f"<code>{esc(s.get('step'))}</code>", details(s.get("details")), bullets(as_seq(s.get("notes"))))
            for s in steps]
    exporters = [str(as_mapping(s.get("details")).get("exporter")) for s in steps
                 if as_mapping(s.get("details")).get("exporter")]
    prov = as_mapping(doc.get("provenance"))
    if prov.get("exporter"):
        exporters.append(str(prov["exporter"]))
    cache = as_mapping(doc.get("cache"))
    hits, misses = as_seq(cache.get("hits")), as_seq(cache.get("misses"))
    tools = _tools(doc)
    golden = as_mapping(doc.get("golden"))
    parallel = as_mapping(doc.get("parallel"))
    source = as_mapping(prov.get("source"))
    edgepack = prov.get("edgepack") or doc.get("edgepack")
    sha = f' <span class="muted mono">sha256 {esc(str(source.get("sha256"))[:16])}{_ELLIPSIS}</span>'
    parts = [kv([
        ("exporter", ", ".join(f"<code>{esc(x)}</code>" for x in dict.fromkeys(exporters))),
        ("edgepack", esc(edgepack) if edgepack else ""),
        ("source", esc(source.get("description")) + (sha if source.get("sha256") else "") if source else ""),
        ("golden data", (f"{esc(golden.get('samples'))} samples; " if golden.get("samples") is not None else "")
         + esc(golden.get("source") or "")),
        ("tool versions", ", ".join(f"{esc(k)} <code>{esc(v)}</code>" for k, v in sorted(tools.items()))
         if tools else '<span class="muted">not recorded in this document</span>'),
        ("cache", (f"{len(hits)} hit(s), {len(misses)} miss(es)" + (f" in <code>{esc(cache.get('dir'))}</code>"
                                                                    if cache.get("dir") else ""))
         if cache.get("enabled") else ('<span class="muted">disabled</span>' if cache else "")),
        ("parallel", details(parallel) if parallel else ""),
    ])]
    if rows:
        parts.append("<h4>steps</h4>" + table(("step", "details", "notes"), rows))
    if hits or misses:
        parts.append("<h4>cache</h4>" + table(
            ("result", "entries"),
            [(s, bullets(v)) for s, v in (("hit", hits), ("miss", misses)) if v]))
    return '<section id="provenance"><h2>provenance</h2><div class="card">' + "".join(parts) + "</div></section>"


def render_build_report(doc: Mapping[str, Any]) -> str:
    """The build report as one self-contained HTML page (see the module doc)."""
    doc = as_mapping(doc)
    name = doc.get("name") or "build"
    targets = [as_mapping(t) for t in as_seq(doc.get("targets"))]
    ok = doc.get("ok")
    if ok is None:
        ok = bool(targets) and all(t.get("status") == "ok" for t in targets)
    ref_acc = doc.get("reference_accuracy")
    if ref_acc is None:
        ref_acc = as_mapping(doc.get("evaluation")).get("reference_accuracy")
    overall = '<span class="badge b-ok">OK</span>' if ok else '<span class="badge b-bad">FAILED</span>'
    head = [f"<h1>edgepack build: <code>{esc(name)}</code> {overall}</h1>",
            f'<p class="sub">manifest <code>{esc(doc.get("manifest"))}</code></p>']
    golden = as_mapping(doc.get("golden"))
    overview = kv([
        ("targets", ", ".join(f'<a href="#target-{esc(t.get("target"))}"><code>{esc(t.get("target"))}</code></a> '
                              f"{badge(t.get('status') or '-')}" for t in targets) or "-"),
        ("reference accuracy", fmt_num(ref_acc, ".4f") if ref_acc is not None
         else '<span class="muted">no evaluation data</span>'),
        ("golden data", (f"{esc(golden.get('samples'))} samples; " if golden.get("samples") is not None else "")
         + esc(golden.get("source") or "") if golden else ""),
    ])
    head.append(f'<div class="card">{overview}</div>')
    warnings = as_seq(doc.get("warnings"))
    if warnings:
        head.append('<section id="warnings"><h2>warnings</h2><div class="warnings">'
                    + bullets(warnings) + "</div></section>")
    body = "".join(head) + "".join(_target_section(t, ref_acc) for t in targets) + _provenance(doc)
    return page(f"edgepack build report: {name}", body)
