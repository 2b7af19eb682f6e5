"""Parity results as HTML: per output its statistics, verdict, failures and error histogram.
Used by the device's verify report and by the packager's build report."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .charts import histogram_svg
from .html import as_mapping, as_seq, bullets, esc, fmt_num, table, verdict


def worst(outputs: Sequence[Mapping[str, Any]]) -> tuple[Any, Any, Any]:
    def pick(key: str, fn: Any) -> Any:
        vals = [o.get(key) for o in outputs
                if isinstance(o.get(key), (int, float)) and not isinstance(o.get(key), bool)]
        return fn(vals) if vals else None

    return pick("max_abs", max), pick("cosine", min), pick("top1", min)


def outputs_block(outputs: Sequence[Any], tolerance: Mapping[str, Any] | None = None) -> str:
    """Per output: statistics, verdict, failures, notes, and the error histogram."""
    outputs = [o for o in outputs if isinstance(o, Mapping)]
    if not outputs:
        return '<p class="muted">no parity results recorded</p>'
    cards = []
    for o in outputs:
        tol = as_mapping(as_mapping(tolerance).get(o.get("name")))
        shape = o.get("shape")
        stats = table(
            ("max_abs", "mean_abs", "max_rel", "cosine", "top1", "mismatch", "nonfinite"),
            [(fmt_num(o.get("max_abs")), fmt_num(o.get("mean_abs")), fmt_num(o.get("max_rel")),
              fmt_num(o.get("cosine"), ".6f"), fmt_num(o.get("top1"), ".3f"),
              fmt_num(o.get("mismatch"), ".3%"), fmt_num(o.get("nonfinite"), "d"))],
            num=range(7), cls="stats compact")
        failures = bullets(as_seq(o.get("failures")), "plain failures")
        notes = bullets(as_seq(o.get("notes")))
        hist = histogram_svg(o.get("error_histogram"), atol=tol.get("atol")
                             if isinstance(tol.get("atol"), (int, float)) else None)
        cards.append(
            f'<div class="output" data-output="{esc(o.get("name"))}">'
            f'<h5><code>{esc(o.get("name"))}</code> {verdict(o.get("passed"))} '
            f'<span class="muted mono">{esc(o.get("dtype") or "")}'
            f'{esc(list(shape)) if isinstance(shape, (list, tuple)) else ""}</span></h5>'
            f'<div class="obody"><div class="ostats">{stats}{failures}{notes}</div>'
            f"<figure>{hist}</figure></div></div>")
    return '<div class="outputs">' + "".join(cards) + "</div>"
