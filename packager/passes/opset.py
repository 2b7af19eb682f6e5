"""Opset upgrades: which artifacts need a newer opset than the model's, and the upgrade itself.

An ONNX source keeps its opset unless the manifest sets ``export.opset`` or a candidate needs a
newer one; each artifact step that needs one upgrades its own copy, so a model the converter
cannot upgrade still ships the candidates that do not need it.
"""
from __future__ import annotations

import re

import onnx

from ..errors import ConversionError
from ..onnx_check import first_line
from ..onnx_utils import node_count, opset_of
from . import PassResult

OPSET_NEEDS: dict[str, tuple[int, str, str]] = {
    # onnxruntime's quantizer converts a model below opset 10 to 11 itself (without our folding,
    # notes or per-candidate failure), and at opset 10 it cannot fuse DynamicQuantizeLinear
    # (max error 0.1 against 0.0012 at opset 11 on a small conv net, measured with onnxruntime 1.22)
    "int8-dynamic": (11, "int8 dynamic quantization", "onnxruntime's quantizer upgrades older models itself "
                                                      "and cannot fuse DynamicQuantizeLinear at opset 10"),
    # per-channel QDQ writes DequantizeLinear's axis attribute, which exists from opset 13 (below,
    # onnxruntime's quantizer writes it anyway and onnxruntime refuses the result); one route
    # serves per-tensor and per-channel static candidates, so both get 13
    "int8-static": (13, "int8 static QDQ", "per-channel DequantizeLinear takes an axis from opset 13 on"),
}
"""The artifact steps that need a newer opset than the model's: variant -> (opset, who, why). fp32
and fp16 run at any opset onnxruntime runs (the float16 converter only inserts Casts)."""

_NOT_FOLDED = {"Constant", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
               "Multinomial", "Bernoulli"}


def foldable(model: onnx.ModelProto) -> int:
    """Nodes of the main graph computed from constants alone (a ConstantOfShape weight, the Shape
    of a tensor whose shape is static)."""
    graph = model.graph
    static = {v.name for v in [*graph.input, *graph.value_info, *graph.output] if v.type.tensor_type.HasField("shape")
              and all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)}
    known = {i.name for i in graph.initializer} | {""}
    count = 0
    for node in graph.node:
        computable = node.domain in ("", "ai.onnx") and node.op_type not in _NOT_FOLDED
        if node.op_type == "Constant" or (node.op_type == "Shape" and node.input[0] in static) or (
                computable and all(i in known for i in node.input)):
            known.update(node.output)
            count += node.op_type != "Constant"
    return count


def fold_constants(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Fold constant-only nodes into initializers before an upgrade, with a note.

    onnxsim (``perform_optimization=False``: folding and shape inference only) rather than
    onnxruntime's basic-level optimization written out through ``optimized_model_filepath``: on
    the same opset-9 models the latter kept IR version 3 (so the folded weights stayed
    "undefined" for the converter), wrote nine opset imports of onnxruntime's own domains, turned
    a sparse Constant into a sparse initializer the converter cannot read, and fuses Conv+BN even
    at the basic level. onnx itself has no constant folder. When onnxsim fails (it refuses
    onnxruntime-only ops, for one), the model is upgraded unfolded and the note says why.
    """
    n = foldable(model)
    if not n:
        return model, "nothing to fold before the upgrade"
    try:
        import onnxsim

        from ..quiet import quiet
        with quiet():  # onnxsim prints to stdout, which `edgepack build --json` owns
            folded, _ = onnxsim.simplify(model, perform_optimization=False)
    except Exception as exc:  # onnxsim raises many kinds: upgrade the unfolded model, say why
        return model, f"constant folding (onnxsim) failed, upgrading the unfolded model ({first_line(exc)})"
    return folded, f"folded {n} constant-only node(s) before the upgrade ({node_count(model)} -> " \
                   f"{node_count(folded)} nodes, onnxsim)"


def _converter_message(exc: BaseException) -> str:
    """The converter's reason without its C++ file, line and assertion text."""
    return re.sub(r"^.*Assertion `false` failed: ", "", first_line(exc))


def upgrade(model: onnx.ModelProto, opset: int, who: str, why: str, where: str, hint: str | None = None) -> PassResult:
    """Fold constants, then convert a copy of ``model`` to ``opset`` (``who`` needs it, ``why``)."""
    before = opset_of(model)
    if before >= opset:
        return PassResult(model, "opset", modified=False, details={"opset": before, "needed": opset},
                          notes=[f"opset {before} kept ({who} needs {opset} or newer)"])
    work = onnx.ModelProto()
    work.CopyFrom(model)
    work, fold_note = fold_constants(work)
    from onnx import version_converter
    try:
        upgraded = version_converter.convert_version(work, opset)
    except Exception as exc:
        raise ConversionError(f"{who} needs opset {opset} ({why}); cannot upgrade the model from opset {before} "
                              f"to {opset}: {_converter_message(exc)}", where=where,
                              hint=hint or f"re-export the model at opset {opset} or newer; candidates that run "
                                           f"at opset {before} (fp32, fp16) are built without it") from None
    return PassResult(upgraded, "opset", modified=True,
                      notes=[fold_note, f"upgraded opset {before} -> {opset} ({who}: {why})"],
                      details={"opset_before": before, "opset": opset, "needed": opset,
                               "nodes": node_count(upgraded)})
