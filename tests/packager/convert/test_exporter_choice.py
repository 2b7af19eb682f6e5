"""exporter_choice.choose: among the exports that match the original model, the first stays
unless another runs clearly faster on onnxruntime; a mismatching export is never kept."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from packager.convert.exporter_choice import choose
from runtime.compare import Tolerance

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3)).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)


def linear(weight: np.ndarray, slow: bool = False) -> onnx.ModelProto:
    """y = x @ weight + B; ``slow`` adds 0 * sum(x @ big @ big2): the same values, ~1000x the work."""
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(B, "b")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["lin"])]
    if slow:
        inits += [numpy_helper.from_array(RNG.standard_normal((4, 1024)).astype(np.float32), "big"),
                  numpy_helper.from_array(RNG.standard_normal((1024, 1024)).astype(np.float32) * 1e-3, "big2"),
                  numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
        nodes += [helper.make_node("MatMul", ["x", "big"], ["p"]), helper.make_node("MatMul", ["p", "big2"], ["q"]),
                  helper.make_node("MatMul", ["q", "big2"], ["q2"]),
                  helper.make_node("ReduceSum", ["q2"], ["s"], keepdims=1),
                  helper.make_node("Mul", ["s", "zero"], ["z"]), helper.make_node("Add", ["lin", "z"], ["y"])]
    else:
        nodes.append(helper.make_node("Identity", ["lin"], ["y"]))
    graph = helper.make_graph(nodes, "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


FEEDS = {"x": RNG.standard_normal((6, 4)).astype(np.float32)}
TOL = {"y": Tolerance(atol=1e-4, rtol=1e-3)}


def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"y": feeds["x"] @ W + B}


def test_a_clearly_faster_export_replaces_the_first() -> None:
    logged: list[str] = []
    keep, notes = choose([("dynamo", linear(W, slow=True)), ("torchscript", linear(W))], FEEDS, reference, TOL,
                         log=logged.append)
    assert keep == 1, notes
    assert "kept torchscript: faster than dynamo by more than 8%" in notes[0] and "ms" not in notes[0]
    assert "dynamo " in logged[0] and " ms" in logged[0]  # the numbers go to the log, not the bundle


def test_the_first_stays_when_it_is_as_fast() -> None:
    keep, notes = choose([("dynamo", linear(W)), ("torchscript", linear(W, slow=True))], FEEDS, reference, TOL)
    assert keep == 0 and "the first in order" in notes[0]


def test_an_export_that_differs_from_the_model_is_never_kept() -> None:
    wrong = linear(W + 0.5)  # the fastest, but not the model
    keep, notes = choose([("dynamo", wrong), ("torchscript", linear(W, slow=True))], FEEDS, reference, TOL)
    assert keep == 1 and "dynamo: differs from the original model" in notes[0], notes
    keep, notes = choose([("dynamo", wrong), ("torchscript", wrong)], FEEDS, reference, TOL)
    assert keep == 0 and "none matches the original model" in notes[0]
