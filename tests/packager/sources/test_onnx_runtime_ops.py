"""ONNX sources that onnxruntime runs are accepted even where the onnx checker refuses them; one
both refuse is still a SourceError; other runtimes' candidates are told which ops they lack."""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from packager.config.manifest import load_manifest
from packager.config.targets import CandidateSpec
from packager.errors import SourceError, UnsupportedError
from packager.onnx_check import ort_only_ops
from packager.onnx_utils import load_onnx
from packager.sources import load_source
from packager.sources.onnx_source import runtime_refusal

from ..onnx_cases import block_inputs, ort_optimized_block, unsorted_fp16, write_onnx_manifest


def test_files_the_checker_refuses_but_onnxruntime_runs_are_accepted_with_a_note(tmp_path: Path) -> None:
    notes: list[str] = []
    load_onnx(unsorted_fp16(tmp_path / "half.onnx"), "half.onnx", notes)
    assert len(notes) == 1 and notes[0].startswith("the onnx checker refuses half.onnx (Nodes in a graph must be "
                                                   "topologically sorted")
    notes.clear()
    model = load_onnx(ort_optimized_block(tmp_path / "block.onnx"), "block.onnx", notes)
    assert notes == ["the onnx checker refuses block.onnx (No Op registered for LayerNormalization with "
                     "domain_version of 14); onnxruntime loads it, so it is accepted (every artifact's parity is "
                     "still checked against the source)"]
    assert ort_only_ops(model) == [("", "LayerNormalization"), ("com.microsoft", "BiasGelu"),
                                   ("com.microsoft", "SkipLayerNormalization")]


def test_a_file_both_refuse_is_a_source_error(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "bad.onnx"))
    with pytest.raises(SourceError) as info:
        load_onnx(tmp_path / "bad.onnx", "bad.onnx")
    assert info.value.message.startswith("bad.onnx fails the ONNX checker: ")
    assert "onnxruntime refuses it too" in (info.value.hint or "")


def test_only_onnxruntime_candidates_take_onnxruntime_only_ops(tmp_path: Path) -> None:
    ort_optimized_block(tmp_path / "block.onnx")
    manifest = load_manifest(write_onnx_manifest(tmp_path, "block.onnx", block_inputs(), ["batch", "seq", 16],
                                                 ["x86-cpu"]))
    src = load_source(manifest)  # the reference runs the file as it is
    assert src.reference({"x": block_inputs(2)})["y"].shape == (2, 5, 16)
    onnx_fp32 = CandidateSpec("onnx-fp32", "onnx", "fp32", "onnxruntime")
    assert runtime_refusal(manifest, onnx_fp32, None) is None
    tflite = CandidateSpec("tflite-int8", "tflite", "int8", "tflite")
    refused = runtime_refusal(manifest, tflite, None)
    assert isinstance(refused, UnsupportedError) and refused.where == "candidate tflite-int8"
    assert refused.message == ("the model uses onnxruntime-only op(s) LayerNormalization (default domain at opset "
                               "14, onnxruntime's contrib ops); BiasGelu, SkipLayerNormalization (domain "
                               "com.microsoft): a tflite candidate (tflite) cannot run them")
    assert "use onnx candidates" in (refused.hint or "")
    missing = UnsupportedError("ONNX -> TorchScript is not supported")
    both = runtime_refusal(manifest, CandidateSpec("ts", "torchscript", "fp32", "torchscript"), missing)
    assert both is not None and both.message.endswith("cannot run them; besides, ONNX -> TorchScript is not supported")


def test_a_plain_model_is_refused_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "block-plain.onnx"
    ort_optimized_block(tmp_path / "block.onnx")  # writes the plain export beside it
    manifest = load_manifest(write_onnx_manifest(tmp_path, plain.name, block_inputs(), ["batch", "seq", 16],
                                                 ["x86-cpu"]))
    assert runtime_refusal(manifest, CandidateSpec("t", "tflite", "fp32", "tflite"), None) is None
