"""`edgepack init MODEL`: the command that writes a starter manifest, and the placeholder check.

``init_manifest`` infers the model's signature (``infer``), renders the commented manifest
(``render``), checks that it loads and writes it; ``format_summary`` is what the command prints.
The manifest leaves a recognisable placeholder where real calibration data must go:
``REPLACE-ME/calibration.npz``. ``check_placeholders`` turns a build or validate of an unfilled
manifest into an error that says what to put there. The public names of the two helper modules are
re-exported here.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import NAME_PATTERN
from ..errors import DataError, EdgepackError, SourceError
from ..manifest import Manifest, parse_manifest
from ..targets import available_targets, no_targets_error, resolve_target_ref
from .infer import DEFAULT_BATCH, EXAMPLE_INPUT_HELP, Inferred, Tensor, example_feeds, infer_model, model_name
from .render import (
    CALIBRATION_PLACEHOLDER,
    CALIBRATION_SAMPLES,
    GOLDEN_SAMPLES,
    PLACEHOLDER_DIR,
    _dims_text,
    _rel,
    data_format,
    render,
)

__all__ = [
    "CALIBRATION_PLACEHOLDER", "CALIBRATION_SAMPLES", "DEFAULT_BATCH", "DEFAULT_TARGET", "EXAMPLE_INPUT_HELP",
    "GOLDEN_SAMPLES", "PLACEHOLDER_DIR", "Inferred", "InitResult", "Tensor", "check_placeholders",
    "data_format", "example_feeds", "format_summary", "infer_model", "init_manifest", "model_name", "render",
]

DEFAULT_TARGET = "x86-cpu"

_NAME_RE = re.compile(NAME_PATTERN)   # what the manifest accepts as name


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


# -- data placeholders -----------------------------------------------------------------------------

def _placeholder_value(value: Path | str | None, base: Path) -> str | None:
    """The placeholder as written in the manifest, if ``value`` is one that was never filled in."""
    if value is None:
        return None
    if isinstance(value, Path):
        if value.exists() or PLACEHOLDER_DIR not in value.parts:
            return None
        try:
            return value.relative_to(base).as_posix()
        except ValueError:
            return str(value)
    module_ref = value.rpartition(":")[0]
    if PLACEHOLDER_DIR in Path(module_ref).parts and not (base / module_ref).exists():
        return value
    return None


def check_placeholders(manifest: Manifest) -> None:
    """A DataError naming the first placeholder of ``edgepack init`` still in the manifest, and what
    to put there; nothing when every data field points at real data."""
    fields: list[tuple[str, Path | str | None]] = [
        ("calibration.file", manifest.calibration.file), ("calibration.entry", manifest.calibration.entry),
        ("golden.file", manifest.golden.file), ("golden.entry", manifest.golden.entry),
        ("evaluation.entry", manifest.evaluation.entry if manifest.evaluation else None)]
    for key, value in fields:
        shown = _placeholder_value(value, manifest.base_dir)
        if shown is None:
            continue
        section = key.split(".")[0]
        npz, entry, _ = data_format(manifest.inputs, manifest.symbolic_batch())
        if section == "evaluation":
            hint = ("point entry: at a function returning (feeds, labels): feeds a dict "
                    f"{{{', '.join(entry)}}}, labels a 1-D int array of class ids; or remove the "
                    "evaluation section")
        else:
            names = [s.name for s in manifest.inputs]
            arrays = [f"{n}=<{line.partition(': ')[2]} array>" if n.isidentifier() else f"{n!r}: ..."
                      for n, line in zip(names, npz, strict=True)]
            along = "the batch axis, axis 0" if manifest.symbolic_batch() else "a new axis 0"
            hint = (f"replace it with real input samples, one of: file: data.npz written with "
                    f"numpy.savez('data.npz', {', '.join(arrays)}) (one array per input, keyed by its name, "
                    f"N samples along {along}); or entry: data.py:function returning or yielding dicts "
                    f"{{{', '.join(entry)}}}; or random: true to try the build on noise (int8 then does not "
                    f"reflect real inputs). The comments above '{section}:' in the manifest explain each")
        raise DataError(f"still the placeholder {shown!r} that 'edgepack init' wrote: the build needs real "
                        f"{section} samples here", where=f"{manifest.file}: {key}", hint=hint)


# -- the command -------------------------------------------------------------------------------------

def init_manifest(model: str, *, output: str | None = None, force: bool = False, name: str | None = None,
                  example_inputs: Sequence[str] = (), batch_dim: str | None = None, fixed_batch: bool = False,
                  targets: Sequence[str] = (), kwargs: dict[str, Any] | None = None,
                  command: str = "edgepack init", cwd: Path | None = None) -> InitResult:
    """Infer ``model``'s signature and write a starter manifest (``output`` '-' = return it only)."""
    cwd = (cwd or Path.cwd()).resolve()
    if name is not None and not _NAME_RE.match(name):
        raise SourceError(f"--name {name!r} must be lower-case letters, digits, '.', '_' or '-'", where="--name",
                          hint="it names the bundle folders, e.g. digits-cnn")
    out_path: Path | None = None
    if output and output != "-":  # refuse before the slow part
        out_path = Path(output) if Path(output).is_absolute() else cwd / output
        _check_writable(out_path, force)
    inferred = infer_model(model, example_inputs=example_inputs, batch_dim=batch_dim, fixed_batch=fixed_batch,
                           kwargs=kwargs, cwd=cwd)
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
    enabled = [r if r in known else _rel((cwd / r).resolve(), manifest_dir) for r in enabled]
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise EdgepackError(f"cannot write {path}: {exc.strerror or exc}", where="-o",
                            hint="choose a folder you can write to, or -o - for stdout") from None


def format_summary(result: InitResult) -> str:
    """What ``edgepack init`` prints: the signature, the targets, and what to do next."""
    inf = result.inferred
    where = "stdout" if result.path == "-" else result.path
    source = inf.entry or (_shown(inf.path, Path.cwd().resolve()) if inf.path else "?")
    lines = [f"manifest for the {inf.framework} model {source} printed on stdout" if result.path == "-"
             else f"wrote {where} for the {inf.framework} model {source}"]
    for kind, tensors in (("input", inf.inputs), ("output", inf.outputs)):
        for t in tensors:
            shape = _dims_text(t.shape) if t.shape is not None else "(shape observed at build time)"
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
