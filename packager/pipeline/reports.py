"""The build's own report beside the bundles: ``<name>.build.json`` and ``<name>.report.html``."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..errors import OutputError, disk_error
from ..results import BuildResult


def write_reports(result: BuildResult, out_dir: Path) -> None:
    """``<name>.build.json`` and the self-contained ``<name>.report.html`` beside the bundles
    (each written whole, then renamed into place)."""
    from ..report.html import render_build_report
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"{result.name}.report.html"
    result.report = str(html)
    doc = result.to_dict()
    for path, text in ((out_dir / f"{result.name}.build.json", json.dumps(doc, indent=2, sort_keys=True) + "\n"),
                       (html, render_build_report(doc))):
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:  # a full or failing disk: the bundles are in place, say so
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise disk_error(exc, f"writing the build report {path.name} (the bundles were written)",
                             out_dir, needed=len(text.encode()), cls=OutputError, where="--out",
                             option="--out") from exc
