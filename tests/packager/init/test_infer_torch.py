"""`edgepack init` of a torch entry point: the signature from a run on the example inputs, and the
batch probe (packager/init/infer_torch.py, examples.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from packager.config.manifest import load_manifest

from .conftest import PLACEHOLDER, run, signature


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
