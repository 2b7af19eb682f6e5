"""Self-contained HTML reports: the packager's build report and the device's verify / bench.

One file each, with inline CSS and inline SVG charts: no scripts, no network, no external CSS,
fonts or images, so a report can be mailed, archived with a CI run, or opened on the device.
Every piece of text from a document is escaped. Only the standard library is used (numpy is not
even needed), and every field may be missing or null: a failed target has no bundle, a failed
candidate no parity, a build without evaluation data no accuracy.

- ``render_build_report(doc)``: ``doc`` is the build JSON (``<out>/<name>.build.json``).
- ``render_device_report(kind, doc)``: ``kind`` is ``"verify"`` or ``"bench"``; ``doc`` is what
  ``python -m runtime verify --json`` / ``bench --json`` print.
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["render_build_report", "render_device_report", "histogram_svg"]

# --------------------------------------------------------------------------- style

_CSS = """
:root { --fg:#1d2330; --muted:#5d6677; --line:#dde1e8; --bg:#f5f6f8; --card:#fff;
  --ok:#1a7f37; --ok-bg:#dafbe1; --bad:#b42318; --bad-bg:#fee4e2; --warn:#9a6700;
  --warn-bg:#fff4d6; --info:#175cd3; --info-bg:#e0ecff; --skip:#5d6677; --skip-bg:#eceef2;
  --bar:#4f7cc9; --zero:#7a8599; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; display:flex; align-items:center; gap:12px; flex-wrap:wrap; }
h2 { font-size: 19px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line);
  display:flex; align-items:center; gap:10px; flex-wrap:wrap; }
h3 { font-size: 16px; margin: 0 0 8px; display:flex; align-items:center; gap:8px; flex-wrap:wrap; }
h4 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
  font-size: 12.5px; }
