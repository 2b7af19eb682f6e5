"""A regular (non-editable) install works: `pip install <checkout>` into a fresh venv with only the core
dependencies (no torch, no tensorflow), then, from a folder outside the checkout, `edgepack targets`
lists the shipped targets and `edgepack build` makes an x86-cpu bundle of an ONNX model that
`python -m runtime verify` passes inside the bundle.

The venv is cached under .edgepack-cache/install/<hash of pyproject.toml and this Python>: made
and filled by a plain `pip install` the first time; on later runs only edgepack itself is
reinstalled (--no-deps --force-reinstall) from a fresh copy of the working tree, so the installed
code is always this checkout's.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.slow

VENVS = REPO / ".edgepack-cache" / "install"
SHIPPED = sorted(p.stem for p in (REPO / "packager" / "shipped_targets").glob("*.yaml"))
# what the build leaves or keeps beside the source: never part of what pip installs from a checkout
NOT_SOURCE = {".git", ".venv", ".edgepack-cache", ".pytest_cache", ".hypothesis", "build", "dist", ".edgepack"}


def _key() -> str:
    h = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    h.update(f"{sys.version}\0{getattr(sys, '_base_executable', sys.executable)}".encode())
    return h.hexdigest()[:16]


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == REPO
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))
            or (top and n in NOT_SOURCE)}


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "EDGEPACK_TARGETS_PATH")}
        self.env.update(VIRTUAL_ENV=str(root), PYTHONNOUSERSITE="1",
                        PATH=f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=cwd, env=self.env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    src = tmp_path_factory.mktemp("checkout") / "edgepack"
    shutil.copytree(REPO, src, ignore=_ignore, symlinks=True)  # the working tree, without build leftovers
    VENVS.mkdir(parents=True, exist_ok=True)
    root = VENVS / _key()
    with open(VENVS / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest run on this checkout waits for ours
        v = Venv(root)
        stamp = root / ".installed"
        if stamp.is_file():  # dependencies cached: reinstall edgepack itself from this working tree
            proc = v.run(str(v.python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(src),
                         cwd=src.parent)
        else:
            shutil.rmtree(root, ignore_errors=True)
            made = subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, text=True,
                                  timeout=600)
            assert made.returncode == 0, made.stderr
            proc = v.run(str(v.python), "-m", "pip", "install", "-q", str(src), cwd=src.parent)
        assert proc.returncode == 0, f"pip install of the checkout failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        stamp.write_text("pip install <checkout> with the core dependencies\n")
        yield v


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder where the checkout is not importable (no ./packager, ./runtime, ./targets)."""
    folder = tmp_path_factory.mktemp("outside")
    assert not folder.resolve().is_relative_to(REPO.resolve())
    return folder


def test_the_install_is_regular_and_has_only_the_core_dependencies(venv: Venv, outside: Path) -> None:
    probe = venv.run(str(venv.python), "-c", """if True:
        import importlib.metadata as md, importlib.util as u, json, sys, sysconfig
        import packager, runtime
        print(json.dumps({
            "packager": packager.__file__, "runtime": runtime.__file__,
            "site": sysconfig.get_paths()["purelib"], "path": sys.path,
            "direct_url": json.loads(md.distribution("edgepack").read_text("direct_url.json")),
            "missing": [m for m in ("torch", "tensorflow", "litert_torch") if u.find_spec(m) is None],
            "present": [m for m in ("numpy", "yaml", "onnx", "onnxruntime", "onnxsim", "cryptography")
                        if u.find_spec(m) is not None]}))""", cwd=outside)
    assert probe.returncode == 0, probe.stderr
    info = json.loads(probe.stdout)
    site = Path(info["site"]).resolve()
    assert site.is_relative_to(venv.root.resolve())
    for module in ("packager", "runtime"):  # imported from site-packages, never from the checkout
        assert Path(info[module]).resolve().parent == site / module, info[module]
    leaks = [p for p in info["path"] if Path(p or outside).resolve().is_relative_to(REPO.resolve())
             and not Path(p).resolve().is_relative_to(venv.root.resolve())]  # the cached venv lives in the repo
    assert leaks == [], info["path"]
    assert info["direct_url"].get("dir_info", {}).get("editable", False) is False, info["direct_url"]
    assert not list(site.glob("__editable__*")) and not any(
        str(REPO) in p.read_text() for p in site.glob("*.pth")), "no editable finder or .pth into the checkout"
    assert info["missing"] == ["torch", "tensorflow", "litert_torch"]
    assert info["present"] == ["numpy", "yaml", "onnx", "onnxruntime", "onnxsim", "cryptography"]
    shipped = site / "packager" / "shipped_targets"
    assert sorted(p.stem for p in shipped.glob("*.yaml")) == SHIPPED


