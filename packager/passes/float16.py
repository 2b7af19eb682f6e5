"""ONNX models that are float16 inside already (a float16 conversion tool wrote them, I/O kept
float32): the fp16 pass has nothing to do, and the int8 passes need float32 weights first.

onnxruntime's float16 converter run a second time renames nothing and adds a second set of casts
(duplicate node names); its quantizers compute scales from float32 weights only. ``widen`` gives
the float32 model the quantizers expect: float16 initializers, constants and casts become float32
(the values are the float16 values: nothing is made up).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..errors import ConversionError

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT


def float16_share(model: onnx.ModelProto) -> float:
    """The share of floating-point weight elements stored as float16 (0 when there are none)."""
    sizes = {F16: 0, F32: 0}
    for init in model.graph.initializer:
        if init.data_type in sizes:
            sizes[init.data_type] += int(np.prod(init.dims)) if init.dims else 1
    total = sizes[F16] + sizes[F32]
    return sizes[F16] / total if total else 0.0


def is_float16(model: onnx.ModelProto) -> bool:
    """Whether the model's weights are (mostly) float16 already."""
    return float16_share(model) > 0.5


def widen(model: onnx.ModelProto, where: str) -> tuple[onnx.ModelProto, int]:
    """A float32 copy of a float16 model whose inputs and outputs are float32, and how many
    tensors and casts changed. Float16 graph I/O is refused: the signature would change."""
    io16 = [v.name for v in (*model.graph.input, *model.graph.output) if v.type.tensor_type.elem_type == F16]
    if io16:
        raise ConversionError(f"the model is float16 inside with float16 inputs/outputs {io16}: widening it "
                              "to float32 for quantization would change its signature", where=where,
                              hint="quantize the float32 model instead (export it without float16 conversion)")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    changed = _widen_graph(out.graph)
    return out, changed


def _widen_graph(graph: onnx.GraphProto) -> int:
    changed = 0
    for i, init in enumerate(graph.initializer):
        if init.data_type == F16:
            graph.initializer[i].CopyFrom(_widened(init))
            changed += 1
    for value in (*graph.value_info, *graph.input, *graph.output):
        if value.type.tensor_type.elem_type == F16:
            value.type.tensor_type.elem_type = F32
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == F16:
                attr.t.CopyFrom(_widened(attr.t))
                changed += 1
            elif attr.name in ("to", "dtype") and attr.type == onnx.AttributeProto.INT and attr.i == F16:
                attr.i = F32
                changed += 1
            elif attr.type == onnx.AttributeProto.GRAPH:
                changed += _widen_graph(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                changed += sum(_widen_graph(g) for g in attr.graphs)
    return changed


def _widened(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)
