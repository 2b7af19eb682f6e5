"""Preparing ONNX files that onnxruntime runs: sorted, opset kept or upgraded per need, folded
before an upgrade, onnxruntime-only ops kept; an upgrade that cannot be done says why."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import version_converter

from packager.errors import ConversionError
from packager.onnx_utils import opset_of, serialize
from packager.passes.opset import OPSET_NEEDS, fold_constants, foldable
from packager.passes.prepare import prepare, upgrade_for
from packager.passes.toposort import toposort

from ..onnx_cases import features, ir3_constant_of_shape, sparse_weight, torch_export, unsorted_fp16

X = features(16)


def run(model: onnx.ModelProto, x: np.ndarray = X) -> np.ndarray:
    return ort.InferenceSession(serialize(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def test_ir3_constant_of_shape_weight_upgrades_after_preparation() -> None:
    src = ir3_constant_of_shape()
    expected = run(src)
    # the reported failure: initializers dropped from the inputs of an IR-3 model are "undefined"
    naive = copy(src)
    inits = {i.name for i in naive.graph.initializer}
    kept = [i for i in naive.graph.input if i.name not in inits]
    del naive.graph.input[:]
    naive.graph.input.extend(kept)
    with pytest.raises(Exception, match="Input bias_SHAPE is undefined"):
        version_converter.convert_version(naive, 13)

    prepared = prepare(copy(src), None, "test")
    assert opset_of(prepared.model) == 9 and prepared.details["initializer_inputs_removed"] == 2
    assert prepared.details["ir_version_before"] == 3 and prepared.model.ir_version >= 4
    assert "opset 9 kept (export.opset not set)" in prepared.notes[1]
    assert "int8 static QDQ 13" in prepared.notes[1]
    upgraded = upgrade_for(prepared.model, "int8-static", "test")
    assert opset_of(upgraded.model) == 13 and upgraded.details["opset_before"] == 9
    assert upgraded.notes[0] == "folded 1 constant-only node(s) before the upgrade (4 -> 3 nodes, onnxsim)"
    assert "ConstantOfShape" not in {n.op_type for n in upgraded.model.graph.node}
    np.testing.assert_allclose(run(upgraded.model), expected, rtol=0, atol=1e-6)
    assert opset_of(prepared.model) == 9  # the shared model is not changed by one route's upgrade


@pytest.mark.parametrize("opset", [9, 12, 14])
def test_torch_exports_with_initializers_as_inputs(tmp_path: Path, opset: int) -> None:
    src = onnx.load(str(torch_export(tmp_path / "old.onnx", opset, keep_initializers_as_inputs=True)))
    assert "ConstantOfShape" in {n.op_type for n in src.graph.node} and len(src.graph.input) == 5
    prepared = prepare(copy(src), None, "test")
    assert prepared.details["initializer_inputs_removed"] == 4 and opset_of(prepared.model) == opset
    for variant in ("int8-dynamic", "int8-static"):
        need = OPSET_NEEDS[variant][0]
        done = upgrade_for(prepared.model, variant, "test")
        assert opset_of(done.model) == max(opset, need) and done.modified == (opset < need)
        np.testing.assert_allclose(run(done.model), run(src), rtol=0, atol=1e-5)


def test_explicit_opset_is_honoured_and_default_keeps_the_models() -> None:
    explicit = prepare(copy(ir3_constant_of_shape()), 17, "test")
    assert opset_of(explicit.model) == 17 and "upgraded opset 9 -> 17 (export.opset: set in the manifest)" in \
        explicit.notes
    kept = prepare(sparse_weight(), None, "test")
    assert opset_of(kept.model) == 11 and kept.notes == [
        "opset 11 kept (export.opset not set); candidates that need a newer one upgrade their own copy "
        "(int8 static QDQ 13)"]


def test_an_upgrade_the_converter_cannot_do_names_who_needs_it_and_why() -> None:
    prepared = prepare(sparse_weight(), None, "m.yaml: source")
    assert upgrade_for(prepared.model, "int8-dynamic", "m.yaml: source").notes == [
        "opset 11 kept (int8 dynamic quantization needs 11 or newer)"]
    with pytest.raises(ConversionError) as info:
        upgrade_for(prepared.model, "int8-static", "m.yaml: source")
    assert info.value.message == (
        "int8 static QDQ needs opset 13 (per-channel DequantizeLinear takes an axis from opset 13 on); "
        "cannot upgrade the model from opset 11 to 13: Sparse tensors not supported.")
    assert info.value.where == "m.yaml: source" and "re-export the model at opset 13" in info.value.hint
    with pytest.raises(ConversionError, match="leave export.opset out of the manifest to keep opset 11"):
        prepare(sparse_weight(), 13, "m.yaml: source")


def test_unsorted_graph_is_sorted_with_a_note(tmp_path: Path) -> None:
    src = onnx.load(str(unsorted_fp16(tmp_path / "half.onnx")))
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(src)
    prepared = prepare(copy(src), None, "test")
    onnx.checker.check_model(prepared.model)
    total = len(src.graph.node)
    assert prepared.details["sorted_nodes"] == total
    assert prepared.notes[0].startswith(f"sorted {total} nodes into topological order (1 read a value made further")
    np.testing.assert_array_equal(run(prepared.model), run(src))
    assert toposort(prepared.model, "test").note() is None  # sorted stays sorted


def test_toposort_is_stable_and_refuses_a_cycle() -> None:
    from onnx import TensorProto, helper
    vi = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
    nodes = [helper.make_node("Relu", ["b"], ["y"], name="last"), helper.make_node("Neg", ["x"], ["a"], name="one"),
             helper.make_node("Abs", ["x"], ["c"], name="free"), helper.make_node("Neg", ["a"], ["b"], name="two")]
    model = helper.make_model(helper.make_graph(nodes, "g", vi, out))
    assert toposort(model, "t").late == 1 and [n.name for n in model.graph.node] == ["one", "free", "two", "last"]
    loop = [helper.make_node("Add", ["x", "q"], ["p"], name="p"), helper.make_node("Neg", ["p"], ["q"], name="q"),
            helper.make_node("Neg", ["p"], ["y"])]
    with pytest.raises(ConversionError, match=r"the graph has a cycle: node\(s\) Neg, p, q wait on each other"):
        toposort(helper.make_model(helper.make_graph(loop, "g", vi, out)), "t")


def test_fold_constants_reports_what_it_did() -> None:
    prepared = prepare(ir3_constant_of_shape(), None, "t")
    assert foldable(prepared.model) == 1
    folded, note = fold_constants(prepared.model)
    assert foldable(folded) == 0 and "folded 1" in note
    assert fold_constants(folded)[1] == "nothing to fold before the upgrade"
