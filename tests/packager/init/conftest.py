"""Shared by the `edgepack init` tests: a project folder with tiny torch models, a tiny ONNX file, and
running the command in-process or as `python -m packager`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from packager.cli import main
from packager.config.manifest import load_manifest

from ...conftest import TINY_MODEL

PLACEHOLDER = "REPLACE-ME/calibration.npz"


MORE_MODELS = '''
import numpy as np
import torch
from torch import nn


class TwoInputs(nn.Module):
    """Two inputs, a dict of outputs of different dtypes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 3)

    def forward(self, image, extra):
        h = self.fc(torch.cat([image.flatten(1), extra], 1))
        return {"logits": h, "label": h.argmax(1)}


class FixedBatch(nn.Module):
    """Hard-codes a batch of one."""

    def forward(self, x):
        return x.reshape(1, -1) * 2


def build_two():
    return TwoInputs().eval()


def build_fixed():
    return FixedBatch()


def broken():
    raise RuntimeError("the weights file is corrupt")


def not_a_model():
    return 42


def example_two():
    # keys in the "wrong" order: init puts them in forward()'s order
    return {"extra": np.ones((2, 2), np.float32), "image": np.ones((2, 1, 2, 2), np.float32)}
'''


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["init", *args])
    out, err = capsys.readouterr()
    return code, out, err


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "packager", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tiny.py").write_text(TINY_MODEL)
    (tmp_path / "more.py").write_text(MORE_MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_onnx(path: Path, first_dim: Any = "N") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["mm"]), helper.make_node("Add", ["mm", "B"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)], "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [first_dim, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [first_dim, 4]),
         helper.make_tensor_value_info("probs", TensorProto.FLOAT, [first_dim, None])],  # inferred: 4
        [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def signature(manifest: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    m = load_manifest(manifest)
    return [t.to_dict() for t in m.inputs], [t.to_dict() for t in m.outputs]


def fill_calibration(manifest: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(manifest.parent / "calib.npz", **arrays)  # type: ignore[arg-type]
    text = manifest.read_text()
    assert f"file: {PLACEHOLDER}" in text
    manifest.write_text(text.replace(PLACEHOLDER, "calib.npz"))
