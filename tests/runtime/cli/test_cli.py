"""`python -m runtime` end to end, in a subprocess, on a bundle dir and on a .tar.gz."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]


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
    # importing the bundle's runtime writes no bytecode into it: runtime/__pycache__ ships as an
    # empty listed file (runtime.code_guard), so Python cannot create the folder
    blocker = bundle_dir / "runtime" / "__pycache__"
    assert blocker.is_file() and blocker.stat().st_size == 0
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


# --------------------------------------------------------------------------- doctor / tune

def _for_this_device(root: Path, kit: types.ModuleType) -> Path:
    """The kit's target says x86_64 / 3.11: point it at whatever runs the tests."""
    import platform

    doc = json.loads((root / "bundle.json").read_text())
    doc["target"].update(arch=platform.machine(), python=f"{sys.version_info[0]}.{sys.version_info[1]}")
    kit.write_bundle_json(root, doc)
    return root


def test_doctor_json_device_only_and_with_bundle(bundle_factory: Callable[..., Path],
                                                 kit: types.ModuleType) -> None:
    proc = cli("doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = js(proc)
    assert doc["ok"] is True and doc["bundle"] is None
    assert doc["device"]["python"] and doc["device"]["cpu"]["model"]
    assert {b["name"] for b in doc["backends"]} >= {"onnxruntime", "tflite", "torchscript"}
    root = _for_this_device(bundle_factory(), kit)
    doc = js(cli("doctor", "--json", str(root)))
    assert doc["ok"] is True and doc["bundle"]["selected"] == "onnx-fp32"
    # run from inside the bundle, the bundle is checked without naming it
    assert js(cli("doctor", "--json", cwd=root))["bundle"]["name"] == "tiny"
    proc = cli("doctor", str(root))
    assert proc.returncode == 0
    for section in ("device:", "accelerators:", "backends:", "bundle: tiny", "requirements.txt:",
                    "candidates here:", "no problems found"):
        assert section in proc.stdout, section


def test_doctor_exit_1_with_fixes(bundle_factory: Callable[..., Path],
                                  kit: types.ModuleType) -> None:
    root = _for_this_device(bundle_factory(requirements="numpy\nonnxruntime==1.0.1\n"), kit)
    proc = cli("doctor", "--json", str(root))
    assert proc.returncode == 1
    doc = js(proc)
    assert doc["ok"] is False and "pip install onnxruntime==1.0.1" in doc["fixes"]
    proc = cli("doctor", str(root))
    assert proc.returncode == 1 and "pip install onnxruntime==1.0.1" in proc.stdout
    assert cli("doctor", str(root.parent / "nope")).returncode == 2


def test_tune_json_then_info_uses_it(bundle_factory: Callable[..., Path],
                                     kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("a"), kit.candidate("b")])
    proc = cli("tune", "--json", "--runs", "5", "--warmup", "1", "--max-seconds", "0.3",
               str(root))
    assert proc.returncode == 0, proc.stderr
    doc = js(proc)
    assert doc["ok"] is True and doc["chosen"] in ("a", "b") and doc["emulated"] is False
    assert Path(doc["file"]) == root.parent / "tiny-cpu.tuned.json" and doc["written"]
    assert [m["status"] for m in doc["measurements"]] == ["passed", "passed"]
    info = js(cli("info", "--json", str(root)))
    assert info["selected"] == doc["chosen"] and info["tuning"]["used"] is True
    info = js(cli("info", "--json", "--no-tuned", str(root)))
    assert info["selected"] == "a" and info["tuning"]["status"] == "disabled"
    proc = cli("info", str(root))
    assert "tuning: tuned choice from tiny-cpu.tuned.json (fingerprint match)" in proc.stdout
    proc = cli("tune", str(root), "--runs", "3", "--max-seconds", "0.2", "--no-write")
    assert proc.returncode == 0 and "chosen:" in proc.stdout and "not written" in proc.stdout


