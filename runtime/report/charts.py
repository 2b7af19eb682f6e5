"""Inline SVG charts for the reports: the error histogram of one output and horizontal bars
(latency percentiles). No scripts: a tooltip is an SVG ``<title>``."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .html import as_seq, esc


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
    counts = [int(c) for c in as_seq(hist.get("counts"))]
    edges = [float(x) for x in as_seq(hist.get("edges"))]
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
                f'height="{h:.2f}"><title>{esc(tip)}</title></rect>')

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
                         f"{esc(_tick(10.0 ** d))}</text>")
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
                 f"{esc(caption)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def hbars(rows: Sequence[tuple[str, Any]], unit: str, width: int = 560) -> str:
    """A horizontal bar chart (label, value); used for latency percentiles. Rows whose value is
    not a finite number (a field missing from the document) are left out."""
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
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{esc(label)}</text>')
        parts.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.2f}" height="{bar_h}">'
                     f"<title>{esc(label)}: {value:.4g} {esc(unit)}</title></rect>")
        parts.append(f'<text x="{left + w + 5:.2f}" y="{y + 13}">{value:.3f} {esc(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
