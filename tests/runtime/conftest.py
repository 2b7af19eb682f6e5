"""Builds real test bundles without the packager: a tiny ONNX model, golden data, runtime copy."""
from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.bundle import BUNDLE_FILE, SCHEMA_VERSION, list_bundle_files

REPO = Path(__file__).resolve().parents[2]
RUNTIME_SRC = REPO / "runtime"

W = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
B = np.array([0.5, 0.2, 0.1], dtype=np.float32)


def make_onnx(path: Path) -> None:
    """x float32[batch,4] -> y = relu(x @ W + b) float32[batch,3], label = argmax(y) int64[batch]."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"]),
         helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0)],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    y = np.maximum(x @ W + B, 0).astype(np.float32)
    return {"y": y, "label": np.argmax(y, axis=-1).astype(np.int64)}


FP32_TOL = {"y": {"atol": 1e-4, "rtol": 1e-3, "min_cosine": 0.99999, "min_top1": None,
                  "max_mismatch": 0.0},
            "label": {"atol": None, "rtol": 0.0, "min_cosine": None, "min_top1": None,
                      "max_mismatch": 0.0}}


def candidate(cid: str, file: str = "models/tiny.fp32.onnx", *,
              providers: list[str] | None = None, backend: str = "onnxruntime",
              precision: str = "fp32") -> dict[str, Any]:
    providers = providers or ["CPUExecutionProvider"]
    return {"id": cid, "file": file, "format": "onnx", "precision": precision,
            "quantization": None, "backend": backend, "providers": providers,
            "provider_options": [{} for _ in providers], "threads": 1,
            "tolerance": FP32_TOL, "parity": {"passed": True, "outputs": []}, "notes": []}


def write_bundle_json(root: Path, doc: dict[str, Any]) -> None:
    """(Re)write bundle.json with a fresh files section."""
    doc = dict(doc)
    doc["files"] = list_bundle_files(root)
    (root / BUNDLE_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True))


def build_bundle(dest: Path, *, candidates: list[dict[str, Any]] | None = None,
                 batched: bool = True, samples: int = 8, perturb: float = 0.0,
                 corrupt_files: tuple[str, ...] = ()) -> Path:
    """A complete bundle dir: model, golden data (optionally perturbed), runtime copy, json."""
    root = dest / "tiny-cpu"
    root.mkdir(parents=True)
    make_onnx(root / "models" / "tiny.fp32.onnx")
    for rel in corrupt_files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"this is not an onnx model\x00\x01\x02")
    x = np.random.default_rng(1).standard_normal((samples, 4)).astype(np.float32)
    out = reference(x)
    if perturb:
        out["y"] = out["y"] + np.float32(perturb)
    (root / "golden").mkdir()
    if batched:
        np.savez(root / "golden" / "inputs.npz", x=x)
        np.savez(root / "golden" / "outputs.npz", **out)
    else:  # one entry per sample, each a batch of one
        np.savez(root / "golden" / "inputs.npz", x=x[:, None, :])
        np.savez(root / "golden" / "outputs.npz", **{k: v[:, None] for k, v in out.items()})
    shutil.copytree(RUNTIME_SRC, root / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "requirements.txt").write_text("numpy\nonnxruntime\n")
    (root / "README.md").write_text("python -m runtime verify\n")
    doc = {
        "schema_version": SCHEMA_VERSION, "name": "tiny",
        "target": {"name": "cpu", "description": "test", "arch": "x86_64", "python": "3.11",
                   "threads": 1},
        "signature": {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4],
                        "layout": "NC"}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 3], "scores": True},
                        {"name": "label", "dtype": "int64", "shape": ["batch"]}]},
        "candidates": candidates if candidates is not None else [candidate("onnx-fp32")],
        "golden": {"inputs": "golden/inputs.npz", "outputs": "golden/outputs.npz",
                   "samples": samples, "batched": batched, "source": "test"},
        "fallbacks": [], "warnings": [], "provenance": {"edgepack": "0.1.0"},
    }
    write_bundle_json(root, doc)
    return root


def make_archive(root: Path, dest: Path | None = None) -> Path:
    """Deterministic .tar.gz with the bundle under one top-level folder."""
    dest = dest or root.parent / f"{root.name}.tar.gz"
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted([root, *root.rglob("*")]):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root.parent).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_dir():
                tar.addfile(info)
            else:
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    return dest


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"x", **attrs: Any) -> None:
    """Add a raw member (for unsafe-archive tests)."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if attrs.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.size else None)


@pytest.fixture
def bundle_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def factory(**kwargs: Any) -> Path:
        return build_bundle(tmp_path / f"b{next(counter)}", **kwargs)

    return factory


@pytest.fixture
def bundle_dir(bundle_factory: Callable[..., Path]) -> Path:
    return bundle_factory()


@pytest.fixture
def bundle_tar(bundle_dir: Path) -> Path:
    return make_archive(bundle_dir)


@pytest.fixture(scope="session")
def kit() -> types.ModuleType:
    """This module's helpers, for tests (avoids `import conftest`, which clashes across dirs)."""
    return sys.modules[__name__]
