"""ONNX passes on small real models: prepare (old opset), simplify, fp16, int8 dynamic/static."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from packager.config.targets import Quantization
from packager.onnx_utils import opset_of, serialize
from packager.passes import quantize
from packager.passes.prepare import prepare
from packager.passes.simplify import simplify


def old_style_model() -> onnx.ModelProto:
    """Opset 9 with its initializers also listed as graph inputs, like old exporters wrote."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    graph = helper.make_graph(
        nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8]),
                       helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 4]),
                       helper.make_tensor_value_info("b", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(serialize(model), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


X = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)


def test_prepare_upgrades_old_models() -> None:
    src = old_style_model()
    expected = run(src, X)
    result = prepare(onnx.ModelProto.FromString(src.SerializeToString()), 17, "test")
    assert opset_of(result.model) == 17 and result.details["opset_before"] == 9
    assert [i.name for i in result.model.graph.input] == ["x"]
    assert result.details["initializer_inputs_removed"] == 2
    assert any("initializer" in n for n in result.notes)
    np.testing.assert_allclose(run(result.model, X), expected, rtol=1e-6)


def test_simplify_records_node_counts() -> None:
    model = prepare(old_style_model(), 17, "test").model
    result = simplify(model)
    assert result.details["nodes_before"] == 4 and result.details["nodes_after"] == 3  # Identity gone
    np.testing.assert_allclose(run(result.model, X), run(model, X), rtol=1e-6)


def test_simplify_failure_keeps_model_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxsim

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("unsupported op FancyOp")
    monkeypatch.setattr(onnxsim, "simplify", boom)
    model = prepare(old_style_model(), 17, "test").model
    result = simplify(model)
    assert result.model is model and not result.modified
    assert "FancyOp" in result.details["skipped"] and "kept the unsimplified" in result.notes[0]


def test_fp16_keeps_float32_io() -> None:
    model = prepare(old_style_model(), 17, "test").model
    result = quantize.to_fp16(model)
    assert result.model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(i.data_type == TensorProto.FLOAT16 for i in result.model.graph.initializer)
    out = run(result.model, X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, run(model, X), atol=2e-2, rtol=2e-2)


def test_int8_dynamic() -> None:
    model = prepare(old_style_model(), 17, "test").model
    result = quantize.int8_dynamic(model)
    ops = {n.op_type for n in result.model.graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    ref, out = run(model, X), run(result.model, X)
    assert np.corrcoef(ref.ravel(), out.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_static_qdq_calibrated(per_channel: bool) -> None:
    model = prepare(old_style_model(), 17, "test").model
    batches = [{"x": X[i:i + 4]} for i in range(0, 16, 4)]
    result = quantize.int8_static(model, Quantization("static", per_channel), batches, random_data=False)
    ops = [n.op_type for n in result.model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert result.details["calibration_samples"] == 16 and result.details["per_channel"] is per_channel
    ref, out = run(model, X), run(result.model, X)
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max() + 1e-3
    assert not result.notes


def test_int8_static_on_random_data_is_flagged() -> None:
    model = prepare(old_style_model(), 17, "test").model
    result = quantize.int8_static(model, Quantization(), [{"x": X}], random_data=True)
    assert "RANDOM" in result.notes[0]
