"""The `edgepack init` command: --help, overwriting, and manifests that build once filled in
(packager/init/command.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ...conftest import REPO
from .conftest import cli, fill_calibration, run, tiny_onnx


def test_help_names_init_and_stays_light() -> None:
    out = subprocess.run([sys.executable, "-m", "packager", "init", "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0 and "--example-input" in out.stdout and "--batch-dim" in out.stdout


def test_refuses_to_overwrite_without_force(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "tiny.py:build", "-x", "1x1x4x4")[0] == 0
    (project / "tiny.yaml").write_text("# mine\n")
    code, out, err = run(capsys, "tiny.py:build", "-x", "1x1x4x4")
    assert code == 2 and "not overwritten" in err and "--force" in err
    assert (project / "tiny.yaml").read_text() == "# mine\n"
    assert run(capsys, "tiny.py:build", "-x", "1x1x4x4", "--force")[0] == 0
    assert "name: tiny" in (project / "tiny.yaml").read_text()



def test_written_manifest_gets_the_users_file_mode(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The manifest is the user's file: the umask decides its mode (a temp file's 0600 did before),
    and no temp file is left beside it."""
    import os
    old = os.umask(0o027)
    try:
        assert run(capsys, "tiny.py:build", "-x", "1x1x4x4")[0] == 0
    finally:
        os.umask(old)
    assert (project / "tiny.yaml").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in project.iterdir() if p.name.startswith(".tiny.yaml")] == []

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
