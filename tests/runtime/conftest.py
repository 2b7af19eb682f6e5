"""Builds real test bundles without the packager: a tiny ONNX model, golden data, runtime copy."""
from __future__ import annotations

import functools
import io
import json
import os
import sys
import tarfile
import types
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from packager.bundle.writer import copy_runtime
from runtime.bundle import BUNDLE_FILE, SCHEMA_VERSION, list_bundle_files

from .. import device_env

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


LOOSE_TOL = {"y": {"atol": 0.1, "rtol": 0.0, "min_cosine": 0.99, "min_top1": 0.9,
                   "max_mismatch": 0.0},
             "label": {"atol": None, "rtol": 0.0, "min_cosine": None, "min_top1": None,
                       "max_mismatch": 0.25}}

FORMATS = {"onnxruntime": "onnx", "tflite": "tflite", "torchscript": "torchscript"}
DEFAULT_PROVIDERS = {"onnxruntime": ["CPUExecutionProvider"], "tflite": ["XNNPACK"],
                     "torchscript": ["cpu"]}


def candidate(cid: str, file: str = "models/tiny.fp32.onnx", *,
              providers: list[str] | None = None, backend: str = "onnxruntime",
              precision: str = "fp32", provider_options: list[dict[str, Any]] | None = None,
              tolerance: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A candidate entry; ``extra`` adds backend fields (io_map, quantized_engine, ...)."""
    providers = providers or list(DEFAULT_PROVIDERS.get(backend, ["CPUExecutionProvider"]))
    doc = {"id": cid, "file": file, "format": FORMATS.get(backend, "onnx"),
           "precision": precision, "quantization": None, "backend": backend,
           "providers": providers,
           "provider_options": provider_options or [{} for _ in providers], "threads": 1,
           "tolerance": dict(tolerance or FP32_TOL), "parity": {"passed": True, "outputs": []},
           "notes": []}
    doc.update(extra)
    return doc


# --------------------------------------------------------------------------- real artifacts
# Built once per session (conversion takes seconds); frameworks imported only when asked for.

def _calibration(n: int = 64) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((n, 4)).astype(np.float32)


@functools.cache
def make_tflite(kind: str = "fp32") -> bytes:
    """The tiny model as TFLite from Keras. ``fp32``: outputs [y, label] (signature keys
    output_0/output_1, so io_map is needed); ``int8``: full integer with int8 input/output,
    output y only (output_0)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    x = keras.Input(shape=(4,), name="x")
    dense = keras.layers.Dense(3, activation="relu", name="dense")
    y = dense(x)
    if kind == "fp32":
        label = keras.layers.Lambda(
            lambda t: tf.math.argmax(t, axis=-1, output_type=tf.int64), name="label")(y)
        model = keras.Model(x, [y, label])
    else:
        model = keras.Model(x, y)
    dense.set_weights([W, B])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind == "int8":
        calib = _calibration()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif kind != "fp32":
        raise ValueError(kind)
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected"
        warnings.simplefilter("ignore")
        return bytes(conv.convert())


TFLITE_IO_MAP = {"fp32": {"inputs": {}, "outputs": {"y": "output_0", "label": "output_1"}},
                 "int8": {"outputs": {"y": "output_0"}}}


def torch_module(kind: str = "fp32") -> Any:
    """The tiny model in torch (eval mode); ``dict``: returns {"y", "label"}."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self, as_dict: bool = False) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)
            self.as_dict = as_dict
            with torch.no_grad():
                self.fc.weight.copy_(torch.from_numpy(W.T.copy()))
                self.fc.bias.copy_(torch.from_numpy(B))

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.fc(x))
            label = torch.argmax(y, dim=-1)
            return {"y": y, "label": label} if self.as_dict else (y, label)

    return Tiny(as_dict=kind == "dict").eval()


@functools.cache
def make_torchscript(kind: str = "fp32") -> bytes:
    """TorchScript bytes via torch.jit.trace: fp32, dict (dict output), fp16 (.half()), int8
    (quantize_dynamic on Linear, with the x86 engine where torch has it)."""
    import torch

    module = torch_module(kind)
    example = torch.from_numpy(_calibration(2))
    if kind == "fp16":
        module, example = module.half(), example.half()
    elif kind == "int8":
        engines = torch.backends.quantized.supported_engines
        before = torch.backends.quantized.engine
        torch.backends.quantized.engine = "x86" if "x86" in engines else "qnnpack"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear},
                                                                dtype=torch.qint8)
        finally:
            torch.backends.quantized.engine = before
    elif kind not in ("fp32", "dict"):
        raise ValueError(kind)
    with torch.no_grad(), warnings.catch_warnings():  # deprecations of jit / torch.ao
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, strict=kind != "dict")
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    return buf.getvalue()


def write_bundle_json(root: Path, doc: dict[str, Any]) -> None:
    """(Re)write bundle.json with a fresh files section."""
    doc = dict(doc)
    doc["files"] = list_bundle_files(root)
    (root / BUNDLE_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True))


def build_bundle(dest: Path, *, candidates: list[dict[str, Any]] | None = None,
                 batched: bool = True, samples: int = 8, perturb: float = 0.0,
                 corrupt_files: tuple[str, ...] = (), artifacts: Mapping[str, bytes] = {},
                 outputs: tuple[str, ...] = ("y", "label"), onnx_model: bool = True,
                 requirements: str = "numpy\nonnxruntime\n") -> Path:
    """A complete bundle dir: model, golden data (optionally perturbed), runtime copy, json.

    ``artifacts`` adds model files (relpath -> bytes, e.g. from make_tflite); ``outputs``
    limits the signature and golden outputs (an int8 TFLite model has only ``y``).
    """
    root = dest / "tiny-cpu"
    root.mkdir(parents=True)
    if onnx_model:
        make_onnx(root / "models" / "tiny.fp32.onnx")
    for rel, data in artifacts.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for rel in corrupt_files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"this is not an onnx model\x00\x01\x02")
    x = np.random.default_rng(1).standard_normal((samples, 4)).astype(np.float32)
    out = {k: v for k, v in reference(x).items() if k in outputs}
    if perturb:
        out["y"] = out["y"] + np.float32(perturb)
    (root / "golden").mkdir()
    if batched:
        np.savez(root / "golden" / "inputs.npz", x=x)
        np.savez(root / "golden" / "outputs.npz", **out)
    else:  # one entry per sample, each a batch of one
        np.savez(root / "golden" / "inputs.npz", x=x[:, None, :])
        np.savez(root / "golden" / "outputs.npz", **{k: v[:, None] for k, v in out.items()})
    copy_runtime(root / "runtime")  # as the packager does: __pycache__ blocked
    (root / "requirements.txt").write_text(requirements)
    (root / "README.md").write_text("python -m runtime verify\n")
    doc = {
        "schema_version": SCHEMA_VERSION, "name": "tiny",
        "target": {"name": "cpu", "description": "test", "arch": "x86_64", "python": "3.11",
                   "threads": 1},
        "signature": {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4],
                        "layout": "NC"}],
            "outputs": [o for o in (
                {"name": "y", "dtype": "float32", "shape": ["batch", 3], "scores": True},
                {"name": "label", "dtype": "int64", "shape": ["batch"]}) if o["name"] in outputs]},
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


# --------------------------------------------------------------------------- isolation

only_these_packages = device_env.only_these_packages
run_isolated = device_env.run_isolated


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
