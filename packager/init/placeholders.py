"""The placeholder check: a build or validate of a manifest ``edgepack init`` wrote but nobody filled in.

The starter manifest leaves a recognisable placeholder where real calibration data must go
(``REPLACE-ME/calibration.npz``). ``check_placeholders`` (called by ``edgepack build`` and
``edgepack validate``) turns one still there into a DataError that says what to put in its place,
instead of a plain "file not found".
"""
from __future__ import annotations

from pathlib import Path

from ..config.manifest import Manifest
from ..errors import DataError
from .render import PLACEHOLDER_DIR, data_format


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
