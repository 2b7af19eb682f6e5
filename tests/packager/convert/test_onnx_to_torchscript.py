"""ONNX -> TorchScript through edgepack's op table: each op against onnxruntime on a one-node
graph; whole graphs torch exported (embedding, LSTM, GRU, attention, LayerNorm, GELU; opsets 11
and 17) traced and run at other batch sizes and lengths than the trace's; an axis the trace
froze recorded as fixed; int8 dynamic quantizing the converted Linear / LSTM layers; ops without
a torch counterpart refused by name."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from onnx import TensorProto, helper, numpy_helper

from packager.config.manifest import Manifest, load_manifest
from packager.convert.onnx_to_torchscript import onnx_to_torchscript
from packager.convert.onnx_torch import OPS, Unconvertible, to_module, unsupported_ops
from packager.errors import UnsupportedError

RNG = np.random.default_rng(0)
F = TensorProto.FLOAT


def _graph(node: onnx.NodeProto, feeds: dict[str, np.ndarray], consts: dict[str, np.ndarray],
           n_out: int = 1, opset: int = 17) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for k, v in feeds.items()]
    outputs = [onnx.ValueInfoProto(name=o) for o in list(node.output)[:n_out]]  # types inferred by onnxruntime
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    model = helper.make_model(helper.make_graph([node], "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# (label, node, feeds, constants, opset): each a one-node graph onnxruntime runs as the reference
CASES: list[tuple[str, onnx.NodeProto, dict[str, np.ndarray], dict[str, np.ndarray], int]] = [
    ("conv-group-stride", helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, strides=[2, 1],
                                           pads=[1, 0, 1, 2], dilations=[1, 2]),
     {"x": f32(1, 4, 9, 10)}, {"w": f32(6, 2, 3, 3), "b": f32(6)}, 17),
    ("conv-same-upper", helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2]),
     {"x": f32(1, 3, 9, 8)}, {"w": f32(4, 3, 3, 3)}, 17),
    ("conv1d", helper.make_node("Conv", ["x", "w"], ["y"], pads=[2, 2]), {"x": f32(2, 3, 11)}, {"w": f32(5, 3, 5)}, 13),
    ("conv-transpose", helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                                        output_padding=[1, 1]),
     {"x": f32(1, 4, 5, 5)}, {"w": f32(4, 3, 3, 3), "b": f32(3)}, 17),
    ("maxpool-ceil", helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
     {"x": f32(1, 2, 8, 8)}, {}, 17),
    ("maxpool-asym-pads", helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[0, 0, 1, 1]),
     {"x": f32(1, 2, 5, 5)}, {}, 17),
    ("avgpool-include", helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                         count_include_pad=1), {"x": f32(1, 2, 6, 6)}, {}, 17),
    ("avgpool-exclude", helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
     {"x": f32(1, 2, 6, 6)}, {}, 17),
    ("batchnorm", helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3),
     {"x": f32(2, 3, 4, 4)}, {"s": f32(3), "b": f32(3), "m": f32(3), "v": np.abs(f32(3)) + 0.5}, 15),
    ("instancenorm", helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"]),
     {"x": f32(2, 3, 4, 4)}, {"s": f32(3), "b": f32(3)}, 17),
    ("layernorm-axis", helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-2),
     {"x": f32(2, 3, 4, 5)}, {"s": f32(4, 5), "b": f32(4, 5)}, 17),
    ("groupnorm-18", helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2),
     {"x": f32(2, 4, 3, 3)}, {"s": f32(2), "b": f32(2)}, 18),
    ("gemm-trans", helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=1, alpha=0.5, beta=2.0),
     {"a": f32(4, 3)}, {"b": f32(4, 5), "c": f32(5)}, 13),
    ("gemm-linear", helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.5),
     {"a": f32(2, 4)}, {"b": f32(5, 4), "c": f32(1, 5)}, 13),
    ("matmul-3d", helper.make_node("MatMul", ["a", "b"], ["y"]), {"a": f32(2, 3, 4), "b": f32(2, 4, 5)}, {}, 13),
    ("softmax-11-flattens", helper.make_node("Softmax", ["x"], ["y"], axis=1), {"x": f32(2, 3, 4)}, {}, 11),
    ("logsoftmax-13", helper.make_node("LogSoftmax", ["x"], ["y"], axis=1), {"x": f32(2, 3, 4)}, {}, 13),
    ("reducemean-18-input", helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0),
     {"x": f32(2, 3, 4)}, {"axes": i64(-1, 0)}, 18),
    ("reducemax-attr", helper.make_node("ReduceMax", ["x"], ["y"], axes=[1]), {"x": f32(2, 3, 4)}, {}, 13),
    ("reducel2", helper.make_node("ReduceL2", ["x"], ["y"], keepdims=1), {"x": f32(2, 3)}, {}, 13),
    ("argmax-last", helper.make_node("ArgMax", ["x"], ["y"], axis=1, select_last_index=1, keepdims=0),
     {"x": np.array([[1, 3, 3, 0], [2, 2, 1, 2]], np.float32)}, {}, 13),
    ("slice-negative-step", helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"]),
     {"x": f32(3, 8)}, {"s": i64(-1), "e": i64(-9223372036854775807), "a": i64(1), "st": i64(-2)}, 13),
    ("slice-clamped", helper.make_node("Slice", ["x", "s", "e", "a"], ["y"]),
     {"x": f32(3, 8)}, {"s": i64(-100, 2), "e": i64(2, 9223372036854775807), "a": i64(0, 1)}, 13),
    ("gather-negative", helper.make_node("Gather", ["x", "i"], ["y"], axis=1),
     {"x": f32(2, 5, 3)}, {"i": np.array([[0, -1], [2, 4]], np.int64)}, 13),
    ("gather-elements", helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1),
     {"x": f32(2, 4)}, {"i": np.array([[0, -1, 2], [3, 1, 1]], np.int64)}, 13),
    ("gathernd-batch", helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=1),
     {"x": f32(2, 3, 4)}, {"i": np.array([[[1], [2]], [[0], [0]]], np.int64)}, 13),
    ("scatternd", helper.make_node("ScatterND", ["x", "i", "u"], ["y"]),
     {"x": f32(4, 3)}, {"i": np.array([[1], [3]], np.int64), "u": f32(2, 3)}, 13),
    ("split-sizes", helper.make_node("Split", ["x", "s"], ["y", "z"], axis=1),
     {"x": f32(2, 5)}, {"s": i64(2, 3)}, 13),
    ("split-18-uneven", helper.make_node("Split", ["x"], ["y", "z", "w"], axis=1, num_outputs=3),
     {"x": f32(2, 7)}, {}, 18),
    ("resize-nearest", helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest",
                                        coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     {"x": f32(1, 2, 3, 4)}, {"s": np.array([1, 1, 2, 2], np.float32)}, 13),
    ("resize-linear-half-pixel", helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear"),
     {"x": f32(1, 2, 3, 4)}, {"s": np.array([1, 1, 2, 3], np.float32)}, 13),
    ("resize-linear-align-sizes", helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear",
                                                   coordinate_transformation_mode="align_corners"),
     {"x": f32(1, 2, 3, 4)}, {"sz": i64(1, 2, 7, 5)}, 13),
    ("pad-reflect", helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect"),
     {"x": f32(1, 2, 4, 5)}, {"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}, 13),
    ("pad-constant-value", helper.make_node("Pad", ["x", "p", "v"], ["y"]),
     {"x": f32(2, 3)}, {"p": i64(1, 0, 0, 2), "v": np.array(1.5, np.float32)}, 13),
    ("clip-11", helper.make_node("Clip", ["x", "lo", "hi"], ["y"]), {"x": f32(3, 4)},
     {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}, 13),
    ("clip-6-attrs", helper.make_node("Clip", ["x"], ["y"], min=-0.2, max=0.3), {"x": f32(3, 4)}, {}, 9),
    ("expand-bidirectional", helper.make_node("Expand", ["x", "s"], ["y"]), {"x": f32(3, 1)}, {"s": i64(2, 1, 4)}, 13),
    ("tile", helper.make_node("Tile", ["x", "r"], ["y"]), {"x": f32(2, 3)}, {"r": i64(2, 3)}, 13),
    ("cumsum-exclusive-reverse", helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=1, reverse=1),
     {"x": f32(3, 4)}, {"a": np.array(1, np.int64)}, 13),
    ("trilu-lower", helper.make_node("Trilu", ["x", "k"], ["y"], upper=0), {"x": f32(4, 4)},
     {"k": np.array(1, np.int64)}, 14),
    ("where", helper.make_node("Where", ["c", "a", "b"], ["y"]), {"a": f32(2, 3), "b": f32(1, 3)},
     {"c": np.array([[True, False, True], [False, False, True]])}, 13),
    ("pow-float", helper.make_node("Pow", ["x", "p"], ["y"]), {"x": np.abs(f32(3, 3))},
     {"p": np.array(1.7, np.float32)}, 13),
    ("div-int-truncates", helper.make_node("Div", ["a", "b"], ["y"]), {"a": np.array([7, -7, 9], np.int64)},
     {"b": np.array([2, 2, -4], np.int64)}, 13),
    ("mod-python", helper.make_node("Mod", ["a", "b"], ["y"]), {"a": np.array([7, -7, 9], np.int64)},
     {"b": np.array([3, 3, -4], np.int64)}, 13),
    ("selu", helper.make_node("Selu", ["x"], ["y"]), {"x": f32(3, 3)}, {}, 13),
    ("hardsigmoid", helper.make_node("HardSigmoid", ["x"], ["y"], alpha=0.3), {"x": f32(3, 3)}, {}, 13),
    ("prelu", helper.make_node("PRelu", ["x", "s"], ["y"]), {"x": f32(2, 3, 2)}, {"s": f32(3, 1)}, 13),
    ("gelu-tanh", helper.make_node("Gelu", ["x"], ["y"], approximate="tanh"), {"x": f32(3, 3)}, {}, 20),
    ("depth-to-space-crd", helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD"),
     {"x": f32(1, 8, 2, 3)}, {}, 13),
    ("depth-to-space-dcr", helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2), {"x": f32(1, 8, 2, 3)}, {}, 13),
    ("space-to-depth", helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2), {"x": f32(1, 2, 4, 6)}, {}, 13),
    ("einsum", helper.make_node("Einsum", ["a", "b"], ["y"], equation="bij,bjk->bik"),
     {"a": f32(2, 3, 4), "b": f32(2, 4, 5)}, {}, 13),
    ("topk", helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=1, largest=0), {"x": f32(3, 6)},
     {"k": i64(2)}, 13),
    ("onehot", helper.make_node("OneHot", ["i", "d", "v"], ["y"], axis=0), {"i": np.array([0, 2, -1], np.int64)},
     {"d": np.array(4, np.int64), "v": np.array([0.5, 2.0], np.float32)}, 13),
]


@pytest.mark.parametrize("label", [c[0] for c in CASES])
def test_each_op_computes_what_onnxruntime_computes(label: str) -> None:
    _, node, feeds, consts, opset = next(c for c in CASES if c[0] == label)
    n_out = len(node.output)
    model = _graph(node, feeds, consts, n_out, opset)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    module = to_module(model, list(feeds), list(node.output))
    got = module(*[torch.from_numpy(v) for v in feeds.values()])
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert tuple(g.shape) == w.shape, label
        np.testing.assert_allclose(g.detach().numpy().astype(np.float64), w.astype(np.float64), rtol=1e-5,
                                   atol=1e-5, err_msg=label)


def test_the_op_table_covers_what_the_zoo_and_torch_exporters_write() -> None:
    wanted = {"Add", "Transpose", "Conv", "Gemm", "Concat", "Reshape", "MatMul", "Mul", "Relu", "Gather", "Shape",
              "Squeeze", "Slice", "Softmax", "ReduceMean", "LayerNormalization", "Unsqueeze", "Div", "Erf", "Expand",
              "GlobalAveragePool", "Cast", "Where", "And", "IsNaN", "Tanh", "Range", "Clip", "Max", "GatherND",
              "Equal", "GreaterOrEqual", "Split", "MaxPool", "Resize", "Sub", "Not", "Pow", "Flatten",
              "GatherElements", "CumSum", "Sigmoid", "ConvTranspose", "GRU", "LessOrEqual", "LSTM", "Sqrt", "Exp",
              "Less", "ConstantOfShape", "Pad", "InstanceNormalization", "BatchNormalization"}
    assert wanted - set(OPS) == set()


class Encoder(torch.nn.Module):
    """Embedding, a bidirectional LSTM, a GRU, masked self-attention with LayerNorm and GELU, mean pooling."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 16)
        self.lstm = torch.nn.LSTM(16, 8, batch_first=True, bidirectional=True)
        self.gru = torch.nn.GRU(16, 16, batch_first=True)
        self.qkv = torch.nn.Linear(16, 48)
        self.norm = torch.nn.LayerNorm(16)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        x, _ = self.lstm(x)
        x, _ = self.gru(x)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = (q @ k.transpose(1, 2)) / 4.0 + (mask[:, None, :] == 0).float() * -1e4
        a = torch.softmax(scores, dim=-1) @ v
        x = self.norm(x + torch.nn.functional.gelu(a))
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled)


