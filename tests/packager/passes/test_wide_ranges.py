"""int8 static keeps the nodes around an attention mask's fill value in float
(packager/passes/wide_ranges.py): a real masked self-attention classifier, exported by torch,
loses its parity under plain QDQ calibration and keeps it under edgepack's pass."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from packager.config.targets import Quantization
from packager.passes import quantize
from packager.passes.wide_ranges import WIDE, name_nodes, nodes_touching, wide_tensors

torch = pytest.importorskip("torch")

SEQ, DIM, CLASSES = 12, 32, 5


class MaskedAttention(torch.nn.Module):  # type: ignore[misc, name-defined]
    """One head of self-attention with a padding mask filled as transformers does (float32 min)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, DIM)
        self.qkv = torch.nn.Linear(DIM, 3 * DIM)
        self.head = torch.nn.Linear(DIM, CLASSES)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / DIM ** 0.5
        fill = (1.0 - mask[:, None, :].to(scores.dtype)) * torch.finfo(torch.float32).min
        attn = torch.softmax(scores + fill, dim=-1)
        return self.head((attn @ v).mean(dim=1))


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 50, size=(n, SEQ)).astype(np.int64)
    lengths = rng.integers(3, SEQ + 1, size=n)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
    return {"ids": ids * mask, "mask": mask}


@pytest.fixture(scope="module")
def attention(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    torch.manual_seed(0)
    module = MaskedAttention().eval()
    path = Path(tmp_path_factory.mktemp("attn")) / "attn.onnx"
    feed = _data(2, 0)
    torch.onnx.export(module, (torch.from_numpy(feed["ids"]), torch.from_numpy(feed["mask"])), str(path),
                      input_names=["ids", "mask"], output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"ids": {0: "b"}, "mask": {0: "b"}, "logits": {0: "b"}})
    return onnx.load(str(path))


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, feed)[0])


def _error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(out - ref).max() / (ref.max() - ref.min()))


def test_plain_calibration_breaks_it_and_the_pass_keeps_the_mask_nodes_in_float(
        attention: onnx.ModelProto, tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    batches = [_data(16, seed) for seed in range(1, 5)]
    check = _data(64, 99)
    ref = _run(attention, check)

    # the fault is real: onnxruntime's QDQ quantization as it comes, on the same data
    src, dst = tmp_path / "in.onnx", tmp_path / "plain.onnx"
    onnx.save(attention, str(src))
    quantize_static(str(src), str(dst), quantize._Reader(batches), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    plain = _run(onnx.load(str(dst)), check)
    assert _error(plain, ref) > 0.1  # over the parity check's bound (10 % of the range)

    result = quantize.int8_static(attention, Quantization(per_channel=True), batches, random_data=False)
    out = _run(result.model, check)
    assert _error(out, ref) < 0.05 and _error(out, ref) < _error(plain, ref) / 3
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.95
    kept = result.details["kept_float"]
    ops = {n.name: n.op_type for n in result.model.graph.node}
    assert {ops[name] for name in kept} >= {"Add", "Softmax"}
    assert any("kept in float" in note and "-3.4e+38" in note for note in result.notes)
    # everything else is still quantized: the Linear layers' MatMul/Gemm read dequantized weights
    assert sum(n.op_type == "DequantizeLinear" for n in result.model.graph.node) >= 6


def test_a_model_without_fill_values_keeps_every_node_quantized() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 4)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
                              "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", 8])],
                              [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["b", 4])],
                              [onnx.numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = quantize.int8_static(model, Quantization(), [{"x": rng.normal(size=(16, 8)).astype(np.float32)}],
                                  random_data=False)
    assert "kept_float" not in result.details
    assert not any("kept in float" in n for n in result.notes)


def test_wide_tensors_are_fill_values_and_non_finite_ranges() -> None:
    ranges = {"scores": (-6.0, 7.5), "mask": (-3.4e38, 0.0), "old_mask": (-10000.0, 0.0), "pixels": (0.0, 255.0),
              "inf": (float("-inf"), 2.0), "big": (0.0, WIDE * 0.99)}
    assert list(wide_tensors(ranges)) == ["inf", "mask", "old_mask"]


def test_unnamed_nodes_get_names_and_named_ones_keep_theirs() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"], name="Relu_1"),
             helper.make_node("Add", ["b", "b"], ["c"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    named = name_nodes(model)
    assert [n.name for n in named.graph.node] == ["Relu_0", "Relu_1", "Add_2"]
    assert [n.name for n in model.graph.node] == ["", "Relu_1", ""]  # the input is not changed
    assert [n.name for n in nodes_touching(named, {"b": (0, 0)})] == ["Relu_1", "Add_2"]
