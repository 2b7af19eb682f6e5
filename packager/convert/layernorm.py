"""ONNX LayerNormalization (opset 17) written as the primitive ops it stands for, for onnx2tf.

onnx2tf 2.6.9's flatbuffer_direct backend lowers some LayerNormalization nodes and emits others as
a custom op (``ONNX_LAYERNORMALIZATION``) that LiteRT cannot run: an exported SegFormer's 19 came
out that way, a ConvNeXt's 9 did not. ReduceMean, Sub, Mul, Add, Sqrt and Div it lowers every
time (and ai-edge-quantizer has int8 kernels for most of them), so the TFLite route hands it
those. The float result is the same computation (checked by the parity of every artifact).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def decompose_layernorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with every LayerNormalization that has only its Y output and a float32
    input of known rank rewritten as primitive ops; and how many were."""
    nodes = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    if not nodes:
        return model, 0
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in
             [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
             if v.type.tensor_type.HasField("shape") and v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    rewritten: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        rank = ranks.get(node.input[0]) if node.op_type == "LayerNormalization" else None
        if rank is None or len([o for o in node.output if o]) != 1:
            rewritten.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axis = int(attrs.get("axis", -1))
        axes = list(range(axis % rank, rank))
        eps = float(attrs.get("epsilon", 1e-5))
        p = f"{node.name or node.output[0]}__ln"
        x, scale = node.input[0], node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        graph.initializer.append(numpy_helper.from_array(np.array(eps, dtype=np.float32), f"{p}_eps"))
        if opset >= 18:
            graph.initializer.append(numpy_helper.from_array(np.array(axes, dtype=np.int64), f"{p}_axes"))

        def mean(src: str, dst: str, prefix: str = p, over: list[int] = axes) -> onnx.NodeProto:
            if opset >= 18:
                return helper.make_node("ReduceMean", [src, f"{prefix}_axes"], [dst], keepdims=1)
            return helper.make_node("ReduceMean", [src], [dst], axes=over, keepdims=1)

        y = node.output[0]
        rewritten += [mean(x, f"{p}_mean"),
                      helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_d"]),
                      helper.make_node("Mul", [f"{p}_d", f"{p}_d"], [f"{p}_d2"]),
                      mean(f"{p}_d2", f"{p}_var"),
                      helper.make_node("Add", [f"{p}_var", f"{p}_eps"], [f"{p}_var_eps"]),
                      helper.make_node("Sqrt", [f"{p}_var_eps"], [f"{p}_std"]),
                      helper.make_node("Div", [f"{p}_d", f"{p}_std"], [f"{p}_norm"]),
                      helper.make_node("Mul", [f"{p}_norm", scale], [y if bias is None else f"{p}_scaled"])]
        if bias is not None:
            rewritten.append(helper.make_node("Add", [f"{p}_scaled", bias], [y]))
        count += 1
    del graph.node[:]
    graph.node.extend(rewritten)
    return out, count
