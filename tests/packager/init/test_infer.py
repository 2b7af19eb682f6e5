"""`edgepack init`'s model argument: what it refuses, and how it says what to give instead
(packager/init/infer.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import cli, run, tiny_onnx


@pytest.mark.parametrize("args, words", [
    (["nope.onnx"], ["nope.onnx: not found", "hint:"]),
    (["more.py:build_two", "-x", "1x1x2x2"], ["forward(image, extra) takes 2 input(s)", "none for extra"]),
    (["weights.pt"], ["does not take .pt files", "builds the nn.Module"]),
    (["model.tflite"], ["already a device format"]),
    (["tiny.py"], ["needs the name of the function", "tiny.py:build_model"]),
    (["notes.txt"], ["unknown kind of model file", ".onnx file"]),
    (["folder"], ["not a SavedModel", "saved_model.pb"]),
    (["tiny.py:build"], ["needs an example input", "forward(x)", "--example-input"]),
    (["tiny.py:nope"], ["has no function 'nope'"]),
    (["missing.py:build"], ["entry point file 'missing.py' not found"]),
    (["more.py:broken"], ["raised RuntimeError: the weights file is corrupt"]),
    (["more.py:not_a_model"], ["returned int, not a torch.nn.Module or a Keras model"]),
    (["tiny.py:build", "-x", "1x3"], ["failed", "forward(x)", "--example-input"]),
    (["tiny.py:build", "-x", "1x1x4x4:float8"], ["unknown dtype 'float8'"]),
    (["tiny.py:build", "-x", "pic.png"], ["cannot read --example-input 'pic.png'"]),
    (["tiny.py:build", "-x", "1x1x4x4", "--name", "Bad Name"], ["--name 'Bad Name'"]),
    (["tiny.py:build", "-x", "1x1x4x4", "--batch-dim", "2b"], ["is not a symbol"]),
    (["lin.onnx", "-x", "1x3"], ["--example-input is for torch entry points"]),
    (["nofw.py:build", "-x", "1x3"], ["pip install 'edgepack[torch]'"]),
])
def test_bad_input_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                    words: list[str]) -> None:
    for name in ("weights.pt", "model.tflite", "notes.txt"):
        (project / name).write_bytes(b"x")
    (project / "folder").mkdir()
    (project / "nofw.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
                                     "def build():\n    pass\n")
    tiny_onnx(project / "lin.onnx")
    code, _, err = run(capsys, *args)
    assert code == 2, err
    assert "hint:" in err and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert not list(project.glob("*.yaml")), "nothing written"


def test_a_raising_entry_point_from_the_command_line(project: Path) -> None:
    out = cli("init", "more.py:broken", "--json", cwd=project)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    err = json.loads(out.stdout)
    assert err["error"] == "source" and "the weights file is corrupt" in err["message"]
