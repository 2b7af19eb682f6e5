"""The build's own report beside the bundles: ``<name>.build.json`` and ``<name>.report.html``;
and beside each bundle its BOM with the host latency measured (``<bundle>.measured.cdx.json``)."""
from __future__ import annotations

import json
import os
import platform
from functools import partial
from pathlib import Path
from typing import IO

from runtime.attestations import BOM_FILE
from runtime.errors import FileIOError
from runtime.fileio import atomic_write

from ..bundle.attest import MEASURED_SUFFIX, measured_bom
from ..errors import OutputError, disk_error
from ..results import BuildResult


def write_reports(result: BuildResult, out_dir: Path) -> None:
    """``<name>.build.json`` and the self-contained ``<name>.report.html`` beside the bundles
    (each written whole, then renamed into place)."""
    from ..report.html import render_build_report
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"{result.name}.report.html"
    result.report = str(html)
    files = measured_boms(result)
    doc = result.to_dict()
    files += [(out_dir / f"{result.name}.build.json", (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()),
              (html, render_build_report(doc).encode("utf-8"))]
    for path, data in files:
        try:
            atomic_write(path, partial(_write_all, data=data))
        except FileIOError as exc:  # a full or failing disk: the bundles are in place, say so
            cause = exc.__cause__
            if not isinstance(cause, OSError):
                raise
            raise disk_error(cause, f"writing the build report {path.name} (the bundles were written)",
                             out_dir, needed=len(data), cls=OutputError, where="--out",
                             option="--out") from cause


def build_host() -> str:
    """The build host as a model card's slice names it: CPU model, cores, architecture."""
    from runtime.device.facts import read_cpuinfo
    cpu = read_cpuinfo()
    return f"build host: {cpu.model or platform.processor() or 'CPU'}, {cpu.cores or os.cpu_count()} cores, " \
           f"{platform.machine()}"


def measured_boms(result: BuildResult) -> list[tuple[Path, bytes]]:
    """Each written bundle's BOM with its candidates' host latency (what the bundle leaves out to
    stay reproducible), to be written as ``<bundle>.measured.cdx.json``."""
    out, host = [], build_host()
    for target in result.targets:
        if target.bundle_dir and (Path(target.bundle_dir) / BOM_FILE).is_file():
            folder = Path(target.bundle_dir)
            latency = {c.id: c.host_latency_ms for c in target.candidates}  # those in the bundle are used
            path = folder.with_name(folder.name + MEASURED_SUFFIX)
            target.measured_bom = str(path)
            out.append((path, measured_bom(folder, latency, host)))
    return out


def _write_all(fh: IO[bytes], *, data: bytes) -> None:
    fh.write(data)
