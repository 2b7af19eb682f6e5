"""`edgepack init`: signature inference from real (tiny) models, the written manifest, and its errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from packager.cli import main
from packager.manifest import load_manifest
from packager.targets import available_targets, load_target

from ...conftest import REPO, TINY_MODEL

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


# -- torch ---------------------------------------------------------------------------------------------

def test_torch_signature_from_a_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tiny.py:build", "--example-input", "1x1x4x4")
    assert code == 0, err
    manifest = project / "tiny.yaml"
    assert "tiny.yaml" in out and "input  x: float32 [batch, 1, 4, 4]" in out
    ins, outs = signature(manifest)  # the real loader accepts it, placeholder and all
    assert ins == [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 4, 4], "layout": "NCHW"}]
    assert outs == [{"name": "output", "dtype": "float32", "shape": ["batch", 5]}]
    m = load_manifest(manifest)
    assert m.name == "tiny" and m.source.entry == "tiny.py:build" and m.symbolic_batch() == "batch"
    assert m.calibration.file == project / PLACEHOLDER
    assert m.targets == ("x86-cpu",)


def test_entry_point_kwargs_go_into_the_manifest(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tiny.py:build", "-x", "1x1x4x4", "--kwarg", "seed=3", "-o", "k.yaml")
    assert code == 0, err
    assert load_manifest(project / "k.yaml").source.kwargs == {"seed": 3}
    code, out, err = run(capsys, "tiny.py:build", "-x", "1x1x4x4", "--kwarg", "seed", "-o", "-")
    assert code == 2 and "not KEY=VALUE" in err


def test_torch_two_inputs_dict_outputs_and_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "more.py:build_two", "-x", "2x1x2x2", "-x", "2x2", "-o", "two.yaml", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["manifest"] == "two.yaml" and data["batch"] == "batch"
    assert data["inputs"] == [
        {"name": "image", "dtype": "float32", "shape": ["batch", 1, 2, 2], "layout": "NCHW"},
        {"name": "extra", "dtype": "float32", "shape": ["batch", 2]}]
    assert data["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]},
                               {"name": "label", "dtype": "int64", "shape": ["batch"]}]
    assert data["placeholders"][0]["value"] == PLACEHOLDER
    assert data["targets"]["enabled"] == ["x86-cpu"]
    ins, outs = signature(project / "two.yaml")
    assert [i["name"] for i in ins] == ["image", "extra"] and [o["name"] for o in outs] == ["logits", "label"]


def test_example_inputs_from_an_entry_point_npz_and_npy(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "more.py:build_two", "-x", "more.py:example_two", "-o", "-", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [i["name"] for i in data["inputs"]] == ["image", "extra"]  # forward()'s order, not the dict's
    assert yaml.safe_load(data["yaml"])["inputs"][0]["shape"] == ["batch", 1, 2, 2]
    np.savez(project / "ex.npz", extra=np.zeros((3, 2), np.float32), image=np.zeros((3, 1, 2, 2), np.float32))
    code, out, err = run(capsys, "more.py:build_two", "-x", "ex.npz", "-o", "-", "--json")
    assert code == 0, err and [i["name"] for i in json.loads(out)["inputs"]] == ["image", "extra"]
    np.save(project / "x.npy", np.zeros((4, 1, 4, 4), np.float32))
    code, out, err = run(capsys, "tiny.py:build", "-x", "pixels=x.npy", "-o", "-", "--json")
    assert code == 0, err
    assert json.loads(out)["inputs"][0] == {"name": "pixels", "dtype": "float32", "shape": ["batch", 1, 4, 4],
                                            "layout": "NCHW"}


def test_a_model_with_a_fixed_batch_keeps_it_unless_asked(project: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "more.py:build_fixed", "-x", "1x3", "-o", "fixed.yaml", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["batch"] is None and data["inputs"][0]["shape"] == [1, 3] and data["outputs"][0]["shape"] == [1, 3]
    assert any("axis 0 stays fixed" in n for n in data["notes"])
    assert load_manifest(project / "fixed.yaml").symbolic_batch() is None
    code, out, err = run(capsys, "more.py:build_fixed", "-x", "1x3", "-o", "-", "--json", "--batch-dim", "n")
    assert code == 0, err
    data = json.loads(out)
    assert data["inputs"][0]["shape"] == ["n", 3] and any("--batch-dim n" in n for n in data["notes"])
    code, out, err = run(capsys, "tiny.py:build", "-x", "2x1x4x4", "-o", "-", "--json", "--fixed-batch")
    assert code == 0 and json.loads(out)["inputs"][0]["shape"] == [2, 1, 4, 4]


# -- ONNX ----------------------------------------------------------------------------------------------

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


def test_manifest_goes_next_to_the_model_and_paths_are_relative_to_it(project: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (project / "models").mkdir()
    tiny_onnx(project / "models" / "lin.onnx")
    (project / "models" / "tiny.py").write_text(TINY_MODEL)
    assert run(capsys, "models/lin.onnx")[0] == 0
    assert yaml.safe_load((project / "models" / "lin.yaml").read_text())["source"]["path"] == "lin.onnx"
    assert run(capsys, "models/tiny.py:build", "-x", "1x1x4x4", "-o", "manifests/t.yaml")[0] == 0
    doc = yaml.safe_load((project / "manifests" / "t.yaml").read_text())
    assert doc["source"]["entry"] == "../models/tiny.py:build"
    assert load_manifest(project / "manifests" / "t.yaml").name == "tiny"


# -- the written manifest ------------------------------------------------------------------------------

def test_targets_listed_one_enabled_others_commented(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tiny.py:build", "-x", "1x1x4x4", "-o", "-")
    assert code == 0, err
    assert yaml.safe_load(out)["targets"] == ["x86-cpu"]
    for name, path in available_targets().items():
        line = next(row for row in out.splitlines() if row.strip().lstrip("# ").startswith(f"- {name} "))
        assert line.strip().startswith("- x86-cpu" if name == "x86-cpu" else "# - ")
        assert load_target(str(path)).description in line
    assert {"rpi4", "rpi5", "jetson-orin-nano", "x86-cuda"} <= set(available_targets())
    code, out, err = run(capsys, "tiny.py:build", "-x", "1x1x4x4", "-o", "-", "--target", "rpi4",
                         "--target", "x86-cpu")
    assert code == 0 and yaml.safe_load(out)["targets"] == ["rpi4", "x86-cpu"]
    code, out, err = run(capsys, "tiny.py:build", "-x", "1x1x4x4", "-o", "-", "--target", "rpi44")
    assert code == 2 and "did you mean 'rpi4'" in err


def test_manifest_explains_each_section(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "more.py:build_two", "-x", "2x1x2x2", "-x", "2x2", "-o", "-")
    assert code == 0, err
    for section in ("name:", "source:", "inputs:", "outputs:", "calibration:", "golden:", "# evaluation:",
                    "targets:", "# tolerances:", "# export:"):
        assert f"\n{section}" in out, section
    # the calibration comments say exactly what the data must look like
    assert "image: float32 [N, 1, 2, 2]" in out and "extra: float32 [N, 2]" in out
    assert "numpy.savez('data.npz', image=..., extra=...)" in out
    assert f"file: {PLACEHOLDER}" in out
    assert "written by: edgepack init more.py:build_two -x 2x1x2x2 -x 2x2 -o -" in out


def test_refuses_to_overwrite_without_force(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "tiny.py:build", "-x", "1x1x4x4")[0] == 0
    (project / "tiny.yaml").write_text("# mine\n")
    code, out, err = run(capsys, "tiny.py:build", "-x", "1x1x4x4")
    assert code == 2 and "not overwritten" in err and "--force" in err
    assert (project / "tiny.yaml").read_text() == "# mine\n"
    assert run(capsys, "tiny.py:build", "-x", "1x1x4x4", "--force")[0] == 0
    assert "name: tiny" in (project / "tiny.yaml").read_text()


# -- building what init wrote --------------------------------------------------------------------------

def test_build_before_filling_in_is_an_actionable_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "tiny.py:build", "-x", "1x1x4x4")[0] == 0
    for command in (["build", "tiny.yaml", "--out", str(project / "dist")], ["validate", "tiny.yaml"]):
        out = cli(*command, cwd=project)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr
        assert "tiny.yaml: calibration.file" in out.stderr and PLACEHOLDER in out.stderr
        assert "numpy.savez('data.npz', x=<float32 [N, 1, 4, 4] array>)" in out.stderr
        assert "entry: data.py:function" in out.stderr and "random: true" in out.stderr
    assert not (project / "dist").exists(), "nothing written"
    err = json.loads(cli("build", "tiny.yaml", "--json", cwd=project).stdout)
    assert err["error"] == "data" and err["where"] == "tiny.yaml: calibration.file"


@pytest.mark.slow
def test_torch_manifest_builds_once_filled_in(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "more.py:build_two", "-x", "1x1x2x2", "-x", "1x2", "-o", "two.yaml", "--name", "two")
    assert code == 0, err
    rng = np.random.default_rng(0)
    fill_calibration(project / "two.yaml", {"image": rng.random((32, 1, 2, 2)).astype(np.float32),
                                            "extra": rng.random((32, 2)).astype(np.float32)})
    out = cli("build", "two.yaml", "--target", "x86-cpu", "--out", str(project / "dist"), "--json", cwd=project)
    assert out.returncode == 0, out.stderr + out.stdout
    result = json.loads(out.stdout)
    assert result["ok"] and result["targets"][0]["status"] == "ok"
    assert (project / "dist" / "two-x86-cpu" / "bundle.json").is_file()


@pytest.mark.slow
def test_onnx_manifest_builds_once_filled_in(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_onnx(project / "lin.onnx")
    assert run(capsys, "lin.onnx")[0] == 0
    fill_calibration(project / "lin.yaml",
                     {"features": np.random.default_rng(0).random((32, 3)).astype(np.float32)})
    out = cli("build", "lin.yaml", "--out", str(project / "dist"), "--json", cwd=project)
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["targets"][0]["status"] == "ok"
    bundle = json.loads((project / "dist" / "lin-x86-cpu" / "bundle.json").read_text())
    assert [o["shape"] for o in bundle["signature"]["outputs"]] == [["batch", 4], ["batch", 4]]


@pytest.mark.slow
def test_keras_file_signature_and_build(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = ("import keras\n"
            "inp = keras.Input(shape=(4,), name='features')\n"
            "h = keras.layers.Dense(3, name='logits')(inp)\n"
            "keras.Model(inp, [h, keras.layers.Softmax(name='probs')(h)]).save('clf.keras')\n")
    subprocess.run([sys.executable, "-c", code], cwd=project, check=True, capture_output=True, timeout=300)
    assert run(capsys, "clf.keras", "--json")[0] == 0  # keeps the JSON in capsys' buffer: read the file
    ins, outs = signature(project / "clf.yaml")
    assert ins == [{"name": "features", "dtype": "float32", "shape": ["batch", 4]}]
    assert outs == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]},
                    {"name": "probs", "dtype": "float32", "shape": ["batch", 3]}]
    assert load_manifest(project / "clf.yaml").source.framework == "tensorflow"
    fill_calibration(project / "clf.yaml",
                     {"features": np.random.default_rng(0).random((32, 4)).astype(np.float32)})
    out = cli("build", "clf.yaml", "--out", str(project / "dist"), "--json", cwd=project)
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["targets"][0]["status"] == "ok"


# -- bad input -----------------------------------------------------------------------------------------

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


def test_help_names_init_and_stays_light() -> None:
    out = subprocess.run([sys.executable, "-m", "packager", "init", "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0 and "--example-input" in out.stdout and "--batch-dim" in out.stdout
