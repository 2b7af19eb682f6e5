"""LayerNormalization written as primitive ops for onnx2tf (packager.convert.layernorm): the same
numbers from onnxruntime, at opset 17 (ReduceMean axes attribute) and 18 (axes input)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from packager.convert.layernorm import decompose_layernorm


def ln_model(opset: int, axis: int, bias: bool, stats: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    shape = [2, 5, 6, 8]
    normalized = shape[axis:]
    inits = [numpy_helper.from_array(rng.normal(1, 0.2, normalized).astype(np.float32), "scale")]
    inputs = ["x", "scale"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.2, normalized).astype(np.float32), "bias"))
        inputs.append("bias")
    outputs = ["y", "mean"] if stats else ["y"]
    nodes = [helper.make_node("LayerNormalization", inputs, outputs, name="ln", axis=axis, epsilon=1e-3),
             helper.make_node("Relu", ["y"], ["out"])]
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize(("opset", "axis", "bias"), [(17, -1, True), (17, 1, False), (18, -2, True), (18, 2, False)])
def test_the_primitive_ops_compute_the_same(opset: int, axis: int, bias: bool) -> None:
    model = ln_model(opset, axis, bias)
    lowered, count = decompose_layernorm(model)
    assert count == 1 and "LayerNormalization" not in {n.op_type for n in lowered.graph.node}
    assert {n.op_type for n in lowered.graph.node} >= {"ReduceMean", "Sub", "Sqrt", "Div"}
    onnx.checker.check_model(lowered, full_check=True)
    x = np.random.default_rng(1).normal(0, 3, (2, 5, 6, 8)).astype(np.float32)
    assert np.abs(run(lowered, x) - run(model, x)).max() < 1e-5
    assert [n.op_type for n in model.graph.node] == ["LayerNormalization", "Relu"]  # the input is left as it was


def test_a_node_whose_statistics_are_used_is_left_alone() -> None:
    model = ln_model(17, -1, True, stats=True)
    lowered, count = decompose_layernorm(model)
    assert count == 0 and [n.op_type for n in lowered.graph.node] == ["LayerNormalization", "Relu"]
