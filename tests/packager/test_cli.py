"""The edgepack command as a user runs it: exit codes, --json, and errors without tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import REPO


def edgepack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "packager", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=600)


def test_help_lists_commands() -> None:
    out = edgepack("--help")
    assert out.returncode == 0
    for cmd in ("targets", "validate", "build", "debug", "init", "schema", "keygen", "inspect", "runtime-wheel",
                "converters"):
        assert cmd in out.stdout


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys; from packager.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'onnxsim') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_targets_text_and_json() -> None:
    out = edgepack("targets")
    assert out.returncode == 0 and "rpi4" in out.stdout and "jetson-orin-nano" in out.stdout
    data = json.loads(edgepack("targets", "--json").stdout)
    names = {t["name"] for t in data["targets"]}
    assert {"x86-cpu", "rpi4", "rpi5", "jetson-orin-nano"} <= names


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsource: {framework: torch, entry: m.py:f}\ninptus: []\n")
    out = edgepack("validate", str(bad))
    assert out.returncode == 2
    assert "unknown key 'inptus'" in out.stderr and "did you mean 'inputs'" in out.stderr
    assert "Traceback" not in out.stderr
    err = json.loads(edgepack("validate", str(bad), "--json").stdout)
    assert err["error"] == "manifest" and err["where"].endswith("bad.yaml: inptus")


def test_unknown_target_on_the_command_line(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    out = edgepack("build", str(tiny_project()), "--target", "rpi44", "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and "did you mean 'rpi4'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists(), "nothing written"


def test_missing_weights_error_is_actionable(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "noweights.py").write_text(
        "def build():\n    raise FileNotFoundError('no trained weights at w.pt; run train.py')\n")
    manifest = tiny_project(source={"framework": "torch", "entry": "noweights.py:build"})
    out = edgepack("build", str(manifest), "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and "run train.py" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_build_json_then_inspect_and_tamper(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    out = edgepack("build", str(tiny_project()), "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] and result["targets"][0]["status"] == "ok"
    assert result["targets"][0]["candidates"][0]["parity"]["passed"]
    bundle = tmp_path / "tiny-x86-cpu"
    shown = edgepack("inspect", str(bundle))
    assert shown.returncode == 0 and "integrity: OK" in shown.stdout and "onnx-fp32" in shown.stdout
    assert "parity of onnx-int8-static-pc" in shown.stdout
    data = json.loads(edgepack("inspect", str(tmp_path / "tiny-x86-cpu.tar.gz"), "--json").stdout)
    assert data["integrity"]["ok"] and data["bundle"]["name"] == "tiny"
    with (bundle / "models" / "tiny.fp32.onnx").open("ab") as fh:
        fh.write(b"\0")
    tampered = edgepack("inspect", str(bundle))
    assert tampered.returncode == 1 and "tiny.fp32.onnx" in tampered.stdout
    # the rebuild: -q prints no progress, -v shows what came from the cache and why
    quiet = edgepack("build", str(tiny_project()), "--out", str(tmp_path / "q"), "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and "report: " in quiet.stdout
    loud = edgepack("build", str(tiny_project()), "--out", str(tmp_path / "v"), "-v")
    assert loud.returncode == 0 and "inputs unchanged" in loud.stderr
    assert "onnx-fp32: taken from the cache" in loud.stderr and "unchanged: " in loud.stderr
    assert "\033[" not in loud.stdout + loud.stderr  # not a terminal: no colour codes
    both = edgepack("build", str(tiny_project()), "-q", "-v")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_schema_command_prints_the_generated_schema(tmp_path: Path) -> None:
    from packager.config.schema import schema_document
    for kind in ("manifest", "target"):
        out = edgepack("schema", kind)
        assert out.returncode == 0 and json.loads(out.stdout) == schema_document(kind)
    written = edgepack("schema", "manifest", "-o", str(tmp_path / "s" / "manifest.schema.json"))
    assert written.returncode == 0 and "wrote the manifest schema" in written.stderr
    assert json.loads((tmp_path / "s" / "manifest.schema.json").read_text())["title"] == "edgepack manifest"
    bad = edgepack("schema", "bundle")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
