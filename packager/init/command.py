"""`edgepack init MODEL`: the command that writes a starter manifest.

``init_manifest`` infers the model's signature (``infer``), renders the commented manifest
(``render``), checks that the text loads as a manifest and writes it; ``format_summary`` is what the
command prints. Refusals that need no model (a bad --name, a manifest file already there) come
before the slow inference.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config.manifest import parse_manifest
from ..config.targets import available_targets, no_targets_error, resolve_target_ref
from ..errors import EdgepackError, SourceError
from .infer import infer_model
from .render import CALIBRATION_PLACEHOLDER, dims_text, rel_posix, render
from .signature import NAME_RE, Inferred

DEFAULT_TARGET = "x86-cpu"


@dataclass
class InitResult:
    """What ``init_manifest`` wrote (``path`` is '-' for stdout) and the rendered text."""

    path: str
    text: str
    name: str
    inferred: Inferred
    enabled: list[str]
    commented: list[str]
    placeholders: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        inf = self.inferred
        source: dict[str, Any] = {"framework": inf.framework}
        if inf.entry:
            source["entry"] = inf.entry
        if inf.path:
            source["path"] = str(inf.path)
        if inf.kwargs:
            source["kwargs"] = inf.kwargs
        out = {"manifest": self.path, "name": self.name, "source": source,
               "inputs": [t.to_dict() for t in inf.inputs], "outputs": [t.to_dict() for t in inf.outputs],
               "batch": inf.batch, "targets": {"enabled": self.enabled, "commented": self.commented},
               "placeholders": self.placeholders, "notes": inf.notes}
        if self.path == "-":
            out["yaml"] = self.text
        return out


def init_manifest(model: str, *, output: str | None = None, force: bool = False, name: str | None = None,
                  example_inputs: Sequence[str] = (), batch_dim: str | None = None, fixed_batch: bool = False,
                  targets: Sequence[str] = (), kwargs: dict[str, Any] | None = None,
                  command: str = "edgepack init", cwd: Path | None = None, dynamic: Sequence[str] = (),
                  static_axes: bool = False) -> InitResult:
    """Infer ``model``'s signature and write a starter manifest (``output`` '-' = return it only)."""
    cwd = (cwd or Path.cwd()).resolve()
    if name is not None and not NAME_RE.match(name):
        raise SourceError(f"--name {name!r} must be lower-case letters, digits, '.', '_' or '-'", where="--name",
                          hint="it names the bundle folders, e.g. digits-cnn")
    out_path: Path | None = None
    if output and output != "-":  # refuse before the slow part
        out_path = Path(output) if Path(output).is_absolute() else cwd / output
        _check_writable(out_path, force)
    inferred = infer_model(model, example_inputs=example_inputs, batch_dim=batch_dim, fixed_batch=fixed_batch,
                           kwargs=kwargs, cwd=cwd, dynamic=dynamic, static_axes=static_axes)
    final_name = name or inferred.default_name
    if output is None:
        out_path = inferred.default_dir / f"{final_name}.yaml"
        _check_writable(out_path, force)
    manifest_dir = out_path.parent if out_path is not None else cwd
    known = available_targets()
    if not known and not targets:
        error = no_targets_error()
        raise SourceError(error.message, where=error.where,
                          hint=f"{error.hint}; or pass --target path/to/device.yaml")
    enabled = list(dict.fromkeys(targets)) or [DEFAULT_TARGET if DEFAULT_TARGET in known else min(known)]
    for ref in enabled:
        resolve_target_ref(ref, cwd)  # an unknown name or missing file: TargetError with did-you-mean
    enabled = [r if r in known else rel_posix((cwd / r).resolve(), manifest_dir) for r in enabled]
    text, on, commented = render(inferred, name=final_name, manifest_dir=manifest_dir, enabled=enabled,
                                 command=command, file_name=out_path.name if out_path else "MANIFEST.yaml")
    shown_path = _shown(out_path, cwd) if out_path is not None else "-"
    parse_manifest(yaml.safe_load(text), shown_path, manifest_dir)  # what we write must load
    if out_path is not None:
        _write(out_path, text)
    placeholders = [{"field": "calibration.file", "value": CALIBRATION_PLACEHOLDER,
                     "put": "real input samples: an .npz keyed by input name (samples along axis 0), or "
                            "entry: data.py:function yielding {input name: array} dicts"}]
    return InitResult(path=shown_path, text=text, name=final_name, inferred=inferred, enabled=on,
                      commented=commented, placeholders=placeholders)


def _shown(path: Path, cwd: Path) -> str:
    """``path`` as the user would type it: relative to the current folder when inside it."""
    rel = os.path.relpath(path, cwd)
    return str(path) if rel.startswith("..") else rel


def _check_writable(path: Path, force: bool) -> None:
    if path.is_dir():
        raise EdgepackError("the manifest path is a folder", where=str(path),
                            hint="give a file name, e.g. -o model.yaml")
    if path.exists() and not force:
        raise EdgepackError("the manifest file exists; not overwritten", where=str(path),
                            hint="pass --force to overwrite it, -o another.yaml, or -o - for stdout")


def _write(path: Path, text: str) -> None:
    """Whole or not at all (temp file, then rename), with the mode a plain file of the user's
    gets (mkstemp's 0600 would hide the manifest from the user's group)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise EdgepackError(f"cannot write {path}: {exc.strerror or exc}", where="-o",
                            hint="choose a folder you can write to, or -o - for stdout") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def format_summary(result: InitResult) -> str:
    """What ``edgepack init`` prints: the signature, the targets, and what to do next."""
    inf = result.inferred
    where = "stdout" if result.path == "-" else result.path
    source = inf.entry or (_shown(inf.path, Path.cwd().resolve()) if inf.path else "?")
    lines = [f"manifest for the {inf.framework} model {source} printed on stdout" if result.path == "-"
             else f"wrote {where} for the {inf.framework} model {source}"]
    for kind, tensors in (("input", inf.inputs), ("output", inf.outputs)):
        for t in tensors:
            shape = dims_text(t.shape) if t.shape is not None else "(shape observed at build time)"
            lines.append(f"  {kind:6} {t.name}: {t.dtype} {shape}" + (f" {t.layout}" if t.layout else ""))
    lines.append(f"  batch: axis 0 is the symbolic dim {inf.batch!r}" if inf.batch else
                 "  batch: none (every input's shape is fixed; each sample is fed on its own)")
    lines.append(f"  targets: {', '.join(result.enabled)} enabled"
                 + (f"; {', '.join(result.commented)} listed, commented out" if result.commented else ""))
    for note in inf.notes:
        lines.append(f"  note: {note}")
    manifest = "the manifest" if result.path == "-" else result.path
    lines.append("next:")
    lines.append(f"  1. replace calibration.file ({CALIBRATION_PLACEHOLDER}) in {manifest} with real samples "
                 "(its comments say how)")
    lines.append(f"  2. edgepack build {manifest if result.path != '-' else 'MANIFEST.yaml'} --out dist")
    return "\n".join(lines)
