"""The pieces every edgepack HTML report is made of: the inline stylesheet, escaping, number
formats, badges, tables and the page itself. The device's reports (``report.device``) and the
packager's build report (``packager.report.html``) share them, so both look and escape alike.

Every piece of text from a document goes through ``esc``; values are already-escaped HTML where
a helper says so. Standard library only.
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# --------------------------------------------------------------------------- style

CSS = """
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

DEGRADED = '<span class="badge b-warn">DEGRADED</span>'

STATUS = {  # status -> (label, badge class, card class)
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


def esc(value: Any) -> str:
    """Escaped text; None is shown as '-'."""
    return "-" if value is None else html.escape(str(value), quote=True)


def fmt_num(value: Any, spec: str = ".3g", unit: str = "") -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else esc(value)
    if isinstance(value, float) and not math.isfinite(value):
        return esc(value)
    return esc(format(value, spec) + unit)


def fmt_size(n: Any) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"


def badge(status: Any, label: str | None = None) -> str:
    text, cls, _ = STATUS.get(str(status), (str(status).upper(), "b-skip", "skip"))
    return f'<span class="badge {cls}">{esc(label or text)}</span>'


def card_class(status: Any) -> str:
    return STATUS.get(str(status), ("", "", "skip"))[2]


def verdict(passed: Any) -> str:
    if passed is None:
        return '<span class="badge b-skip">NOT CHECKED</span>'
    return badge("passed") if passed else badge("failed", "FAIL")


def bullets(items: Iterable[Any], cls: str = "plain") -> str:
    items = [i for i in items if i not in (None, "")]
    if not items:
        return ""
    return f'<ul class="{cls}">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def kv(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are already-escaped HTML."""
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, ""))
    return f'<dl class="kv">{rows}</dl>' if rows else ""


def table(header: Sequence[str], rows: Sequence[Sequence[str]], num: Sequence[int] = (),
           cls: str = "") -> str:
    """A table; cells are already-escaped HTML; ``num`` lists right-aligned columns."""
    if not rows:
        return ""
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in num else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(
        f'<td class="num">{c}</td>' if i in num else (f'<td class="msg">{c}</td>' if i == len(r) - 1
                                                        and "msg" in cls else f"<td>{c}</td>")
        for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f'<div class="tablewrap"><table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def details(value: Any) -> str:
    """A step's details dict as 'key=value' pairs."""
    if isinstance(value, Mapping):
        return ", ".join(f"{esc(k)}=<code>{esc(v)}</code>" for k, v in value.items())
    return esc(value) if value not in (None, "") else ""


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_seq(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def page(title: str, body: str) -> str:
    from .. import __version__

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>{body}"
            f"<footer>generated by edgepack runtime {esc(__version__)}; self-contained "
            "(no scripts, no network)</footer></main></body></html>\n")
