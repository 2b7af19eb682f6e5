"""torch -> ONNX with torch.onnx.export: the torch.export-based exporter first, TorchScript's as fallback."""
from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..config.manifest import Manifest
from ..errors import ConversionError
from ..quiet import quiet

DYNAMO = "torch.onnx.export(dynamo=True)"
TORCHSCRIPT = "torch.onnx.export(dynamo=False)"


@dataclass
class ExportResult:
    """The exported model and which exporter produced it (a fallback is recorded, never hidden)."""

    model: onnx.ModelProto
    exporter: str
    notes: list[str] = field(default_factory=list)


def _example_args(manifest: Manifest, feeds: dict[str, np.ndarray]) -> tuple[Any, ...]:
    import torch
    args = []
    for spec in manifest.inputs:
        arr = feeds[spec.name]
        # torch.export specialises a dim whose example size is 0 or 1; give symbolic dims >= 2.
        if spec.shape and isinstance(spec.shape[0], str) and arr.shape[0] < 2:
            arr = np.concatenate([arr, arr])
        args.append(torch.from_numpy(np.ascontiguousarray(arr)))
    return tuple(args)


def _symbolic_axes(manifest: Manifest) -> list[dict[int, str]]:
    return [{axis: d for axis, d in enumerate(spec.shape or ()) if isinstance(d, str)}
            for spec in manifest.inputs]


def _export_dynamo(module: Any, args: tuple[Any, ...], manifest: Manifest, path: Path) -> None:
    import torch
    dims: dict[str, Any] = {}
    dynamic_shapes = tuple(
        {axis: dims.setdefault(sym, torch.export.Dim(sym)) for axis, sym in axes.items()} or None
        for axes in _symbolic_axes(manifest))
    torch.onnx.export(module, args, str(path), dynamo=True, opset_version=max(manifest.opset, 18),
                      input_names=[s.name for s in manifest.inputs],
                      output_names=[o.name for o in manifest.outputs],
                      dynamic_shapes=dynamic_shapes, external_data=False, verbose=False)


def _export_torchscript(module: Any, args: tuple[Any, ...], manifest: Manifest, path: Path) -> None:
    import torch
    dynamic_axes = {spec.name: axes
                    for spec, axes in zip(manifest.inputs, _symbolic_axes(manifest), strict=True) if axes}
    torch.onnx.export(module, args, str(path), dynamo=False, opset_version=manifest.opset,
                      input_names=[s.name for s in manifest.inputs],
                      output_names=[o.name for o in manifest.outputs],
                      dynamic_axes=dynamic_axes or None, do_constant_folding=True)


def export_torch(module: Any, manifest: Manifest, feeds: dict[str, np.ndarray]) -> ExportResult:
    """Export ``module`` to ONNX with the manifest's names, dims and opset."""
    from ..sources.torch_source import ordered_outputs
    args = _example_args(manifest, feeds)
    module = ordered_outputs(module, [o.name for o in manifest.outputs], args)
    order = {"auto": [DYNAMO, TORCHSCRIPT], "dynamo": [DYNAMO], "torchscript": [TORCHSCRIPT]}[manifest.exporter]
    runners = {DYNAMO: _export_dynamo, TORCHSCRIPT: _export_torchscript}
    torch_log = logging.getLogger("torch.onnx")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)  # the exporter logs skipped torchvision ops etc. at WARNING
    try:
        return _first_working(module, args, manifest, order, runners)
    finally:
        torch_log.setLevel(level)


def _first_working(module: Any, args: tuple[Any, ...], manifest: Manifest, order: list[str],
                   runners: dict[str, Any]) -> ExportResult:
    errors: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgepack-export-") as tmp:
        for exporter in order:
            path = Path(tmp) / "model.onnx"
            try:
                with quiet():  # exporters print graphs and progress on stdout/stderr
                    runners[exporter](module, args, manifest, path)
                model = onnx.load(str(path))
            except Exception as exc:
                if _caused_by_interrupt(exc):  # the exporter wraps Ctrl-C: it must stop the build
                    raise KeyboardInterrupt from exc
                lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
                # the first line that names an operator says the most ("aten::histc ..."), else the first
                named = next((ln for ln in lines if "::" in ln or "operator" in ln.lower()), lines[0] if lines else "")
                errors.append(f"{exporter}: {type(exc).__name__}: {named[:300]}")
                continue
            if errors:
                notes.append(f"fell back to {exporter} because " + "; ".join(errors))
            return ExportResult(model=model, exporter=exporter, notes=notes)
    raise ConversionError("torch -> ONNX export failed with every exporter: " + " | ".join(errors),
                          where=f"{manifest.file}: source",
                          hint="run torch.onnx.export on the model by hand to see the full error; "
                               "export.exporter: torchscript in the manifest forces the older exporter")


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt sits anywhere in an exception's cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
