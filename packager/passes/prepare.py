"""Make an ONNX model ready for the later passes: clean inputs, nodes in order, opset, shapes, checked.

Whatever onnxruntime runs is prepared, never refused: nodes out of order are sorted, onnxruntime-
only ops are kept (and named, since only onnxruntime candidates can take them), and a model the
onnx checker refuses is accepted when onnxruntime loads it. Every decision is a note.
"""
from __future__ import annotations

import onnx

from ..errors import ConversionError
from ..onnx_check import accept, describe_ops, first_line, missing_opset_imports, ort_only_ops
from ..onnx_utils import opset_of, remove_initializer_inputs, set_min_ir_version
from . import PassResult
from .opset import OPSET_NEEDS, upgrade
from .toposort import toposort


def prepare(model: onnx.ModelProto, opset: int | None, where: str) -> PassResult:
    """Drop initializer inputs, sort, upgrade to ``opset`` (the manifest's explicit ``export.opset``;
    None keeps the model's own), infer shapes, lower the IR version, check."""
    model = _copy(model)  # the source's own model stays as loaded (its reference runs on it)
    details: dict[str, object] = {"opset_before": opset_of(model), "ir_version_before": model.ir_version}
    notes = []
    removed = remove_initializer_inputs(model)
    if removed:
        notes.append(f"removed {removed} initializer(s) listed as graph inputs")
    for domain in missing_opset_imports(model):
        model.opset_import.append(onnx.helper.make_opsetid(domain, 1))
        notes.append(f"added the opset import {domain} v1 that the model's nodes use but do not declare")
    order = toposort(model, where)
    notes += [n for n in [order.note()] if n]
    runtime_only = ort_only_ops(model)
    if runtime_only:
        notes.append(f"onnxruntime-only op(s) {describe_ops(runtime_only, opset_of(model))}: kept for "
                     "onnxruntime candidates; other formats cannot take the model")
    if opset is None:
        needs = ", ".join(f"{who} {n}" for n, who, _ in OPSET_NEEDS.values() if n > opset_of(model))
        notes.append(f"opset {opset_of(model)} kept (export.opset not set)" +
                     (f"; candidates that need a newer one upgrade their own copy ({needs})" if needs else ""))
    else:
        done = upgrade(model, opset, "export.opset", "set in the manifest", where,
                       hint=f"leave export.opset out of the manifest to keep opset {opset_of(model)} (candidates "
                            "that need a newer one upgrade their own copy), or re-export the model")
        model = done.model
        notes += done.notes
    model, more = finish(model, where)
    details.update(opset=opset_of(model), ir_version=model.ir_version, initializer_inputs_removed=removed,
                   sorted_nodes=order.nodes, onnxruntime_only_ops=[f"{d}:{o}" if d else o for d, o in runtime_only])
    return PassResult(model, "prepare", modified=True, details=details, notes=notes + more)


def upgrade_for(model: onnx.ModelProto, variant: str, where: str) -> PassResult:
    """The model at the opset ``variant``'s artifact step needs (``OPSET_NEEDS``), or as it is."""
    opset, who, why = OPSET_NEEDS[variant]
    done = upgrade(model, opset, who, why, where)
    if not done.modified:
        return done
    model, more = finish(done.model, where, f"the model upgraded to opset {opset}")
    return PassResult(model, "opset", modified=True, details=done.details, notes=done.notes + more)


def finish(model: onnx.ModelProto, where: str, what: str = "the prepared model"
           ) -> tuple[onnx.ModelProto, list[str]]:
    """Shapes inferred where onnx can, the lowest IR version the opsets allow, checked."""
    notes = []
    inferred = _ort_shapes(model) if ort_only_ops(model) else None
    if inferred is not None:
        model = inferred
        notes.append("shapes inferred by onnxruntime's symbolic shape inference (onnx's does not type the "
                     "outputs of onnxruntime-only ops, and onnxruntime's quantizer needs those types)")
    else:
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as exc:  # shapes are a help for later passes, not a requirement
            notes.append(f"onnx shape inference failed, shapes left as they were ({first_line(exc)})")
    set_min_ir_version(model)
    notes += accept(model, what, cls=ConversionError, where=where,
                    hint="the model may use ops onnx cannot check; re-export it")
    return model, notes


def _ort_shapes(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """onnxruntime's symbolic shape inference (it knows onnxruntime's contrib ops), or None."""
    from ..quiet import quiet
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
        with quiet("onnxruntime"):
            out: onnx.ModelProto | None = SymbolicShapeInference.infer_shapes(model, auto_merge=True,
                                                                             guess_output_rank=True)
    except Exception:  # noqa: BLE001 - onnx's own inference is the fallback
        return None
    return out


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
