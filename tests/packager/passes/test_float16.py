"""An ONNX model that is float16 inside already (onnxruntime's float16 converter, float32 I/O):
the fp16 pass keeps it as it is, and the int8 passes widen it to float32 first, so every ONNX
precision builds from it (packager/passes/float16.py)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from packager.config.targets import Quantization
from packager.errors import ConversionError
from packager.passes import quantize
from packager.passes.float16 import float16_share, is_float16, widen
from packager.passes.toposort import toposort

from ..onnx_cases import features, torch_export, unsorted_fp16


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x})[0])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    folder = tmp_path_factory.mktemp("f16")
    full = onnx.load(str(torch_export(folder / "full.onnx", 14, keep_initializers_as_inputs=False)))
    half = onnx.load(str(unsorted_fp16(folder / "half.onnx")))
    toposort(half, "test")
    return full, half


def test_a_float16_model_is_recognised(models: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    full, half = models
    assert float16_share(full) == 0.0 and not is_float16(full)
    assert float16_share(half) == 1.0 and is_float16(half)


def test_fp16_pass_keeps_a_float16_model_as_it_is(models: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    _, half = models
    result = quantize.to_fp16(half)
    assert result.model is half and not result.modified
    assert "float16 already (100%): kept as it is" in result.notes[0]


def test_int8_passes_widen_a_float16_model_first(models: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    full, half = models
    x = features(16, seed=5)
    ref = _run(full, x)
    widened, changed = widen(half, "test")
    assert changed > 0 and float16_share(widened) == 0.0
    np.testing.assert_allclose(_run(widened, x), _run(half, x), atol=2e-3)  # the float16 values, widened
    dyn = quantize.int8_dynamic(half)
    assert any("widened to float32 before quantization" in n for n in dyn.notes)
    static = quantize.int8_static(half, Quantization(mode="static"), [{"x": features(32)}], random_data=False)
    assert any("widened" in n for n in static.notes)
    for result in (dyn, static):
        got = _run(result.model, x)
        cos = float(np.dot(got.ravel(), ref.ravel()) / (np.linalg.norm(got) * np.linalg.norm(ref)))
        assert cos > 0.99, (result.name, cos)


def test_float16_inputs_are_refused_not_widened() -> None:
    w = numpy_helper.from_array(np.ones((2, 2), np.float16), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "h",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 2])], [w])
    with pytest.raises(ConversionError) as info:
        widen(helper.make_model(graph), "pass int8-dynamic")
    assert "float16 inputs/outputs ['x', 'y']" in info.value.message and info.value.hint
