"""The build's own report beside the bundles: ``<name>.build.json`` and ``<name>.report.html``."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import IO

from runtime.errors import FileIOError
from runtime.fileio import atomic_write

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
        data = text.encode("utf-8")
        try:
            atomic_write(path, partial(_write_all, data=data))
        except FileIOError as exc:  # a full or failing disk: the bundles are in place, say so
            cause = exc.__cause__
            if not isinstance(cause, OSError):
                raise
            raise disk_error(cause, f"writing the build report {path.name} (the bundles were written)",
                             out_dir, needed=len(data), cls=OutputError, where="--out",
                             option="--out") from cause


def _write_all(fh: IO[bytes], *, data: bytes) -> None:
    fh.write(data)
