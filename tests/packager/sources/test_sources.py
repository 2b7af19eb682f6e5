"""Source models: loaded through entry points or files and checked against the manifest."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from packager.config.manifest import load_manifest
from packager.errors import SourceError
from packager.sources import load_source

from ..test_passes import old_style_model


def test_torch_entry_must_return_a_module(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "notmodel.py").write_text("def build():\n    return 42\n")
    m = load_manifest(tiny_project(source={"framework": "torch", "entry": "notmodel.py:build"}))
    with pytest.raises(SourceError, match="returned int, not a torch.nn.Module"):
        load_source(m)


def test_torch_output_count_must_match(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project(outputs=["a", "b"]))
    src = load_source(m)
    with pytest.raises(SourceError) as info:
        src.reference({"x": np.zeros((2, 1, 4, 4), np.float32)})
    assert "returns 1 output(s), the manifest lists 2" in info.value.message


def test_torch_wrong_input_shape(tiny_project: Callable[..., Path]) -> None:
    src = load_source(load_manifest(tiny_project()))
    with pytest.raises(SourceError, match="running the torch model failed"):
        src.reference({"x": np.zeros((2, 1, 5, 5), np.float32)})


def _onnx_manifest(tiny_project: Callable[..., Path], tmp_path: Path, **inputs: object) -> Path:
    onnx.save(old_style_model(), str(tmp_path / "old.onnx"))
    spec = {"name": "x", "dtype": "float32", "shape": ["batch", 8]}
    spec.update(inputs)
    return tiny_project(source={"framework": "onnx", "path": "old.onnx"}, inputs=[spec], outputs=["y"],
                        calibration={"random": True})


def test_onnx_source_reference(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    src = load_source(load_manifest(_onnx_manifest(tiny_project, tmp_path)))
    out = src.reference({"x": np.ones((3, 8), np.float32)})["y"]
    assert out.shape == (3, 4) and (out >= 0).all()


@pytest.mark.parametrize("override, message", [
    ({"name": "input"}, "no input 'input'"),
    ({"dtype": "float16"}, "is float32 in the model, float16 in the manifest"),
    ({"shape": ["batch", 9]}, "axis 1 is 8 in the model, 9 in the manifest"),
    ({"shape": ["batch", 8, 1]}, "rank 2"),
])
def test_onnx_signature_mismatch(tiny_project: Callable[..., Path], tmp_path: Path,
                                 override: dict, message: str) -> None:
    with pytest.raises(SourceError) as info:
        load_source(load_manifest(_onnx_manifest(tiny_project, tmp_path, **override)))
    assert message in info.value.message


def test_corrupt_onnx_file(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    path = _onnx_manifest(tiny_project, tmp_path)
    (tmp_path / "old.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(SourceError, match="old.onnx"):
        load_source(load_manifest(path))
