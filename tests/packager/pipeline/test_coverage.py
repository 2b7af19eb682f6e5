"""The build JSON's coverage matrix: one cell per target x candidate, ok / dropped / failed /
unsupported with the build's reason, totals, and which targets got a bundle (the zoo's scoreboard
counts the same cells)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from packager.pipeline import build

from ...conftest import write_yaml

pytestmark = pytest.mark.slow

TARGET = """\
name: cov-x86
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: onnx, precision: fp32}
  - {format: torchscript, precision: fp16}
  - {id: ts-int8-static, format: torchscript, precision: int8, quantization: {mode: static}}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""


def test_coverage_matrix_in_the_build_json(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    target = write_yaml(tmp_path / "cov-x86.yaml", TARGET)
    result = build(tiny_project(targets=[str(target)]), tmp_path / "out").to_dict()
    cov = result["coverage"]
    cells = {c["candidate"]: c for c in cov["cells"]}
    assert set(cells) == {"onnx-fp32", "torchscript-fp16", "ts-int8-static"}
    assert cells["onnx-fp32"]["result"] == "ok" and cells["onnx-fp32"]["reason"] is None
    assert cells["torchscript-fp16"]["result"] == "ok"
    assert cells["ts-int8-static"]["result"] == "unsupported"
    assert "dynamic quantization only" in cells["ts-int8-static"]["reason"], cells["ts-int8-static"]
    assert cells["ts-int8-static"]["target"] == "cov-x86" and cells["ts-int8-static"]["format"] == "torchscript"
    assert cov["totals"] == {"ok": 2, "dropped": 0, "failed": 0, "unsupported": 1}
    assert cov["bundles"] == {"cov-x86": True}