.sub { color: var(--muted); margin: 0 0 14px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; margin: 12px 0; }
.card.failed { border-left: 4px solid var(--bad); }
.card.dropped, .card.warn { border-left: 4px solid var(--warn); }
.card.ok { border-left: 4px solid var(--ok); }
.card.skip { border-left: 4px solid var(--skip); }
.kv { display:grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 0; }
.kv dt { color: var(--muted); }
.kv dd { margin: 0; overflow-wrap: anywhere; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: var(--card); font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef0f4; font-weight: 600; white-space: nowrap; }
table.compact { width: auto; min-width: 40%; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.msg { overflow-wrap: anywhere; min-width: 14em; }
.badge { display:inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 700;
  letter-spacing: .02em; white-space: nowrap; vertical-align: middle; }
h1 .badge { font-size: 15px; padding: 3px 12px; }
.b-ok { color: var(--ok); background: var(--ok-bg); }
.b-bad { color: var(--bad); background: var(--bad-bg); }
.b-warn { color: var(--warn); background: var(--warn-bg); }
.b-info { color: var(--info); background: var(--info-bg); }
.b-skip { color: var(--skip); background: var(--skip-bg); }
ul.plain { margin: 4px 0; padding-left: 20px; }
ul.plain li { margin: 2px 0; overflow-wrap: anywhere; }
.warnings { background: var(--warn-bg); border: 1px solid #f0d48a; border-radius: 8px; padding: 8px 14px; }
.warnings li { color: #6b4b00; }
.failures { color: var(--bad); }
.muted { color: var(--muted); }
h1 code, h2 code, h3 code { font-size: .92em; }
.cand-body { display:grid; grid-template-columns: minmax(280px, 1fr) minmax(0, 1.9fr); gap: 8px 20px; }
@media (max-width: 900px) { .cand-body { grid-template-columns: minmax(0, 1fr); } }
.cand-body h4 { margin-top: 0; }
.outputs { display:grid; grid-template-columns: minmax(0, 1fr); gap: 12px; }
.output { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.obody { display:flex; flex-wrap:wrap; gap: 6px 20px; align-items:flex-start; }
.obody > .ostats { flex: 1 1 360px; min-width: 0; }
.obody > figure { flex: 0 0 auto; max-width: 100%; }
.output h5 { margin: 0 0 6px; font-size: 14px; display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
figure { margin: 8px 0 0; }
figcaption { color: var(--muted); font-size: 12px; }
svg.hist, svg.bars { display:block; max-width:100%; height:auto; }
svg text { font: 10px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: #4a5262; }
svg .bar { fill: var(--bar); }
svg .bar.zero { fill: var(--zero); }
svg .axis { stroke: #9aa3b2; stroke-width: 1; }
svg line.tol { stroke: var(--bad); stroke-width: 1.5; stroke-dasharray: 4 3; }
svg text.tol { fill: var(--bad); }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""

_TIMES, _DELTA, _ELLIPSIS = "\u00d7", "\u0394", "\u2026"
_DEGRADED = '<span class="badge b-warn">DEGRADED</span>'

_STATUS = {  # status -> (label, badge class, card class)
    "ok": ("OK", "b-ok", "ok"),
    "passed": ("PASS", "b-ok", "ok"),
    "selected": ("SELECTED", "b-ok", "ok"),
    "loads": ("LOADS", "b-ok", "ok"),
    "partial": ("PARTIAL", "b-warn", "warn"),
    "dropped": ("DROPPED", "b-warn", "dropped"),
    "parity-failed-allowed": ("PARITY FAILED (ALLOWED)", "b-warn", "dropped"),
    "parity-failed": ("PARITY FAILED", "b-bad", "failed"),
    "failed": ("FAILED", "b-bad", "failed"),
    "unsupported": ("UNSUPPORTED", "b-skip", "skip"),
    "skipped": ("SKIPPED", "b-skip", "skip"),
}


# --------------------------------------------------------------------------- small helpers

def _e(value: Any) -> str:
    """Escaped text; None is shown as '-'."""
    return "-" if value is None else html.escape(str(value), quote=True)


def _num(value: Any, spec: str = ".3g", unit: str = "") -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else _e(value)
    if isinstance(value, float) and not math.isfinite(value):
        return _e(value)
    return _e(format(value, spec) + unit)


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"


def _badge(status: Any, label: str | None = None) -> str:
    text, cls, _ = _STATUS.get(str(status), (str(status).upper(), "b-skip", "skip"))
    return f'<span class="badge {cls}">{_e(label or text)}</span>'


def _card_class(status: Any) -> str:
    return _STATUS.get(str(status), ("", "", "skip"))[2]


def _verdict(passed: Any) -> str:
    if passed is None:
        return '<span class="badge b-skip">NOT CHECKED</span>'
    return _badge("passed") if passed else _badge("failed", "FAIL")


def _list(items: Iterable[Any], cls: str = "plain") -> str:
    items = [i for i in items if i not in (None, "")]
    if not items:
        return ""
    return f'<ul class="{cls}">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _kv(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are already-escaped HTML."""
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, ""))
    return f'<dl class="kv">{rows}</dl>' if rows else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], num: Sequence[int] = (),
           cls: str = "") -> str:
    """A table; cells are already-escaped HTML; ``num`` lists right-aligned columns."""
    if not rows:
        return ""
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in num else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(
        f'<td class="num">{c}</td>' if i in num else (f'<td class="msg">{c}</td>' if i == len(r) - 1
                                                        and "msg" in cls else f"<td>{c}</td>")
        for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f'<div class="tablewrap"><table class="{_e(cls)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _details(value: Any) -> str:
    """A step's details dict as 'key=value' pairs."""
    if isinstance(value, Mapping):
        return ", ".join(f"{_e(k)}=<code>{_e(v)}</code>" for k, v in value.items())
    return _e(value) if value not in (None, "") else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _page(title: str, body: str) -> str:
    from . import __version__

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>{body}"
            f"<footer>generated by edgepack runtime {_e(__version__)}; self-contained "
            "(no scripts, no network)</footer></main></body></html>\n")


# --------------------------------------------------------------------------- charts

def _tick(value: float) -> str:
    e = math.log10(value)
    if abs(e - round(e)) < 1e-6:
        e = int(round(e))
        return format(10.0 ** e, "g") if -2 <= e <= 3 else f"1e{e}"
    return format(value, ".2g")


def histogram_svg(hist: Mapping[str, Any] | None, *, atol: float | None = None,
                  width: int = 440, height: int = 150) -> str:
    """An inline SVG bar chart of one output's ``error_histogram`` (see runtime.compare).

    One grey bar for exact matches (0), then one bar per log10 bin; each bar has a tooltip
    (<title>) with its range and count. ``atol``, when inside the range, is a dashed red line.
    Every bar is a ``rect`` with class ``bar`` (the zeros bar also has class ``zero``).
    """
    if not isinstance(hist, Mapping):
        return '<p class="muted">no error histogram recorded</p>'
    counts = [int(c) for c in _seq(hist.get("counts"))]
    edges = [float(x) for x in _seq(hist.get("edges"))]
    if len(edges) != len(counts) + 1:
        counts, edges = [], []
    zeros = int(hist.get("zeros") or 0)
    total = int(hist.get("total") or (zeros + sum(counts)))
    left, right, top, bottom = 40, 16, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    zero_w = 22 if counts else min(60, plot_w)
    gap = 10 if counts else 0
    bin_w = (plot_w - zero_w - gap) / len(counts) if counts else 0.0
    peak = max([zeros, *counts, 1])
    base = top + plot_h
    parts = [f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="error histogram">']
    parts.append(f'<line class="axis" x1="{left}" y1="{base}" x2="{width - right}" y2="{base}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{base}"/>')
    parts.append(f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>')
    parts.append(f'<text x="{left - 4}" y="{base}" text-anchor="end">0</text>')

    def bar(x: float, w: float, count: int, cls: str, tip: str) -> str:
        h = 0.0 if count == 0 else max(1.5, plot_h * count / peak)
        return (f'<rect class="{cls}" x="{x:.2f}" y="{base - h:.2f}" width="{max(w, 1.0):.2f}" '
                f'height="{h:.2f}"><title>{_e(tip)}</title></rect>')

    pct = (lambda n: f" ({100.0 * n / total:.1f}%)") if total else (lambda n: "")
    parts.append(bar(left + 1, zero_w - 2, zeros, "bar zero", f"exactly 0: {zeros}{pct(zeros)}"))
    parts.append(f'<text x="{left + zero_w / 2:.2f}" y="{base + 12}" text-anchor="middle">0</text>')
    x0 = left + zero_w + gap
    for i, count in enumerate(counts):
        closing = "]" if i == len(counts) - 1 else ")"
        parts.append(bar(x0 + i * bin_w + 0.5, bin_w - 1, count, "bar",
                         f"[{edges[i]:.3g}, {edges[i + 1]:.3g}{closing}: {count}{pct(count)}"))
    if counts:
        lo_log, hi_log = math.log10(edges[0]), math.log10(edges[-1])
        span_w = bin_w * len(counts)

        def xpos(log_value: float) -> float:
            return x0 + span_w * (log_value - lo_log) / (hi_log - lo_log)

        decades = list(range(math.ceil(lo_log - 1e-6), math.floor(hi_log + 1e-6) + 1))
        step = max(1, math.ceil(len(decades) / 7))
        shown = decades[::-1][::step][::-1]  # keep the top decade; thin out from below
        for d in shown:
            x = xpos(d)
            parts.append(f'<line class="axis" x1="{x:.2f}" y1="{base}" x2="{x:.2f}" y2="{base + 4}"/>')
            parts.append(f'<text x="{x:.2f}" y="{base + 14}" text-anchor="middle">'
                         f"{_e(_tick(10.0 ** d))}</text>")
        if atol is not None and atol > 0:
            a = math.log10(atol)
            if lo_log <= a <= hi_log:
                x = xpos(a)
                parts.append(f'<line class="tol" x1="{x:.2f}" y1="{top - 6}" x2="{x:.2f}" y2="{base}">'
                             f"<title>atol {atol:g}</title></line>")
                parts.append(f'<text class="tol" x="{x + 3:.2f}" y="{top + 2}">atol</text>')
            elif a < lo_log:
                parts.append(f'<text class="tol" x="{x0:.2f}" y="{top - 3}">'
                             f"\u25c0 atol {atol:g} is below every nonzero error</text>")
            else:
                parts.append(f'<text class="tol" x="{width - right:.2f}" y="{top - 3}" '
                             f'text-anchor="end">atol {atol:g} \u25b6</text>')
    caption = "|candidate \u2212 reference| per element, log scale" if counts else \
        ("all errors are exactly 0" if total else "no finite elements")
    parts.append(f'<text x="{left + plot_w / 2:.2f}" y="{height - 4}" text-anchor="middle">'
                 f"{_e(caption)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _hbars(rows: Sequence[tuple[str, float]], unit: str, width: int = 560) -> str:
    """A horizontal bar chart (label, value); used for latency percentiles."""
    rows = [(label, float(v)) for label, v in rows if isinstance(v, (int, float)) and math.isfinite(v)]
    if not rows:
        return ""
    peak = max(v for _, v in rows) or 1.0
    left, bar_h, gap = 70, 18, 6
    chart_w = width - left - 90
    height = len(rows) * (bar_h + gap) + gap
    parts = [f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="latency">']
    for i, (label, value) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(1.0, chart_w * value / peak)
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{_e(label)}</text>')
        parts.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.2f}" height="{bar_h}">'
                     f"<title>{_e(label)}: {value:.4g} {_e(unit)}</title></rect>")
        parts.append(f'<text x="{left + w + 5:.2f}" y="{y + 13}">{value:.3f} {_e(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- parity blocks

def _worst(outputs: Sequence[Mapping[str, Any]]) -> tuple[Any, Any, Any]:
    def pick(key: str, fn: Any) -> Any:
        vals = [o.get(key) for o in outputs
                if isinstance(o.get(key), (int, float)) and not isinstance(o.get(key), bool)]
        return fn(vals) if vals else None

    return pick("max_abs", max), pick("cosine", min), pick("top1", min)


def _outputs_block(outputs: Sequence[Any], tolerance: Mapping[str, Any] | None = None) -> str:
    """Per output: statistics, verdict, failures, notes, and the error histogram."""
    outputs = [o for o in outputs if isinstance(o, Mapping)]
    if not outputs:
        return '<p class="muted">no parity results recorded</p>'
    cards = []
    for o in outputs:
        tol = _mapping(_mapping(tolerance).get(o.get("name")))
        shape = o.get("shape")
        stats = _table(
            ("max_abs", "mean_abs", "max_rel", "cosine", "top1", "mismatch", "nonfinite"),
            [(_num(o.get("max_abs")), _num(o.get("mean_abs")), _num(o.get("max_rel")),
              _num(o.get("cosine"), ".6f"), _num(o.get("top1"), ".3f"),
              _num(o.get("mismatch"), ".3%"), _num(o.get("nonfinite"), "d"))],
            num=range(7), cls="stats compact")
        failures = _list(_seq(o.get("failures")), "plain failures")
        notes = _list(_seq(o.get("notes")))
        hist = histogram_svg(o.get("error_histogram"), atol=tol.get("atol")
                             if isinstance(tol.get("atol"), (int, float)) else None)
        cards.append(
            f'<div class="output" data-output="{_e(o.get("name"))}">'
            f'<h5><code>{_e(o.get("name"))}</code> {_verdict(o.get("passed"))} '
            f'<span class="muted mono">{_e(o.get("dtype") or "")}'
            f'{_e(list(shape)) if isinstance(shape, (list, tuple)) else ""}</span></h5>'
            f'<div class="obody"><div class="ostats">{stats}{failures}{notes}</div>'
            f"<figure>{hist}</figure></div></div>")
    return '<div class="outputs">' + "".join(cards) + "</div>"


# --------------------------------------------------------------------------- build report

def _accuracy(acc: Any, ref: Any) -> str:
    if not isinstance(acc, (int, float)) or isinstance(acc, bool):
        return "-"
    text = _num(acc, ".4f")
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        text += f' <span class="muted">({_DELTA} {_e(format(acc - ref, "+.4f"))})</span>'
    return text


def _status_cell(c: Mapping[str, Any]) -> str:
    out = _badge(c.get("status") or "-")
    if c.get("cached"):
        out += ' <span class="badge b-info">CACHED</span>'
    return out


def _candidate_card(t_name: str, c: Mapping[str, Any], ref_acc: Any) -> str:
    cid = c.get("id")
    status = c.get("status")
    parity = _mapping(c.get("parity"))
    speed = c.get("speedup_vs_fp32")
    info = _kv([
        ("format / precision", f"{_e(c.get('format'))} / {_e(c.get('precision'))}"),
        ("file", f"<code>{_e(c.get('file'))}</code>" if c.get("file") else ""),
        ("size", _e(_size(c.get("size")))),
        ("host latency", _num(c.get("host_latency_ms"), ".3f", " ms")
         + (f" ({_num(speed, '.2f', _TIMES)} vs fp32)" if speed is not None else "")),
        ("accuracy", _accuracy(c.get("accuracy"), ref_acc)
         + (f' <span class="muted">reference {_num(ref_acc, ".4f")}</span>'
            if isinstance(ref_acc, (int, float)) else "")),
        ("converter", _e(c.get("converter")) if c.get("converter") else ""),
        ("parity checked on", _e(parity.get("checked_on")) if parity.get("checked_on") else ""),
        ("status", _status_cell(c)),
        ("message", f'<span class="{"failures" if _card_class(status) == "failed" else ""}">'
                    f"{_e(c.get('message'))}</span>" if c.get("message") else ""),
        ("notes", _list(_seq(c.get("notes")))),
    ])
    parity_html = (_outputs_block(_seq(parity.get("outputs")), c.get("tolerance"))
                   if parity else '<p class="muted">no parity: the candidate was not built</p>')
    verdict = _verdict(parity.get("passed")) if parity else ""
    return (f'<section class="card candidate {_card_class(status)}" id="{_e(t_name)}--{_e(cid)}" '
            f'data-candidate="{_e(cid)}" data-status="{_e(status)}">'
            f'<h3><code>{_e(cid)}</code> {_status_cell(c)}</h3><div class="cand-body"><div>{info}</div>'
            f"<div><h4>parity {verdict}</h4>{parity_html}</div></div></section>")


def _target_section(t: Mapping[str, Any], ref_acc: Any) -> str:
    name = t.get("target")
    cands = [c for c in _seq(t.get("candidates")) if isinstance(c, Mapping)]
    rows = []
    for c in cands:
        parity = _mapping(c.get("parity"))
        max_abs, cos, top = _worst([o for o in _seq(parity.get("outputs")) if isinstance(o, Mapping)])
        speed = c.get("speedup_vs_fp32")
        rows.append((f'<a href="#{_e(name)}--{_e(c.get("id"))}"><code>{_e(c.get("id"))}</code></a>',
                     _e(c.get("format")), _e(c.get("precision")), _e(_size(c.get("size"))),
                     _num(max_abs), _num(cos, ".6f"), _num(top, ".3f"), _accuracy(c.get("accuracy"), ref_acc),
                     _num(c.get("host_latency_ms"), ".3f"), _num(speed, ".2f", _TIMES),
                     _status_cell(c)))
    summary = _table(("candidate", "format", "precision", "size", "max_abs", "cosine", "top1",
                      "accuracy", "host ms", "vs fp32", "status"), rows, num=(3, 4, 5, 6, 7, 8, 9),
                     cls="summary")
    where = _kv([("bundle", f"<code>{_e(t.get('bundle_dir'))}</code>" if t.get("bundle_dir") else
                  '<span class="muted">none written</span>'),
                 ("archive", f"<code>{_e(t.get('archive'))}</code>" if t.get("archive") else ""),
                 ("message", f'<span class="{"failures" if t.get("status") == "failed" else ""}">'
                             f"{_e(t.get('message'))}</span>" if t.get("message") else "")])
    # what fell back, what was not built, and why
    fell = []
    for f in _seq(t.get("fallbacks")):
        f = _mapping(f)
        fell.append((f"<code>{_e(f.get('candidate'))}</code>",
                     "-" if f.get("next") in (None, "", "-") else f"<code>{_e(f.get('next'))}</code>",
                     _e(f.get("reason"))))
    not_built = [(f"<code>{_e(c.get('id'))}</code>", _badge(c.get("status")), _e(c.get("message")))
                 for c in cands if c.get("status") in ("failed", "unsupported", "parity-failed")]
    noted = [(f"<code>{_e(c.get('id'))}</code>", _list(_seq(c.get("notes"))))
             for c in cands if _seq(c.get("notes"))]
    why = ""
    if fell:
        why += "<h4>fallbacks</h4>" + _table(("candidate", "fell back to", "reason"), fell, cls="msg")
    if not_built:
        why += "<h4>not in the bundle</h4>" + _table(("candidate", "status", "reason"), not_built, cls="msg")
    if noted:
        why += "<h4>candidate notes</h4>" + _table(("candidate", "notes"), noted, cls="msg")
    cards = "".join(_candidate_card(str(name), c, ref_acc) for c in cands)
    return (f'<section class="target" id="target-{_e(name)}" data-target="{_e(name)}">'
            f"<h2>target <code>{_e(name)}</code> {_badge(t.get('status') or '-')}</h2>"
            f'<div class="card">{where}{summary or "<p class=muted>no candidates</p>"}{why}</div>'
            f"{cards}</section>")


def _tools(doc: Mapping[str, Any]) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for src in (_mapping(_mapping(doc.get("provenance")).get("tools")), _mapping(doc.get("tools"))):
        tools.update(src)
    for t in _seq(doc.get("targets")):  # per-target provenance, when a build doc carries it
        tools.update(_mapping(_mapping(_mapping(t).get("provenance")).get("tools")))
    return tools


def _provenance(doc: Mapping[str, Any]) -> str:
    steps = [_mapping(s) for s in _seq(doc.get("steps"))]
    rows = [(f"<code>{_e(s.get('step'))}</code>", _details(s.get("details")), _list(_seq(s.get("notes"))))
            for s in steps]
    exporters = [str(_mapping(s.get("details")).get("exporter")) for s in steps
                 if _mapping(s.get("details")).get("exporter")]
    prov = _mapping(doc.get("provenance"))
    if prov.get("exporter"):
        exporters.append(str(prov["exporter"]))
    cache = _mapping(doc.get("cache"))
    hits, misses = _seq(cache.get("hits")), _seq(cache.get("misses"))
    tools = _tools(doc)
    golden = _mapping(doc.get("golden"))
    parallel = _mapping(doc.get("parallel"))
    source = _mapping(prov.get("source"))
    edgepack = prov.get("edgepack") or doc.get("edgepack")
    sha = f' <span class="muted mono">sha256 {_e(str(source.get("sha256"))[:16])}{_ELLIPSIS}</span>'
    parts = [_kv([
        ("exporter", ", ".join(f"<code>{_e(x)}</code>" for x in dict.fromkeys(exporters))),
        ("edgepack", _e(edgepack) if edgepack else ""),
        ("source", _e(source.get("description")) + (sha if source.get("sha256") else "") if source else ""),
        ("golden data", (f"{_e(golden.get('samples'))} samples; " if golden.get("samples") is not None else "")
         + _e(golden.get("source") or "")),
        ("tool versions", ", ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in sorted(tools.items()))
         if tools else '<span class="muted">not recorded in this document</span>'),
        ("cache", (f"{len(hits)} hit(s), {len(misses)} miss(es)" + (f" in <code>{_e(cache.get('dir'))}</code>"
                                                                    if cache.get("dir") else ""))
         if cache.get("enabled") else ('<span class="muted">disabled</span>' if cache else "")),
        ("parallel", _details(parallel) if parallel else ""),
    ])]
    if rows:
        parts.append("<h4>steps</h4>" + _table(("step", "details", "notes"), rows))
    if hits or misses:
        parts.append("<h4>cache</h4>" + _table(
            ("result", "entries"),
            [(s, _list(v)) for s, v in (("hit", hits), ("miss", misses)) if v]))
    return '<section id="provenance"><h2>provenance</h2><div class="card">' + "".join(parts) + "</div></section>"


def render_build_report(doc: Mapping[str, Any]) -> str:
    """The build report as one self-contained HTML page (see the module doc)."""
    doc = _mapping(doc)
    name = doc.get("name") or "build"
    targets = [_mapping(t) for t in _seq(doc.get("targets"))]
    ok = doc.get("ok")
    if ok is None:
        ok = bool(targets) and all(t.get("status") == "ok" for t in targets)
    ref_acc = doc.get("reference_accuracy")
    if ref_acc is None:
        ref_acc = _mapping(doc.get("evaluation")).get("reference_accuracy")
    overall = '<span class="badge b-ok">OK</span>' if ok else '<span class="badge b-bad">FAILED</span>'
    head = [f"<h1>edgepack build: <code>{_e(name)}</code> {overall}</h1>",
            f'<p class="sub">manifest <code>{_e(doc.get("manifest"))}</code></p>']
    golden = _mapping(doc.get("golden"))
    overview = _kv([
        ("targets", ", ".join(f'<a href="#target-{_e(t.get("target"))}"><code>{_e(t.get("target"))}</code></a> '
                              f"{_badge(t.get('status') or '-')}" for t in targets) or "-"),
        ("reference accuracy", _num(ref_acc, ".4f") if ref_acc is not None
         else '<span class="muted">no evaluation data</span>'),
        ("golden data", (f"{_e(golden.get('samples'))} samples; " if golden.get("samples") is not None else "")
         + _e(golden.get("source") or "") if golden else ""),
    ])
    head.append(f'<div class="card">{overview}</div>')
    warnings = _seq(doc.get("warnings"))
    if warnings:
        head.append('<section id="warnings"><h2>warnings</h2><div class="warnings">'
                    + _list(warnings) + "</div></section>")
    body = "".join(head) + "".join(_target_section(t, ref_acc) for t in targets) + _provenance(doc)
    return _page(f"edgepack build report: {name}", body)


# --------------------------------------------------------------------------- device reports

def _device_kv(dev: Mapping[str, Any]) -> str:
    return _kv([(k, _e(v)) for k, v in dev.items() if v is not None])


def _error_block(doc: Mapping[str, Any]) -> str:
    return ('<div class="card failed"><h3>error ' + _badge("failed", "ERROR") + "</h3>"
            + _kv([("error", _e(doc.get("error"))),
                   ("message", f'<span class="failures">{_e(doc.get("message"))}</span>'),
                   ("where", _e(doc.get("where")) if doc.get("where") else ""),
                   ("hint", _e(doc.get("hint")) if doc.get("hint") else "")]) + "</div>")


def _signature_check(doc: Mapping[str, Any]) -> str:
    sig = _mapping(doc.get("signature_check"))
    if not sig:
        return ""
    if not sig.get("checked", True) and len(sig) == 1:
        return '<span class="muted">not checked (no --key)</span>'
    return ", ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in sig.items())


def _verify_body(doc: Mapping[str, Any]) -> str:
    passed = doc.get("passed")
    bundle = doc.get("bundle")
    for_target = " for target <code>" + _e(doc.get("target")) + "</code>" if doc.get("target") else ""
    parts = [f"<h1>edgepack verify{': <code>' + _e(bundle) + '</code>' if bundle else ''} "
             f"{_verdict(passed) if doc.get('ok', True) else _badge('failed', 'ERROR')}</h1>",
             f'<p class="sub">golden parity on this device{for_target}</p>']
    if doc.get("ok") is False:
        return "".join(parts) + _error_block(doc)
    cands = [_mapping(c) for c in _seq(doc.get("candidates"))]
    parts.append('<div class="card">' + _kv([
        ("result", f"{sum(1 for c in cands if c.get('passed'))} of {len(cands)} candidate(s) checked pass"),
        ("golden samples", _e(doc.get("samples")) + (" (batched)" if doc.get("batched") else
                                                     " (one by one)" if doc.get("batched") is False else "")),
        ("signature", _signature_check(doc)),
    ]) + (("<h4>device</h4>" + _device_kv(_mapping(doc.get("device")))) if doc.get("device") else "") + "</div>")
    rows = []
    for c in cands:
        rows.append((f'<a href="#cand-{_e(c.get("candidate"))}"><code>{_e(c.get("candidate"))}</code></a>',
                     _e(", ".join(map(str, _seq(c.get("providers"))))),
                     '<span class="badge b-warn">DEGRADED</span>' if c.get("degraded") else "no",
                     *(_num(v, s) for v, s in zip(_worst([_mapping(o) for o in _seq(c.get("outputs"))]),
                                                  (".3g", ".6f", ".3f"), strict=False)),
                     _verdict(c.get("passed"))))
    parts.append("<h2>candidates checked</h2>" + (_table(
        ("candidate", "providers", "degraded", "max_abs", "cosine", "top1", "parity"), rows, num=(3, 4, 5),
        cls="summary")
        or '<p class="muted">none</p>'))
    for c in cands:
        status = "ok" if c.get("passed") else "failed"
        parts.append(f'<section class="card candidate {status}" id="cand-{_e(c.get("candidate"))}" '
                     f'data-candidate="{_e(c.get("candidate"))}">'
                     f"<h3><code>{_e(c.get('candidate'))}</code> {_verdict(c.get('passed'))}"
                     + (" " + _DEGRADED if c.get("degraded") else "") + "</h3>"
                     + _kv([("providers", _e(", ".join(map(str, _seq(c.get("providers"))))))])
                     + _outputs_block(_seq(c.get("outputs")), c.get("tolerance")) + "</section>")
    decisions = [_mapping(d) for d in _seq(doc.get("decisions"))]
    if decisions and doc.get("mode") == "all":  # each candidate was loaded on its own
        decisions = [dict(d, status="loads" if d.get("status") == "selected" else d.get("status"))
                     for d in decisions]
    if decisions:
        heading = ("which candidates load here (--all)" if doc.get("mode") == "all"
                   else "candidate selection")
        parts.append(f"<h2>{heading}</h2>" + _table(
            ("candidate", "status", "backend", "precision", "providers asked", "in use", "reason"),
            [(f"<code>{_e(d.get('candidate'))}</code>", _badge(d.get("status") or "-"), _e(d.get("backend")),
              _e(d.get("precision")), _e(", ".join(map(str, _seq(d.get("providers_asked"))))),
              _e(", ".join(map(str, _seq(d.get("providers_in_use"))))),
              _e(d.get("reason")) + _list(_seq(d.get("notes")))) for d in decisions], cls="msg"))
    return "".join(parts)


def _bench_body(doc: Mapping[str, Any]) -> str:
    bundle = doc.get("bundle")
    parts = [f"<h1>edgepack bench{': <code>' + _e(bundle) + '</code>' if bundle else ''} "
             f"{_badge('ok') if doc.get('ok', True) else _badge('failed', 'ERROR')}</h1>",
             f'<p class="sub">latency and throughput on this device'
             f'{" for target <code>" + _e(doc.get("target")) + "</code>" if doc.get("target") else ""}</p>']
    if doc.get("ok") is False:
        return "".join(parts) + _error_block(doc)
    parts.append('<div class="card">' + _kv([
        ("candidate", f"<code>{_e(doc.get('candidate'))}</code>"
         + (' <span class="badge b-warn">DEGRADED</span>' if doc.get("degraded") else "")),
        ("providers", _e(", ".join(map(str, _seq(doc.get("providers")))))),
        ("backend version", _e(doc.get("backend_version"))),
        ("runs", f"{_e(doc.get('runs'))} timed after {_e(doc.get('warmup'))} warmup, batch {_e(doc.get('batch'))}"),
        ("throughput", f"<b>{_num(doc.get('inferences_per_s'), '.1f')}</b> inferences/s, "
                       f"{_num(doc.get('samples_per_s'), '.1f')} samples/s"),
        ("signature", _signature_check(doc)),
    ]) + "</div>")
    timings = [("p50", doc.get("p50_ms")), ("p90", doc.get("p90_ms")), ("p99", doc.get("p99_ms")),
               ("mean", doc.get("mean_ms")), ("min", doc.get("min_ms")), ("max", doc.get("max_ms"))]
    once = [("hash check", doc.get("verify_ms")), ("load", doc.get("load_ms")),
            ("first inference", doc.get("first_ms"))]
    parts.append("<h2>latency per inference</h2>" + '<div class="card">'
                 + _table([k for k, _ in timings], [[_num(v, ".3f", " ms") for _, v in timings]],
                          num=range(len(timings)), cls="latency compact")
                 + f"<figure>{_hbars(timings, 'ms')}</figure></div>")
    parts.append("<h2>one-off costs</h2>" + '<div class="card">'
                 + _table([k for k, _ in once], [[_num(v, ".2f", " ms") for _, v in once]], num=range(3),
                          cls="compact")
                 + "</div>")
    if doc.get("device"):
        parts.append('<h2>device</h2><div class="card">' + _device_kv(_mapping(doc.get("device"))) + "</div>")
    return "".join(parts)


def render_device_report(kind: str, doc: Mapping[str, Any]) -> str:
    """A device report: ``kind`` ``"verify"`` or ``"bench"``, ``doc`` that command's --json document."""
    doc = _mapping(doc)
    if kind == "verify":
        body = _verify_body(doc)
    elif kind == "bench":
        body = _bench_body(doc)
    else:
        raise ValueError(f"unknown report kind {kind!r}; use 'verify' or 'bench'")
    name = doc.get("bundle")
    return _page(f"edgepack {kind}" + (f": {name}" if name else ""), body)