def test_tune_exit_1_when_nothing_passes_and_warns_when_emulated(
        bundle_factory: Callable[..., Path]) -> None:
    root = bundle_factory(perturb=0.01)
    proc = cli("tune", "--json", "--runs", "3", "--max-seconds", "0.2", str(root))
    assert proc.returncode == 1
    doc = js(proc)
    assert doc["chosen"] is None and doc["measurements"][0]["status"] == "parity-failed"
    ok = bundle_factory()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["EDGEPACK_EMULATED"] = "1"
    proc = subprocess.run([sys.executable, "-m", "runtime", "tune", "--json", "--runs", "3",
                           "--max-seconds", "0.2", str(ok)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning: emulated" in proc.stderr
    doc = js(proc)
    assert doc["emulated"] is True and "not device timings" in doc["warning"]


def test_outputs_and_reports_are_refused_inside_the_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    """A file written into the bundle folder would make every later command refuse the bundle:
    refused up front (exit 2, nothing written), with where to write instead."""
    for args, flag in ((("run", "--output", "y.npz"), "--output"), (("verify", "--report", "v.html"), "--report")):
        proc = cli(*args, cwd=bundle_dir)
        assert proc.returncode == 2 and f"e.g. {flag} ../" in proc.stderr and "Traceback" not in proc.stderr
    assert not (bundle_dir / "y.npz").exists() and not (bundle_dir / "v.html").exists()
    assert cli("verify", cwd=bundle_dir).returncode == 0  # the bundle is still whole
    ok = cli("run", "--output", str(tmp_path / "y.npz"), str(bundle_dir))
    assert ok.returncode == 0 and (tmp_path / "y.npz").is_file()


def test_closed_stdout_ends_quietly(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m runtime info | head -1`: the reader goes away; no 'internal error'."""
    import runtime.cli as cli_main

    def closed(*args: Any, **kwargs: Any) -> int:
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setitem(cli_main.COMMANDS, "info", closed)
    monkeypatch.setattr(cli_main, "stdout_closed", lambda: 141)  # keep pytest's own stdout
    assert cli_main.main(["info", str(bundle_dir)]) == 141
    assert "internal error" not in capsys.readouterr().err


# --------------------------------------------------------------------------- non-finite inputs

NONFINITE = "3 of 8 values are not finite (2 NaN, 1 inf)"


def _nonfinite_x(tmp_path: Path) -> Path:
    x = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
    x[0, 1] = x[1, 2] = np.nan
    x[1, 3] = np.inf
    np.save(tmp_path / "nan.npy", x)
    return tmp_path / "nan.npy"


def test_run_warns_about_nonfinite_inputs(bundle_dir: Path, tmp_path: Path) -> None:
    bad = str(_nonfinite_x(tmp_path))
    proc = cli("run", str(bundle_dir), "--input", bad)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: input x: {NONFINITE}; outputs computed from it are not meaningful" \
        in proc.stderr
    assert "--strict refuses such input" in proc.stderr
    assert "y: float32[2, 3]" in proc.stdout  # it still ran: a warning, not an error
    proc = cli("run", "--json", str(bundle_dir), "--input", bad)
    assert proc.returncode == 0, proc.stderr
    warnings = js(proc)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith(f"input x: {NONFINITE};"), warnings
    assert f"warning: input x: {NONFINITE}" in proc.stderr
    # clean inputs: no warning, and an empty list rather than a missing key
    proc = cli("run", "--json", str(bundle_dir))
    assert proc.returncode == 0 and js(proc)["warnings"] == [] and "warning" not in proc.stderr


def test_strict_refuses_nonfinite_inputs(bundle_dir: Path, tmp_path: Path) -> None:
    bad = str(_nonfinite_x(tmp_path))
    proc = cli("run", "--strict", str(bundle_dir), "--input", bad)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: x: {NONFINITE}\n  hint: replace or drop"), proc.stderr
    assert "np.nan_to_num" in proc.stderr and proc.stdout == ""  # nothing was run
    doc = js(cli("run", "--json", "--strict", str(bundle_dir), "--input", bad))
    assert doc["ok"] is False and doc["error"] == "bad-feed" and doc["where"] == "x"
    assert doc["message"] == NONFINITE
    # bench takes --input too: the same rule
    proc = cli("bench", "--strict", "--runs", "2", str(bundle_dir), "--input", bad)
    assert proc.returncode == 2 and NONFINITE in proc.stderr, proc.stderr
    proc = cli("bench", "--json", "--runs", "2", str(bundle_dir), "--input", bad)
    assert proc.returncode == 0 and js(proc)["warnings"][0].startswith(f"input x: {NONFINITE}")


def _require(module: str) -> None:
    """A framework the test needs: fail under CI (CI=true) when missing, skip elsewhere."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"{module} is not installed and CI=true: this test needs it")
        pytest.skip(f"{module} is not installed")


@pytest.mark.slow
def test_nan_into_an_int8_model_looks_fine_so_it_is_flagged(bundle_factory: Callable[..., Path],
                                                           kit: types.ModuleType,
                                                           tmp_path: Path) -> None:
    """The case behind the warning: a full-integer TFLite model quantizes NaN to an ordinary
    int8 and answers with finite scores. The CLI says so, and --strict refuses."""
    _require("ai_edge_litert")
    _require("tensorflow")
    root = bundle_factory(
        artifacts={"models/tiny.int8.tflite": kit.make_tflite("int8")}, onnx_model=False,
        outputs=("y",), candidates=[kit.candidate(
            "tfl-int8", "models/tiny.int8.tflite", backend="tflite", precision="int8",
            io_map=kit.TFLITE_IO_MAP["int8"], tolerance={"y": kit.LOOSE_TOL["y"]})])
    np.save(tmp_path / "nan.npy", np.full((3, 4), np.nan, np.float32))
    proc = cli("run", "--json", "--values", str(root), "--input", str(tmp_path / "nan.npy"))
    assert proc.returncode == 0, proc.stderr
    doc = js(proc)
    assert doc["candidate"] == "tfl-int8"
    values = doc["outputs"]["y"]["values"]  # non-finite values would be null here
    assert all(v is not None for row in values for v in row), values  # finite: looks fine
    assert doc["warnings"] and doc["warnings"][0].startswith(
        "input x: 12 of 12 values are not finite (12 NaN)"), doc["warnings"]
    assert "warning: input x: 12 of 12 values are not finite (12 NaN)" in proc.stderr
    proc = cli("run", "--strict", str(root), "--input", str(tmp_path / "nan.npy"))
    assert proc.returncode == 2 and "x: 12 of 12 values are not finite" in proc.stderr


def test_model_run_check_finite_is_opt_in(bundle_dir: Path) -> None:
    """From Python: ``Model.run(..., check_finite=True)`` (off by default: it reads every
    value) and ``runtime.finite.check_finite(feeds)`` on its own."""
    from runtime.errors import FeedError
    from runtime.finite import check_finite
    from runtime.model import load

    x = np.ones((2, 4), np.float32)
    x[1, 0] = -np.inf
    with load(bundle_dir) as model:
        assert model.run({"x": x})["y"].shape == (2, 3)  # default: not checked
        with pytest.raises(FeedError) as info:
            model.run({"x": x}, check_finite=True)
        assert info.value.where == "x" and info.value.message == "1 of 8 values are not finite (1 inf)"
        assert "np.nan_to_num" in (info.value.hint or "")
        ok = model.run({"x": np.ones((2, 4), np.float32)}, check_finite=True)
        assert ok["y"].shape == (2, 3)
    with pytest.raises(FeedError, match=r"1 of 8 values are not finite \(1 inf\); also z: 1 of 1"):
        check_finite({"x": x, "n": np.arange(3), "z": np.array([np.nan])})
    check_finite({"n": np.arange(3), "x": np.ones(2, np.float16)})  # integers never, finite ok
