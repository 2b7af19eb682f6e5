"""What a whole-tensor SNR hides, counted in by the per-node table and used by the search: one
huge channel that rounds the others away (``channel_snr``), and a view node (Slice, Reshape)
exposing error made where its input's range was set (``blame_range_setters``). Real models: a
YOLO-style head slicing probabilities out of a tensor shared with box pixels, and a CNN with an
outlier channel; both fail plain int8 and pass with one node (the Concat) or three (the outlier
tensor's maker and readers) kept in float."""
from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

from packager.config.manifest import DEFAULT_TOLERANCES
from packager.config.targets import Quantization
from packager.diagnose import localise, ranked
from packager.diagnose.onnx_nodes import NodeError, blame_range_setters
from packager.passes import quantize
from packager.passes.wide_ranges import name_nodes
from runtime.compare import compare
from runtime.explain import channel_snr_db as channel_snr
from runtime.explain import snr_db

torch = pytest.importorskip("torch")


def test_one_huge_channel_hides_the_others_from_the_whole_tensor_snr() -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((8, 16, 4, 4)).astype(np.float32)
    ref[:, 0] *= 400.0  # channel 0: the outlier
    step = ref.max() / 255  # a per-tensor uint8 step: the other channels are rounded away
    got = np.round(ref / step) * step
    assert snr_db(ref, got) > 30  # dominated by channel 0, which quantizes well
    assert channel_snr(ref, got) < 10  # the median channel lost its signal
    assert channel_snr(ref, ref) == pytest.approx(120.0)  # an exact match stays at the cap
    quiet = np.zeros_like(ref)
    assert channel_snr(quiet, quiet) == pytest.approx(120.0)  # dead channels are not an error


def _row(node: str, op: str, added: float, depth: int, quantized: bool = True) -> NodeError:
    return NodeError(node=node, op_type=op, tensor=f"{node}_out", depth=depth, snr_db=50.0 - added, cosine=1.0,
                     max_abs_error=0.0, range=1.0, added_db=added, quantized=quantized)


def test_a_views_error_goes_to_the_node_that_set_the_range() -> None:
    rows = [_row("cat", "Concat", 1.0, 0, quantized=False), _row("reshape", "Reshape", 0.0, 1),
            _row("slice", "Slice", 24.0, 2), _row("mul", "Mul", 5.0, 3)]
    above = {"reshape": "cat", "slice": "reshape", "mul": "slice"}
    moved = {r.node: r for r in blame_range_setters(rows, above, frozenset({"Reshape", "Slice"}))}
    assert moved["cat"].added_db == 24.0 and moved["cat"].seen_at == "slice"
    assert moved["cat"].quantized  # the slice's output is quantized: keeping the Concat float can fix it
    assert moved["slice"].added_db == 0.0 and moved["mul"].added_db == 5.0  # a computing node keeps its own
    assert ranked(list(moved.values()))[0].node == "cat"


def _onnx(net: torch.nn.Module, x: torch.Tensor, outputs: list[str]) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(net, (x,), buf, input_names=["image"], output_names=outputs, dynamo=False, opset_version=17,
                      dynamic_axes={"image": {0: "b"}, **{o: {0: "b"} for o in outputs}})
    return name_nodes(onnx.load_from_string(buf.getvalue()))