def _manifest(folder: Path, model: onnx.ModelProto, inputs: list[dict[str, Any]], outputs: list[str]) -> Manifest:
    onnx.save(model, str(folder / "m.onnx"))
    doc = {"name": "m", "source": {"framework": "onnx", "path": "m.onnx"}, "inputs": inputs,
           "outputs": [{"name": o, "scores": False} for o in outputs], "calibration": {"random": True, "samples": 8},
           "targets": ["x86-cpu"]}
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    return load_manifest(folder / "m.yaml")


def _tokens(batch: int, seq: int) -> dict[str, np.ndarray]:
    ids = RNG.integers(1, 50, (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq // 2:] = 0
    return {"ids": ids, "mask": mask}


def _export(opset: int) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(Encoder().eval(), tuple(torch.from_numpy(v) for v in _tokens(2, 6).values()), buf,
                      input_names=["ids", "mask"], output_names=["logits"], opset_version=opset, dynamo=False,
                      dynamic_axes={"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}})
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("opset", [11, 14, 17])
def test_an_exported_encoder_keeps_its_batch_and_sequence_axes_dynamic(tmp_path: Path, opset: int) -> None:
    model = _export(opset)
    manifest = _manifest(tmp_path, model, [{"name": "ids", "dtype": "int64", "shape": ["batch", "seq"]},
                                           {"name": "mask", "dtype": "int64", "shape": ["batch", "seq"]}], ["logits"])
    result = onnx_to_torchscript(model, manifest, _tokens(2, 6), precision="fp32", arch="x86_64")
    assert result.notes == [] and result.details["dynamic_axes_checked"] == ["batch x2", "seq x2"]
    assert "static_axes" not in result.details and "static_batch" not in result.details
    assert result.details["submodules"] >= 3  # the LSTM, the GRU and the Linear layers as torch modules
    traced = torch.jit.load(io.BytesIO(result.data))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch, seq in ((1, 3), (3, 11), (2, 6)):
        feeds = _tokens(batch, seq)
        (want,) = session.run(None, feeds)
        got = traced(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_int8_dynamic_quantizes_the_converted_linear_and_recurrent_layers(tmp_path: Path) -> None:
    model = _export(17)
    manifest = _manifest(tmp_path, model, [{"name": "ids", "dtype": "int64", "shape": ["batch", "seq"]},
                                           {"name": "mask", "dtype": "int64", "shape": ["batch", "seq"]}], ["logits"])
    result = onnx_to_torchscript(model, manifest, _tokens(2, 6), precision="int8", arch="x86_64")
    assert result.details["quantized_modules"] >= 3 and result.details["quantized_engine"] == "x86"
    feeds = _tokens(4, 9)
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = torch.jit.load(io.BytesIO(result.data))(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
    assert not np.allclose(got, want, rtol=0, atol=1e-7)  # really int8 ...
    cosine = float(np.dot(got.ravel(), want.ravel()) / np.linalg.norm(got) / np.linalg.norm(want))
    assert cosine > 0.99  # ... and still the same function


def test_an_axis_the_trace_froze_is_recorded_as_fixed(tmp_path: Path) -> None:
    """SAME_UPPER padding with stride 2 depends on the input's length; the trace keeps the pads
    of the example's length (9: 2 in all), wrong at 18 (1): the width is recorded as fixed."""
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[1, 2])
    x = helper.make_tensor_value_info("x", F, ["batch", 2, 4, "width"])
    y = helper.make_tensor_value_info("y", F, None)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(f32(3, 2, 3, 3), "w")]),
                              opset_imports=[helper.make_opsetid("", 13)])
    manifest = _manifest(tmp_path, model, [{"name": "x", "dtype": "float32", "shape": ["batch", 2, 4, "width"]}],
                         ["y"])
    result = onnx_to_torchscript(model, manifest, {"x": f32(2, 2, 4, 9)}, precision="fp32", arch="x86_64")
    assert result.details["static_axes"] == {"x": {"3": 9}} and result.details["dynamic_axes_checked"] == ["batch x2"]
    assert len(result.notes) == 1 and result.notes[0].startswith("the trace fixed x axis 3 = 9")
    assert "the runtime refuses other lengths" in result.notes[0]


def test_ops_without_a_torch_counterpart_are_refused_by_name(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("FastGelu", ["r"], ["g"], domain="com.microsoft"),
             helper.make_node("Hardmax", ["g"], ["y"])]
    x = helper.make_tensor_value_info("x", F, ["batch", 4])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", F, None)]),
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    assert unsupported_ops(model) == ["com.microsoft.FastGelu", "Hardmax"]
    with pytest.raises(Unconvertible, match="FastGelu, Hardmax"):
        to_module(model, ["x"], ["y"])
    manifest = _manifest(tmp_path, model, [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}], ["y"])
    with pytest.raises(UnsupportedError) as info:
        onnx_to_torchscript(model, manifest, {"x": f32(2, 4)}, precision="fp32", arch="x86_64")
    assert info.value.message == "ONNX -> TorchScript: no torch counterpart for op(s) com.microsoft.FastGelu, Hardmax"
    assert "give the original PyTorch model" in (info.value.hint or "")


def test_a_node_form_torch_lacks_is_named_with_the_reason(tmp_path: Path) -> None:
    node = helper.make_node("GRU", ["x", "w", "r"], ["y"], hidden_size=4)  # linear_before_reset=0
    x = helper.make_tensor_value_info("x", F, ["seq", 1, 3])
    model = helper.make_model(helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", F, None)],
                                                [numpy_helper.from_array(f32(1, 12, 3), "w"),
                                                 numpy_helper.from_array(f32(1, 12, 4), "r")]),
                              opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(Unconvertible, match="linear_before_reset=0"):
        to_module(model, ["x"], ["y"])
