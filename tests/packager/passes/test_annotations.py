"""The fp32 ONNX artifact keeps onnxsim's shape annotations unless onnxruntime runs the model
clearly faster without them on the build host (the medians come from the real timing loop in the
last test; the rule is checked on given medians)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from packager.convert import exporter_choice
from packager.passes.annotations import fastest


def annotated_mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (16, 32)), ("b1", (32,)), ("w2", (32, 4)))]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


FEEDS = {"x": np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32)}


def run(model: onnx.ModelProto) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, FEEDS)[0]


@pytest.mark.parametrize(("medians", "dropped"), [((0.43, 0.37), True), ((0.40, 0.39), False),
                                                   ((0.100, 0.085), False), ((0.37, 0.43), False)])
def test_the_plain_model_replaces_the_annotated_one_only_when_clearly_faster(
        monkeypatch: pytest.MonkeyPatch, medians: tuple[float, float], dropped: bool) -> None:
    timed: list[int] = []

    def given(calls: list[object]) -> list[float]:
        assert len(calls) == 2 and all(callable(c) for c in calls)  # both really run in onnxruntime
        timed.append(len(calls))
        return list(medians)

    monkeypatch.setattr(exporter_choice, "interleaved", given)
    model = annotated_mlp()
    assert len(model.graph.value_info) == 3
    logged: list[str] = []
    result = fastest(model, FEEDS, log=logged.append)
    assert timed == [2] and logged == [f"fp32 onnx on this host: {medians[0]:.3f} ms with shape annotations, "
                                       f"{medians[1]:.3f} ms without"]
    assert result.modified is dropped
    assert result.details == {"shape_annotations": "dropped" if dropped else "kept"}
    assert len(result.model.graph.value_info) == (0 if dropped else 3)
    assert bool(result.notes) is dropped and all("3 intermediate shape annotations" in n for n in result.notes)
    np.testing.assert_array_equal(run(result.model), run(model))  # the same computation either way
    assert len(model.graph.value_info) == 3  # the input model is left as it was


def test_a_model_without_annotations_is_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporter_choice, "interleaved", lambda calls: pytest.fail("timed"))
    model = annotated_mlp()
    del model.graph.value_info[:]
    result = fastest(model, FEEDS)
    assert result.model is model and not result.modified and result.details == {}


def test_real_timing_gives_a_verdict() -> None:
    logged: list[str] = []
    result = fastest(annotated_mlp(), FEEDS, log=logged.append)
    assert result.details["shape_annotations"] in ("kept", "dropped")
    (line,) = logged
    with_ms, without_ms = (float(part.split(" ms")[0].split()[-1]) for part in line.split(", "))
    assert with_ms > 0 and without_ms > 0
