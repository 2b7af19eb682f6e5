"""The manifest `edgepack init` writes: its sections, comments, targets and relative paths
(packager/init/render.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from packager.config.manifest import load_manifest
from packager.config.targets import available_targets, load_target

from ...conftest import TINY_MODEL
from .conftest import PLACEHOLDER, run, tiny_onnx


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
