"""`edgepack init` of an ONNX file: the signature its graph states (packager/init/infer_onnx.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.config.manifest import load_manifest

from .conftest import run, signature, tiny_onnx


def test_onnx_signature_from_the_graph(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_onnx(project / "lin.onnx")
    code, out, err = run(capsys, "lin.onnx")
    assert code == 0, err
    ins, outs = signature(project / "lin.yaml")
    assert ins == [{"name": "features", "dtype": "float32", "shape": ["batch", 3]}]
    assert outs == [{"name": "logits", "dtype": "float32", "shape": ["batch", 4]},
                    {"name": "probs", "dtype": "float32", "shape": ["batch", 4]}]
    assert load_manifest(project / "lin.yaml").source.path == project / "lin.onnx"
    code, out, err = run(capsys, "lin.onnx", "--fixed-batch", "-o", "-", "--json")
    assert code == 0 and json.loads(out)["inputs"][0]["shape"] == [1, 3]
    code, out, err = run(capsys, "lin.onnx", "--batch-dim", "n", "-o", "-", "--json")
    assert code == 0 and json.loads(out)["outputs"][1]["shape"] == ["n", 4]


def test_onnx_fixed_first_axis_cannot_be_made_a_batch(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_onnx(project / "one.onnx", first_dim=1)
    code, out, err = run(capsys, "one.onnx", "-o", "-", "--json")
    assert code == 0 and json.loads(out)["inputs"][0]["shape"] == [1, 3] and json.loads(out)["batch"] is None
    code, _, err = run(capsys, "one.onnx", "--batch-dim", "batch", "-o", "-")
    assert code == 2 and "fixed in the model" in err and "re-export" in err
