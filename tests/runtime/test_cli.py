"""`python -m runtime` end to end, in a subprocess, on a bundle dir and on a .tar.gz."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def js(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def test_info_inside_bundle_uses_its_own_runtime(bundle_dir: Path) -> None:
    proc = cli("info", "--json", cwd=bundle_dir)
    assert proc.returncode == 0, proc.stderr
    doc = js(proc)
    assert doc["selected"] == "onnx-fp32"
    assert doc["signature"]["inputs"][0]["name"] == "x"
    where = subprocess.run([sys.executable, "-c", "import runtime; print(runtime.__file__)"],
                           cwd=bundle_dir, capture_output=True, text=True).stdout.strip()
    assert Path(where).parent == bundle_dir / "runtime"
    # importing the bundle's runtime creates __pycache__ there; the hash check ignores it
    assert (bundle_dir / "runtime" / "__pycache__").is_dir()
    assert cli("verify", cwd=bundle_dir).returncode == 0


def test_info_text_on_archive(bundle_tar: Path) -> None:
    proc = cli("info", str(bundle_tar))
    assert proc.returncode == 0, proc.stderr
    assert "onnx-fp32" in proc.stdout and "selected" in proc.stdout
    assert "x: float32[batch, 4]" in proc.stdout


def test_info_exit_1_when_nothing_loads(bundle_factory: Callable[..., Path],
                                        kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate(
        "cuda", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])])
    proc = cli("info", "--json", str(root))
    assert proc.returncode == 1
    doc = js(proc)
    assert doc["selected"] is None
    assert "CUDAExecutionProvider not available" in doc["candidates"][0]["reason"]
    assert cli("run", str(root)).returncode == 2  # run cannot do anything: an error


@pytest.mark.parametrize("archive", [False, True])
def test_verify_json_passes(bundle_dir: Path, bundle_tar: Path, archive: bool) -> None:
    proc = cli("verify", "--json", str(bundle_tar if archive else bundle_dir))
    assert proc.returncode == 0, proc.stderr
    doc = js(proc)
    assert doc["passed"] is True
    assert [o["name"] for o in doc["candidates"][0]["outputs"]] == ["y", "label"]


def test_verify_unbatched_and_all(bundle_factory: Callable[..., Path],
                                  kit: types.ModuleType) -> None:
    root = bundle_factory(batched=False, samples=3,
                          candidates=[kit.candidate("a"), kit.candidate("tfl", backend="coreml"),
                                      kit.candidate("b")])
    proc = cli("verify", "--all", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "candidate a on [CPUExecutionProvider]: PASS" in proc.stdout
    assert "candidate b on [CPUExecutionProvider]: PASS" in proc.stdout
    assert "candidate tfl: not checked (backend coreml not supported" in proc.stdout


def test_verify_parity_failure_exits_1(bundle_factory: Callable[..., Path]) -> None:
    root = bundle_factory(perturb=0.01)
    proc = cli("verify", str(root))
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "exceed atol" in proc.stdout
    doc = js(cli("verify", "--json", str(root)))
    assert doc["passed"] is False


def test_tampered_bundle_exits_2_naming_file(bundle_dir: Path) -> None:
    (bundle_dir / "runtime" / "backdoor.py").write_text("import os\n")
    for cmd in ("info", "run", "verify", "bench"):
        proc = cli(cmd, str(bundle_dir))
        assert proc.returncode == 2, (cmd, proc.stderr)
        assert proc.stderr.startswith("error: ")
        assert "unexpected: runtime/backdoor.py" in proc.stderr
        assert "Traceback" not in proc.stderr
    doc = js(cli("verify", "--json", str(bundle_dir)))
    assert doc["ok"] is False and doc["error"] == "bundle-integrity"


def test_debug_shows_traceback(bundle_dir: Path) -> None:
    (bundle_dir / "runtime" / "backdoor.py").write_text("import os\n")
    proc = cli("info", "--debug", str(bundle_dir))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_missing_bundle_exits_2(tmp_path: Path) -> None:
    proc = cli("info", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_run_inputs_and_outputs(bundle_dir: Path, tmp_path: Path, kit: types.ModuleType) -> None:
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "feeds.npz", x=x)
    out = tmp_path / "y.npz"
    for spec in (str(tmp_path / "x.npy"), f"x={tmp_path / 'x.npy'}", str(tmp_path / "feeds.npz")):
        proc = cli("run", str(bundle_dir), "--input", spec, "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        with np.load(out) as got:
            np.testing.assert_allclose(got["y"], kit.reference(x)["y"], rtol=1e-5, atol=1e-6)
    proc = cli("run", str(bundle_dir), "--input", str(tmp_path / "x.npy"))
    assert "y: float32[2, 3]" in proc.stdout and "argmax" in proc.stdout
    doc = js(cli("run", "--json", "--values", str(bundle_dir), "--input",
                 str(tmp_path / "x.npy")))
    assert doc["outputs"]["y"]["shape"] == [2, 3]
    np.testing.assert_allclose(doc["outputs"]["y"]["values"], kit.reference(x)["y"], rtol=1e-5,
                               atol=1e-6)
    assert "values" not in js(cli("run", "--json", str(bundle_dir)))["outputs"]["y"]


def test_run_bad_inputs_exit_2(bundle_dir: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x64.npy", np.zeros((2, 4)))
    proc = cli("run", str(bundle_dir), "--input", str(tmp_path / "x64.npy"))
    assert proc.returncode == 2
    assert "x: dtype float64 does not match float32" in proc.stderr and "astype" in proc.stderr
    proc = cli("run", str(bundle_dir), "--input", f"xx={tmp_path / 'x64.npy'}")
    assert proc.returncode == 2 and "did you mean 'x'" in proc.stderr
    proc = cli("run", str(bundle_dir), "--input", str(tmp_path / "missing.npy"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    proc = cli("run", str(bundle_dir), "--input", str(tmp_path / "obj.npy"))
    assert proc.returncode == 2 and "cannot read array" in proc.stderr


def test_bench_json(bundle_tar: Path) -> None:
    proc = cli("bench", "--json", "--runs", "10", "--warmup", "2", "--batch", "4",
               str(bundle_tar))
    assert proc.returncode == 0, proc.stderr
    doc = js(proc)
    assert doc["runs"] == 10 and doc["batch"] == 4
    assert doc["p50_ms"] <= doc["p99_ms"] and doc["load_ms"] > 0
    assert doc["samples_per_s"] == pytest.approx(doc["inferences_per_s"] * 4)
    assert doc["device"]["platform"]
    proc = cli("bench", str(bundle_tar), "--runs", "5")
    assert proc.returncode == 0 and "p50" in proc.stdout and "samples/s" in proc.stdout


def test_prefer_unknown_and_strict(bundle_factory: Callable[..., Path],
                                   kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("cpu"), kit.candidate(
        "cuda", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])])
    proc = cli("info", str(root), "--prefer", "cpx")
    assert proc.returncode == 2 and "did you mean 'cpu'" in proc.stderr
    doc = js(cli("info", "--json", str(root), "--prefer", "cuda"))
    assert doc["selected"] == "cpu"
    proc = cli("verify", str(root), "--prefer", "cuda", "--strict")
    assert proc.returncode == 2 and "no candidate could be loaded" in proc.stderr
    assert cli("info", str(root), "--prefer", "cuda", "--strict").returncode == 1