class Head(torch.nn.Module):
    """Box centres in pixels (0-64) and sigmoid probabilities in one tensor, sliced apart."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3, 2, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.conv(image).sigmoid().flatten(2).transpose(1, 2)  # [n, cells, 6]
        out = torch.cat([p[..., :2] * 64.0, p[..., 2:]], -1)
        return out[..., :2], out[..., 2:3] * out[..., 3:]


class Outlier(torch.nn.Module):
    """14 conv + batch norm + ReLU blocks, batch norm statistics from sample images (every channel
    standardized, as training leaves them); then channel 0 of the first block is scaled 400x and
    the second convolution's weights for it divided by 400: the same function, one outlier."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        nn = torch.nn
        blocks = [nn.Sequential(nn.Conv2d(3 if i == 0 else 16, 16, 3, 2 if i in (0, 5) else 1, 1, bias=False),
                                nn.BatchNorm2d(16, momentum=None), nn.ReLU()) for i in range(14)]
        self.body = nn.Sequential(*blocks)
        self.fc = nn.Linear(16, 10)
        self.train()
        with torch.no_grad():
            self(torch.from_numpy(_feeds(7, 1)[0]["image"]))
            blocks[0][1].weight[0] *= 400.0
            blocks[0][1].bias[0] *= 400.0
            blocks[1][0].weight[:, 0] /= 400.0
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(image).mean((2, 3)))


def _feeds(seed: int, n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"image": rng.random((16, 3, 32, 32), dtype=np.float32)} for _ in range(n)]


def _check(net: torch.nn.Module, outputs: list[str], scores: dict[str, bool], max_share: float = 0.10) -> dict:
    model = _onnx(net, torch.rand(2, 3, 32, 32), outputs)
    golden = _feeds(2, 2)
    with torch.no_grad():
        runs = [net(torch.from_numpy(f["image"])) for f in golden]
    ref = {o: np.concatenate([(r if isinstance(r, tuple) else (r,))[i].numpy() for r in runs])
           for i, o in enumerate(outputs)}
    tol = {o: DEFAULT_TOLERANCES["int8"] for o in outputs}

    def run(m: onnx.ModelProto) -> dict[str, np.ndarray]:
        import onnxruntime as ort
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        outs = [sess.run(outputs, f) for f in golden]
        return {o: np.concatenate([r[i] for r in outs]) for i, o in enumerate(outputs)}

    plain = quantize.int8_static(model, Quantization(per_channel=True), _feeds(1, 4), random_data=False)
    rows = ranked(localise(model, plain.model, golden))
    mixed = quantize.int8_static(model, Quantization(per_channel=True, fallback="mixed"), _feeds(1, 4),
                                 random_data=False, repair=quantize.Repair(golden, tol, scores))
    return {"model": model, "plain": compare(ref, run(plain.model), tol, scores=scores), "rows": rows,
            "mixed": mixed, "mixed_report": compare(ref, run(mixed.model), tol, scores=scores)}


def test_the_concat_that_shares_a_range_is_blamed_and_kept_float() -> None:
    got = _check(Head(), ["centres", "scores"], {})
    assert not got["plain"].passed  # the probabilities lost their signal in plain int8
    graph = got["model"].graph
    sliced = {n.input[0] for n in graph.node if n.op_type == "Slice"}
    [concat] = [n.name for n in graph.node if n.op_type == "Concat" and n.output[0] in sliced]
    worst = got["rows"][0]
    # its whole output's SNR is the pixels'; the median channel's (the last axis) is the probabilities'
    assert worst.node == concat and worst.snr_db < 25, worst
    assert got["mixed"].details["kept_float"] == [concat]  # the Concat alone, not the slices
    assert got["mixed_report"].passed


def test_an_outlier_channel_keeps_the_tensor_float_through_its_readers() -> None:
    got = _check(Outlier(), ["logits"], {"logits": True})
    assert not got["plain"].passed
    nodes = [n.name for n in got["model"].graph.node]
    worst = got["rows"][0]
    assert worst.node in nodes[:2], worst  # the first convolution (fused with its ReLU) makes the outlier tensor
    mixed = got["mixed"].details
    kept = mixed["kept_float"]
    assert set(kept) <= set(nodes[:3]) and nodes[2] in kept, kept  # the tensor flows float into the next conv
    assert mixed["mixed"]["passed"] and got["mixed_report"].passed
    assert mixed["mixed"]["float_nodes"] == len(nodes) and mixed["mixed"]["kept_share"] <= 0.10
    rounds = mixed["mixed"]["rounds"]
    assert not rounds[0]["passed"] and rounds[-1]["passed"]