def test_targets_lists_the_shipped_targets(venv: Venv, outside: Path) -> None:
    plain = venv.run("edgepack", "targets", cwd=outside)
    assert plain.returncode == 0, plain.stderr
    assert all(name in plain.stdout for name in SHIPPED), plain.stdout
    proc = venv.run("edgepack", "targets", "--check", "--json", cwd=outside)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    targets = json.loads(proc.stdout)["targets"]
    assert [t["name"] for t in targets] == SHIPPED == ["jetson-orin-nano", "rpi4", "rpi5", "x86-cpu", "x86-cuda"]
    assert all("error" not in t for t in targets)
    site = venv.root.resolve()
    assert all(Path(t["file"]).resolve().is_relative_to(site) for t in targets), [t["file"] for t in targets]


def write_onnx_project(folder: Path) -> Path:
    """A small MLP written with onnx.helper, smooth calibration data and its manifest."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir()
    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((8, 16)) * 0.5, "b1": rng.standard_normal(16) * 0.1,
               "w2": rng.standard_normal((16, 4)) * 0.5}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "mlp.onnx"))
    ramp = np.linspace(0, 1, 8, dtype=np.float32)
    mix = rng.random((128, 1)).astype(np.float32)
    np.savez(folder / "calib.npz", x=(mix * ramp + (1 - mix) * ramp[::-1]).astype(np.float32))
    manifest = folder / "mlp.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "mlp",
        "source": {"framework": "onnx", "path": "mlp.onnx"},
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 8]}],
        "outputs": ["y"],
        "calibration": {"file": "calib.npz", "samples": 128},
        "golden": {"samples": 16},
        "targets": ["x86-cpu"],
    }, sort_keys=False))
    return manifest


def test_build_and_verify_an_onnx_bundle(venv: Venv, outside: Path) -> None:
    manifest = write_onnx_project(outside / "project")
    out = outside / "dist"
    proc = venv.run("edgepack", "build", str(manifest), "--target", "x86-cpu", "--out", str(out), "--json",
                    cwd=outside)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert result["ok"] and [t["target"] for t in result["targets"]] == ["x86-cpu"]
    bundle = out / "mlp-x86-cpu"
    doc = json.loads((bundle / "bundle.json").read_text())
    # x86-cpu asks for ONNX int8, ONNX fp32 and TorchScript fp32; an ONNX source has no TorchScript route
    assert [c["id"] for c in doc["candidates"]] == ["onnx-int8-static-pc", "onnx-fp32"]
    assert [(s["candidate"], s["status"]) for s in doc["skipped"]] == [("torchscript-fp32", "unsupported")]
    assert doc["target"]["name"] == "x86-cpu"
    assert (bundle / "runtime" / "__main__.py").is_file()  # the runtime travels inside the bundle
    assert (out / "mlp-x86-cpu.tar.gz").is_file()

    verify = venv.run(str(venv.python), "-m", "runtime", "verify", "--all", "--json", cwd=bundle)
    assert verify.returncode == 0, verify.stderr + verify.stdout
    report = json.loads(verify.stdout)
    assert report["passed"] is True
    assert {c["candidate"]: c["passed"] for c in report["candidates"]} == {
        "onnx-int8-static-pc": True, "onnx-fp32": True}
