"""Small real ONNX models built with onnx.helper, and their manifests, for the ONNX -> TFLite tests."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

DATA = '''
import numpy as np


def images(n=48):
    """Smooth images (gradients and blobs in [0, 1]), not white noise: int8 calibrates on them."""
    rng = np.random.default_rng(1)
    yy, xx = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16), indexing="ij")
    a = rng.random((n, 3, 1, 1)); b = rng.random((n, 3, 1, 1)); c = rng.random((n, 3, 1, 1))
    x = a * yy + b * xx + c * np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) * 8)
    yield {"image": (x / x.max(axis=(2, 3), keepdims=True)).astype(np.float32)}


def tokens(n=32):
    rng = np.random.default_rng(1)
    yield {"ids": rng.integers(0, 50, (n, 6)).astype(np.int64)}
'''


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def conv_net(*, pool: bool = False, output: str = "scores") -> onnx.ModelProto:
    """image [batch, 3, 16, 16] (NCHW) -> conv, relu, strided conv, relu -> flatten (``pool``: global
    average pool, and the pooled features as a second output ``pooled`` [batch, 8]) -> linear ->
    ``output`` [batch, 5]."""
    rng = np.random.default_rng(0)
    features = 8 if pool else 8 * 8 * 8
    inits = [_init("w1", rng.normal(0, 0.4, (8, 3, 3, 3))), _init("b1", rng.normal(0, 0.1, 8)),
             _init("w2", rng.normal(0, 0.2, (8, 8, 3, 3))), _init("b2", rng.normal(0, 0.1, 8)),
             _init("wf", rng.normal(0, 0.5 if pool else 0.05, (5, features))), _init("bf", rng.normal(0, 0.1, 5))]
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"])]
    if pool:
        nodes += [helper.make_node("GlobalAveragePool", ["r2"], ["gp"]),
                  helper.make_node("Flatten", ["gp"], ["pooled"])]
    else:
        nodes.append(helper.make_node("Flatten", ["r2"], ["pooled"]))
    nodes.append(helper.make_node("Gemm", ["pooled", "wf", "bf"], [output], transB=1))
    outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 5])]
    if pool:
        outputs.append(helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 8]))
    graph = helper.make_graph(nodes, "conv_net", [helper.make_tensor_value_info(
        "image", TensorProto.FLOAT, ["batch", 3, 16, 16])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def wide_softmax_net(classes: int = 1000) -> onnx.ModelProto:
    """conv_net's features -> an untrained ``classes``-way linear layer -> softmax ``probs``: near
    uniform probabilities (about 1/classes each), which int8 rounds to zero."""
    base = conv_net()
    rng = np.random.default_rng(4)
    graph = base.graph
    graph.node[-1].output[0] = "logits"
    graph.initializer.append(_init("wc", rng.normal(0, 0.02, (classes, 5))))
    graph.initializer.append(_init("bc", np.zeros(classes)))
    graph.node.extend([helper.make_node("Gemm", ["logits", "wc", "bc"], ["z"], transB=1),
                       helper.make_node("Softmax", ["z"], ["probs"], axis=1)])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes]))
    return base


def token_net(seq: int | str = 6, label: bool = True) -> onnx.ModelProto:
    """ids int64 [batch, seq] -> embedding, mean, linear -> scores [batch, 3] and (``label``) their
    argmax (int64)."""
    rng = np.random.default_rng(0)
    inits = [_init("emb", rng.normal(0, 1, (50, 8))), _init("wf", rng.normal(0, 0.5, (3, 8))),
             _init("bf", rng.normal(0, 0.1, 3))]
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"], axis=0),
             helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),
             helper.make_node("Gemm", ["m", "wf", "bf"], ["scores"], transB=1),
             helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0)][:4 if label else 3]
    graph = helper.make_graph(nodes, "token_net", [helper.make_tensor_value_info("ids", TensorProto.INT64,
                                                                                 ["batch", seq])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3]),
                               helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])]
                              [:2 if label else 1], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def fmod_net() -> onnx.ModelProto:
    """x [batch, 8] -> Mod(fmod=1): onnxruntime runs it, onnx2tf 2.6.9 cannot lower it."""
    graph = helper.make_graph([helper.make_node("Mod", ["x", "m"], ["y"], fmod=1)], "fmod_net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
                              [_init("m", np.full(8, 1.5))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def write_project(folder: Path, model: onnx.ModelProto, targets: list[str], **doc: Any) -> Path:
    """The model as model.onnx, data.py, and a manifest (``doc`` overrides its fields)."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "data.py").write_text(DATA)
    first = model.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in first.type.tensor_type.shape.dim]
    manifest: dict[str, Any] = {
        "name": "net", "source": {"framework": "onnx", "path": "model.onnx"},
        "inputs": [{"name": first.name, "dtype": "float32", "shape": dims}],
        "outputs": [o.name for o in model.graph.output],
        "calibration": {"entry": "data.py:images", "samples": 48}, "golden": {"samples": 16},
        "targets": targets, **doc}
    path = folder / "net.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def onnx2tf_env() -> Any:
    """The installed onnx2tf converter environment, or a skip saying how to make it (a failure
    under CI=true: `make test` creates it first)."""
    import pytest

    from packager.convert.converter_env import ONNX2TF, converters_dir, installed
    env = installed(ONNX2TF)
    if env is None:
        pytest.skip(f"the {ONNX2TF.label} converter environment is not in {converters_dir()}: run "
                    "`edgepack converters install onnx2tf` (needs Python >= 3.12; `make test` runs it)")
    return env


def no_python_env(tmp_path: Path) -> dict[str, str]:
    """A subprocess environment with no Python >= 3.12 to find (empty PATH, no pyenv, no
    EDGEPACK_PYTHON312) and no converter environment made yet."""
    from packager.convert.converter_env import DIR_ENV, PYTHON_ENV

    from ...conftest import REPO
    (tmp_path / "empty-bin").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != PYTHON_ENV}
    env.update({"PATH": str(tmp_path / "empty-bin"), "PYENV_ROOT": str(tmp_path / "no-pyenv"),
                DIR_ENV: str(tmp_path / "no-converters"), "PYTHONPATH": str(REPO)})
    return env
