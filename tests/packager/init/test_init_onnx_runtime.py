"""`edgepack init` of ONNX files onnxruntime runs but the onnx checker refuses: a manifest is written,
and the notes say what was accepted and what it means for the build."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..onnx_cases import ort_optimized_block, unsorted_fp16
from .conftest import run, signature


def test_init_of_nodes_out_of_order(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unsorted_fp16(project / "half.onnx")
    code, out, err = run(capsys, "half.onnx", "-o", "-", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["inputs"][0]["shape"] == ["batch", 8] and doc["outputs"][0]["shape"] == ["batch", 3]
    assert doc["notes"][0].startswith("the onnx checker refuses half.onnx (Nodes in a graph must be topologically")


def test_init_of_onnxruntime_fused_ops(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ort_optimized_block(project / "block.onnx")
    code, out, err = run(capsys, "block.onnx")
    assert code == 0, err
    ins, outs = signature(project / "block.yaml")
    assert ins == [{"name": "x", "dtype": "float32", "shape": ["batch", "seq", 16]}]
    assert outs[0]["name"] == "y" and outs[0]["shape"] == ["batch", "seq", 16]
    assert "note: the model uses onnxruntime-only op(s) LayerNormalization (default domain at opset 14, " in out
    assert "BiasGelu, SkipLayerNormalization (domain com.microsoft): only onnx candidates (onnxruntime)" in out
