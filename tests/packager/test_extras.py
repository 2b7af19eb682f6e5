"""A framework that is not installed is a clear error naming the pip extra that brings it: checked
in a process where the framework's import fails, as on a core-only install."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import REPO


def build_without(blocked: list[str], manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``edgepack build`` in a process where importing ``blocked`` raises ImportError."""
    code = ("import sys\n"
            f"for name in {blocked!r}:\n    sys.modules[name] = None  # import raises ImportError\n"
            "from packager.cli import main\n"
            f"sys.exit(main(['build', {str(manifest)!r}, '--out', {str(out)!r}, '--no-cache', *{list(extra)!r}]))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)


def test_torch_source_without_torch_names_the_torch_extra(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    proc = build_without(["torch"], tiny_project(), tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs PyTorch" in proc.stderr and "pip install 'edgepack[torch]'" in proc.stderr
    assert not (tmp_path / "out" / "tiny-x86-cpu").exists()


def test_tensorflow_source_without_tensorflow_names_its_extra(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def build():\n    raise AssertionError('not reached')\n")
    manifest = tmp_path / "k.yaml"
    manifest.write_text("name: k\nsource: {framework: tensorflow, entry: m.py:build}\n"
                        "inputs: [{name: x, dtype: float32, shape: [batch, 4]}]\noutputs: [y]\n"
                        "calibration: {random: true, samples: 4}\ntargets: [x86-cpu]\n")
    proc = build_without(["tensorflow", "keras"], manifest, tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pip install 'edgepack[tensorflow]'" in proc.stderr


@pytest.mark.slow
def test_tflite_from_torch_without_litert_torch_falls_back_and_names_the_extra(
        tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    """The rpi4 target's TFLite candidate is litert-torch's ([tflite-torch] extra): without it the
    route's fallback (onnx2tf on the exported ONNX model) makes it, and the candidate's notes and
    the build's warnings say why, with the extra to install."""
    proc = build_without(["litert_torch"], tiny_project(targets=["rpi4"]), tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    by_id = {c["id"]: c for c in result["targets"][0]["candidates"]}
    tflite = by_id["tflite-int8-static-int8io"]
    assert tflite["status"] in ("ok", "dropped"), tflite  # made by onnx2tf; parity decides
    assert "pip install 'edgepack[tflite-torch]'" in tflite["notes"][0] and "onnx2tf" in tflite["notes"][0]
    assert any("tflite-int8-static-int8io" in w and "exported ONNX model" in w for w in result["warnings"])
    assert by_id["onnx-fp32"]["status"] == "ok"
