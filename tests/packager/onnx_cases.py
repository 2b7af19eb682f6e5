"""Small real ONNX files of the kinds users reported: old opsets with ConstantOfShape weights and
initializers kept as inputs, a sparse weight the opset converter cannot read, nodes out of order
(onnxruntime's float16 converter), and onnxruntime's transformer optimizer output."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

X_SHAPE = ("batch", 8)


def features(n: int = 48, seed: int = 1) -> np.ndarray:
    """Smooth, real-looking inputs for the [batch, 8] models."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 1)).astype(np.float32)
    return (base * np.linspace(-1, 1, 8, dtype=np.float32) + 0.1 * rng.standard_normal((n, 8))).astype(np.float32)


def ir3_constant_of_shape() -> onnx.ModelProto:
    """Opset 9, IR version 3 (initializers must be graph inputs): a bias made by ConstantOfShape
    from the initializer ``bias_SHAPE``, as converters of that time wrote it."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([4], np.int64), "bias_SHAPE")]
    nodes = [helper.make_node("ConstantOfShape", ["bias_SHAPE"], ["bias"],
                              value=numpy_helper.from_array(np.array([0.25], np.float32))),
             helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "bias"], ["z"]),
             helper.make_node("Relu", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "ir3", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE)),
                                             helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 4]),
                                             helper.make_tensor_value_info("bias_SHAPE", TensorProto.INT64, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    return model


TORCH_OLD = '''
import torch
from torch import nn


class Old(nn.Module):
    """Weights made in forward (ConstantOfShape in the export) beside real parameters."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.fc(x))
        # sized from h: exported as Shape -> ... -> ConstantOfShape, not as a stored weight
        return self.out(h * torch.full((h.shape[1],), 0.5) + torch.ones(h.shape[1]))
'''


def torch_export(path: Path, opset: int, *, keep_initializers_as_inputs: bool) -> Path:
    """The model above through the TorchScript-based exporter (dynamo=False) at ``opset``."""
    import torch
    scope: dict[str, object] = {}
    exec(compile(TORCH_OLD, "old_model.py", "exec"), scope)
    module = scope["Old"]().eval()  # type: ignore[operator]
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.from_numpy(features(2)),), buf, dynamo=False, opset_version=opset,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      keep_initializers_as_inputs=keep_initializers_as_inputs)
    path.write_bytes(buf.getvalue())
    return path


def sparse_weight() -> onnx.ModelProto:
    """Opset 11 with a pruned weight stored as a sparse Constant: onnxruntime runs it, the onnx
    version converter cannot read it ("Sparse tensors not supported")."""
    rng = np.random.default_rng(2)
    dense = rng.standard_normal((8, 4)).astype(np.float32)
    dense[np.abs(dense) < 0.8] = 0  # pruned
    flat = np.flatnonzero(dense)
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(dense.ravel()[flat], "w"),
                                       numpy_helper.from_array(flat.astype(np.int64), "w_indices"), [8, 4])
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    nodes = [helper.make_node("Constant", [], ["w"], sparse_value=sparse),
             helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
             helper.make_node("Tanh", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "sparse", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    return model


def unsorted_fp16(path: Path) -> Path:
    """A float16 model written by onnxruntime's float16 converter (float32 I/O kept): it appends
    its input Cast at the end of the node list, so the nodes are out of topological order."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    torch_export(path, 14, keep_initializers_as_inputs=False)
    half = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    onnx.save(half, str(path))
    return path


TORCH_BLOCK = '''
import torch
from torch import nn


class Block(nn.Module):
    """LayerNorm -> MLP with GELU and a residual -> LayerNorm: what the BERT optimizer fuses."""

    def __init__(self, d=16):
        super().__init__()
        torch.manual_seed(0)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, 32), nn.Linear(32, d)

    def forward(self, x):
        h = self.ln1(x)
        return self.ln2(h + self.fc2(nn.functional.gelu(self.fc1(h))))
'''


def ort_optimized_block(path: Path, opset: int = 14) -> Path:
    """A tiny transformer block exported (dynamo=False) and run through onnxruntime's transformer
    optimizer, as Optimum users get it: contrib LayerNormalization in the default domain, BiasGelu
    and SkipLayerNormalization in com.microsoft."""
    import torch
    from onnxruntime.transformers import optimizer
    scope: dict[str, object] = {}
    exec(compile(TORCH_BLOCK, "block.py", "exec"), scope)
    module = scope["Block"]().eval()  # type: ignore[operator]
    plain = path.with_name(path.stem + "-plain.onnx")
    torch.onnx.export(module, (torch.zeros(2, 5, 16),), str(plain), dynamo=False, opset_version=opset,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}})
    optimized = optimizer.optimize_model(str(plain), model_type="bert", num_heads=2, hidden_size=16, opt_level=0)
    optimized.save_model_to_file(str(path))
    return path


def block_inputs(n: int = 24) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, 5, 16)).astype(np.float32)


def write_onnx_manifest(folder: Path, model: str, inputs: np.ndarray, shape: list[object], targets: list[str],
                        **extra: object) -> Path:
    """A manifest for an ONNX file in ``folder`` with ``inputs`` as its calibration data (an npz)."""
    np.savez(folder / "calib.npz", x=inputs)
    doc = {"name": Path(model).stem.replace("_", "-"), "source": {"framework": "onnx", "path": model},
           "inputs": [{"name": "x", "dtype": "float32", "shape": shape}],
           "outputs": [{"name": "y", "scores": False}],  # features, not class scores: no top-1 check
           "calibration": {"file": "calib.npz", "samples": len(inputs)}, "golden": {"samples": 16},
           "targets": targets, **extra}
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


ALL_ONNX_TARGET = """\
name: onnx-dev
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: onnx, precision: int8, quantization: {mode: static, per_channel: true}}
  - {format: onnx, precision: int8, quantization: {mode: dynamic}}
  - {format: onnx, precision: fp16}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""
