"""A build or validate of an init manifest still holding its placeholder (packager/init/placeholders.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import PLACEHOLDER, cli, run


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
