"""torch -> ONNX with torch.onnx.export: the torch.export-based exporter first, TorchScript's as fallback."""
from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..config.manifest import Manifest
from ..errors import ConversionError
from ..quiet import quiet
from .attention import EAGER_SUFFIX, eager_attention

DYNAMO = "torch.onnx.export(dynamo=True)"
TORCHSCRIPT = "torch.onnx.export(dynamo=False)"
SCRIPTED = "torch.onnx.export(torch.jit.script(model), dynamo=False)"


@dataclass
class ExportResult:
    """The exported model and which exporter produced it (a fallback is recorded, never hidden)."""

    model: onnx.ModelProto
    exporter: str
    notes: list[str] = field(default_factory=list)  # fallbacks and traces: the build's warnings
    choice: list[str] = field(default_factory=list)  # how the exporters compared (exporter: auto)


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


def _export_scripted(module: Any, args: tuple[Any, ...], manifest: Manifest, path: Path) -> None:
    """The TorchScript exporter on ``torch.jit.script(module)``: Python branches on tensor values
    become ONNX If nodes instead of the one branch a trace saw."""
    import torch
    _export_torchscript(torch.jit.script(module), args, manifest, path)


Judge = Callable[[list[tuple[str, onnx.ModelProto]]], tuple[int, list[str]]]
"""Given every working export, the index of the one to keep and why (``exporter_choice.choose``)."""


def export_torch(module: Any, manifest: Manifest, feeds: dict[str, np.ndarray],
                 judge: Judge | None = None) -> ExportResult:
    """Export ``module`` to ONNX with the manifest's names, dims and opset. With ``judge`` and
    ``exporter: auto``, every exporter runs and the judge keeps one; else the first that works."""
    from ..sources.torch_source import ordered_outputs
    args = _example_args(manifest, feeds)
    eager = eager_attention(module)
    module = ordered_outputs(module, [o.name for o in manifest.outputs], args)
    order = {"auto": [DYNAMO, TORCHSCRIPT], "dynamo": [DYNAMO], "torchscript": [TORCHSCRIPT]}[manifest.exporter]
    runners = {DYNAMO: _export_dynamo, TORCHSCRIPT: _export_torchscript, SCRIPTED: _export_scripted}
    torch_log = logging.getLogger("torch.onnx")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)  # the exporter logs skipped torchvision ops etc. at WARNING
    try:
        return _first_working(module, args, manifest, order, runners,
                              judge if manifest.exporter == "auto" else None, eager)
    finally:
        torch_log.setLevel(level)


def _first_working(module: Any, args: tuple[Any, ...], manifest: Manifest, order: list[str],
                   runners: dict[str, Any], judge: Judge | None = None,
                   eager: Callable[[], AbstractContextManager[None]] | None = None) -> ExportResult:
    """The first exporter's result that works; with ``judge``, every working one (and, for a
    transformers model with SDPA attention, the TorchScript exporter with eager attention), judged."""
    if judge is None or len(order) < 2:
        return _one_working(module, args, manifest, order, runners)
    results: list[ExportResult] = []
    failed: list[str] = []
    for exporter in order:
        try:
            results.append(_one_working(module, args, manifest, [exporter], runners))
        except ConversionError as exc:
            failed.append(exc.message.split(": ", 1)[-1])
    if eager is not None and results:
        try:
            with eager():
                plain = _one_working(module, args, manifest, [TORCHSCRIPT], runners)
            # judged right after the first: where it and the SDPA TorchScript export tie, the one
            # Optimum exports (onnxruntime fuses its attention) stays, build after build
            results.insert(1, ExportResult(plain.model, plain.exporter + EAGER_SUFFIX, plain.notes))
        except ConversionError:
            pass  # the SDPA exports stand; the eager one was only a candidate for speed
    if len(results) < 2:
        if not results:
            raise ConversionError("torch -> ONNX export failed with every exporter: " + " | ".join(failed),
                                  where=f"{manifest.file}: source", hint=_EXPORT_HINT)
        first = results[0]
        return ExportResult(first.model, first.exporter, [f"fell back to {first.exporter} because "
                                                          + "; ".join(failed), *first.notes] if failed else first.notes)
    keep, why = judge([(r.exporter, r.model) for r in results])
    chosen = results[keep]
    others = [f"{r.exporter} (not kept): {n}" for r in results if r is not chosen for n in r.notes]
    return ExportResult(chosen.model, chosen.exporter, chosen.notes, [*why, *others])


_EXPORT_HINT = ("run torch.onnx.export on the model by hand to see the full error; "
                "export.exporter: torchscript in the manifest forces the older exporter")


def _one_working(module: Any, args: tuple[Any, ...], manifest: Manifest, order: list[str],
                 runners: dict[str, Any]) -> ExportResult:
    errors: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgepack-export-") as tmp:
        for exporter in order:
            path = Path(tmp) / "model.onnx"
            try:
                model, branched = _run_exporter(runners[exporter], module, args, manifest, path)
            except Exception as exc:
                if _caused_by_interrupt(exc):  # the exporter wraps Ctrl-C: it must stop the build
                    raise KeyboardInterrupt from exc
                errors.append(f"{exporter}: {type(exc).__name__}: {_telling_line(exc)}")
                continue
            if errors:
                notes.append(f"fell back to {exporter} because " + "; ".join(errors))
            if branched and exporter == TORCHSCRIPT:
                notes.append(f"the {exporter} trace branched on a tensor's value at {branched}: that graph keeps "
                             "only the branch the example inputs took")
                if manifest.exporter == "auto":
                    try:
                        model, _ = _run_exporter(runners[SCRIPTED], module, args, manifest, path)
                    except Exception as exc:
                        notes.append(f"{SCRIPTED} failed ({type(exc).__name__}: {_telling_line(exc)}): kept the "
                                     "trace; golden parity decides. Rewrite the branch with torch.where, or with "
                                     "torch.cond (the dynamo exporter turns it into an ONNX If)")
                    else:
                        notes.append(f"exported with {SCRIPTED} instead: the branch is an ONNX If")
                        return ExportResult(model=model, exporter=SCRIPTED, notes=notes)
                else:
                    notes.append("export.exporter: auto scripts the model (torch.jit.script) so the branch "
                                 "becomes an ONNX If; or rewrite it with torch.where / torch.cond")
            return ExportResult(model=model, exporter=exporter, notes=notes)
    raise ConversionError("torch -> ONNX export failed with every exporter: " + " | ".join(errors),
                          where=f"{manifest.file}: source", hint=_EXPORT_HINT)


def _run_exporter(runner: Any, module: Any, args: tuple[Any, ...], manifest: Manifest,
                  path: Path) -> tuple[onnx.ModelProto, str | None]:
    """Run one exporter quietly; the model, and where a trace branched on a tensor's value."""
    import warnings

    import torch

    from .torch_to_torchscript import trace_warning
    with quiet(), warnings.catch_warnings(record=True) as caught:  # exporters print graphs and progress
        warnings.simplefilter("always")  # recorded here, never printed
        runner(module, args, manifest, path)
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    return onnx.load(str(path)), (trace_warning(tracer[0]) if tracer else None)


def _telling_line(exc: BaseException) -> str:
    """The line of an exporter's error that says the most: one naming an operator ("aten::histc
    ..."), or a data-dependent guard, else the first."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
    named = next((ln for ln in lines if "::" in ln or "operator" in ln.lower() or "data-dependent" in ln), None)
    return (named or (lines[0] if lines else ""))[:300]


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
