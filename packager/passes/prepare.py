"""Make an ONNX model ready for the later passes: checked, clean inputs, opset, shapes inferred."""
from __future__ import annotations

import onnx

from ..errors import ConversionError
from ..onnx_utils import opset_of, remove_initializer_inputs, set_min_ir_version, upgrade_opset
from . import PassResult


def prepare(model: onnx.ModelProto, opset: int, where: str) -> PassResult:
    """Drop initializer inputs, upgrade to ``opset``, infer shapes, lower the IR version."""
    details: dict[str, object] = {"opset_before": opset_of(model), "ir_version_before": model.ir_version}
    removed = remove_initializer_inputs(model)
    model = upgrade_opset(model, opset, where)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        raise ConversionError(f"ONNX shape inference failed: {exc}", where=where,
                              hint="the model may use ops onnx cannot infer; re-export it") from None
    set_min_ir_version(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"model is invalid after preparation: {str(exc).splitlines()[0]}",
                              where=where) from None
    details.update(opset=opset_of(model), ir_version=model.ir_version,
                   initializer_inputs_removed=removed)
    notes = [f"removed {removed} initializer(s) listed as graph inputs"] if removed else []
    if details["opset_before"] != details["opset"]:
        notes.append(f"upgraded opset {details['opset_before']} -> {details['opset']}")
    return PassResult(model, "prepare", modified=True, details=details, notes=notes)
