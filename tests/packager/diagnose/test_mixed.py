"""Per-node error localisation and the mixed-precision search (packager/diagnose/), on a real
classifier whose plain int8 is broken: a 1000-way softmax over untrained logits gives
probabilities of about 0.001, which the softmax output's uint8 step (1/255) rounds to zero."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from packager.config.manifest import DEFAULT_TOLERANCES
from packager.config.targets import Quantization
from packager.diagnose import localise, ranked, search
from packager.passes import quantize
from packager.passes.wide_ranges import name_nodes
from runtime.compare import Tolerance, compare

from ...conftest import write_yaml

torch = pytest.importorskip("torch")

# the model files' entry points: the seeded module and 64 random images
ENTRY_POINTS = '''

def build():
    torch.manual_seed(0)
    return Net().eval()


def samples(n=64):
    rng = np.random.default_rng(0)
    yield {"image": rng.random((n, 3, 32, 32)).astype(np.float32)}
'''

SOFTMAX_MODEL = '''
import numpy as np
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(32, 1000)

    def forward(self, image):
        h = torch.relu(self.c2(torch.relu(self.c1(image))))
        return torch.softmax(self.fc(h.mean((2, 3))), -1)

''' + ENTRY_POINTS


def _module() -> torch.nn.Module:
    namespace: dict = {}
    exec(SOFTMAX_MODEL, namespace)  # the same code the build test's entry point runs
    return namespace["build"]()


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, torch.nn.Module]:
    net = _module()
    path = tmp_path_factory.mktemp("softmax") / "net.onnx"
    torch.onnx.export(net, (torch.rand(2, 3, 32, 32),), str(path), input_names=["image"], output_names=["probs"],
                      dynamo=False, opset_version=17, dynamic_axes={"image": {0: "b"}, "probs": {0: "b"}})
    return name_nodes(onnx.load(str(path))), net


def _feeds(seed: int, n: int = 2) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"image": rng.random((16, 3, 32, 32)).astype(np.float32)} for _ in range(n)]


def _run(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return {"probs": np.concatenate([sess.run(None, f)[0] for f in feeds])}


def _reference(net: torch.nn.Module, feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {"probs": np.concatenate([net(torch.from_numpy(f["image"])).numpy() for f in feeds])}


TOL = {"probs": DEFAULT_TOLERANCES["int8"]}


def test_plain_int8_is_all_zeros_and_the_table_blames_the_softmax(
        softmax_model: tuple[onnx.ModelProto, torch.nn.Module]) -> None:
    model, net = softmax_model
    golden = _feeds(2)
    plain = quantize.int8_static(model, Quantization(per_channel=True), _feeds(1, 4), random_data=False)
    out = _run(plain.model, golden)
    assert not out["probs"].any()  # the fault is real: every probability rounded to zero
    assert not compare(_reference(net, golden), out, TOL).passed

    rows = localise(model, plain.model, golden)
    assert [r.depth for r in rows] == sorted(r.depth for r in rows)  # graph order
    worst = ranked(rows)[0]
    assert worst.op_type == "Softmax" and worst.quantized
    assert worst.snr_db < 1.0 and worst.added_db > 40  # all of int8's SNR lost at that one node
    assert worst.cosine == 0.0  # all zeros against the float probabilities
    first = rows[0]  # the first convolution's ReLU (onnxruntime fuses the Conv into it)
    assert first.op_type == "Relu" and first.snr_db > 25 and first.cosine > 0.99  # it quantizes well
    assert json.loads(json.dumps(worst.to_dict()))["node"] == worst.node


def test_mixed_keeps_the_softmax_in_float_and_passes(softmax_model: tuple[onnx.ModelProto, torch.nn.Module]) -> None:
    model, net = softmax_model
    golden = _feeds(2)
    repair = quantize.Repair(golden, TOL, {})
    result = quantize.int8_static(model, Quantization(per_channel=True, fallback="mixed"), _feeds(1, 4),
                                  random_data=False, repair=repair)
    softmax = next(n.name for n in model.graph.node if n.op_type == "Softmax")
    assert result.details["kept_float"] == [softmax]
    mixed = result.details["mixed"]
    assert mixed["passed"] and mixed["kept_float_added"] == [softmax]
    assert [r["passed"] for r in mixed["rounds"]] == [False, True]
    assert any("1 node(s) kept in float until parity held" in n for n in result.notes)
    # checked against the source model (not only the float ONNX model the search used), on other samples
    other = _feeds(7)
    report = compare(_reference(net, other), _run(result.model, other), TOL)
    assert report.passed, report.format_table()
    # the rest is still int8: both convolutions and the Gemm read dequantized weights
    assert sum(n.op_type == "DequantizeLinear" for n in result.model.graph.node) >= 6


def test_a_search_that_cannot_pass_says_why_within_its_budget(
        softmax_model: tuple[onnx.ModelProto, torch.nn.Module]) -> None:
    model, _ = softmax_model
    golden = _feeds(2)
    exact = {"probs": Tolerance(atol=0.0, rtol=0.0, min_cosine=1.0)}  # int8 can never meet this
    float_out = _run(model, golden)
    made: list[list[str]] = []

    def quantize_with(exclude: list[str]) -> onnx.ModelProto:
        made.append(list(exclude))
        return quantize.int8_static(model, Quantization(per_channel=True), _feeds(1, 4), random_data=False).model \
            if not exclude else _exclude(model, exclude)

    def _exclude(m: onnx.ModelProto, exclude: list[str]) -> onnx.ModelProto:
        import tempfile

        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        with tempfile.TemporaryDirectory() as tmp:
            onnx.save(m, f"{tmp}/in.onnx")
            quantize_static(f"{tmp}/in.onnx", f"{tmp}/out.onnx", quantize._Reader(_feeds(1, 4)),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=exclude)
            return onnx.load(f"{tmp}/out.onnx")

    mixed = search(len(model.graph.node), quantize_with, lambda m: compare(float_out, _run(m, golden), exact),
                   lambda m: localise(model, m, golden), max_share=0.3)
    budget = int(0.3 * len(model.graph.node))
    assert not mixed.passed and len(mixed.kept) == budget == len(made) - 1
    assert "budget (30% of" in mixed.why and mixed.worst
    assert len(mixed.trace) == budget + 1 and not any(r["passed"] for r in mixed.trace)


TARGET = """\
name: mixed-x86
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: true
candidates:
  - {id: int8-mixed, format: onnx, precision: int8, quantization: {mode: static, per_channel: true, fallback: mixed}}
  - {id: int8-plain, format: onnx, precision: int8, quantization: {mode: static, per_channel: true}}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""


def project(folder: Path, target_yaml: str = TARGET) -> Path:
    """The softmax model, a target (``target_yaml``) and the manifest in ``folder``; the manifest's path."""
    (folder / "net.py").write_text(SOFTMAX_MODEL)
    target = write_yaml(folder / "target.yaml", target_yaml)
    return write_yaml(folder / "net.yaml", f"""\
        name: net
        source: {{framework: torch, entry: net.py:build}}
        inputs: [{{name: image, dtype: float32, shape: [batch, 3, 32, 32]}}]
        outputs: [probs]
        calibration: {{entry: net.py:samples, samples: 64}}
        golden: {{samples: 16}}
        targets: [{target}]
        """)


def test_a_build_ships_the_mixed_candidate_and_records_it(tmp_path: Path) -> None:
    from packager import build
    manifest = project(tmp_path)
    result = build(manifest, tmp_path / "out")
    [t] = result.targets
    cands = {c.id: c for c in t.candidates}
    assert cands["int8-plain"].status == "dropped"  # plain int8: all zeros, parity fails
    explained = cands["int8-plain"].explained  # made automatically for the failure
    assert explained is not None and explained["rows"][0]["op_type"] == "Softmax"
    assert "fallback: mixed" in explained["hint"]
    assert cands["int8-mixed"].explained is None
    html = (tmp_path / "out" / "net.report.html").read_text(encoding="utf-8")
    section = html.split('data-candidate="int8-plain"')[1].split("</section>")[0]
    assert "where the error starts" in section and explained["rows"][0]["node"] in section
    assert cands["int8-mixed"].status == "ok" and t.status == "ok"
    doc = json.loads((Path(t.bundle_dir) / "bundle.json").read_text(encoding="utf-8"))
    assert doc["candidates"][0]["id"] == "int8-mixed"  # the first choice on the device
    entry = doc["candidates"][0]
    assert entry["quantization"]["fallback"] == "mixed"
    [kept] = entry["conversion"]["kept_float"]  # the one softmax node (its name is the exporter's)
    assert "softmax" in kept.lower() and entry["conversion"]["mixed"]["passed"]


def test_edgepack_debug_prints_the_table_and_json(tmp_path: Path) -> None:
    """The command as a user runs it: the table for a candidate, from the build's cache."""
    import subprocess
    import sys

    from ...conftest import REPO
    project(tmp_path)

    def debug(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "packager", "debug", "net.yaml", *args, "-q",
                               "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True,
                              cwd=tmp_path, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})

    text = debug("--candidate", "int8-plain")
    assert text.returncode == 0, text.stderr
    assert "parity FAILED" in text.stdout and "Softmax" in text.stdout.split("add the most error:")[1].splitlines()[2]
    doc = json.loads(debug("--candidate", "int8-mixed", "--json").stdout)
    assert doc["parity"]["passed"] and doc["explained"]["rows"]  # on demand for a candidate that passed
    wrong = debug("--candidate", "no-such")
    assert wrong.returncode == 2 and "no candidate 'no-such'" in wrong.stderr and "int8-mixed" in wrong.stderr
    fp32 = debug("--candidate", "onnx-fp32")
    assert fp32.returncode == 2 and "ONNX and TFLite int8 candidates" in fp32.stderr


TFLITE_TARGET = """\
name: mixed-pi
arch: aarch64
python: "3.11"
threads: 1
precision_fallback: true
candidates:
  - {id: tfl-mixed, format: tflite, precision: int8, quantization: {mode: static, fallback: mixed}, io: int8}
  - {id: tfl-plain, format: tflite, precision: int8, quantization: {mode: static}, io: int8}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==2.3.0]
"""


DETECTION_MODEL = '''
import numpy as np
import torch


class Net(torch.nn.Module):
    """An SSD-like head: a conv backbone to a 4x4 grid, 2 anchors per cell, boxes decoded against
    the anchors (small offsets on a [0, 1] grid) and class logits."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 48, 3, 2, 1), torch.nn.ReLU())
        self.box = torch.nn.Conv2d(48, 8, 3, padding=1)
        self.cls = torch.nn.Conv2d(48, 8, 3, padding=1)
        g = (torch.arange(4, dtype=torch.float32) + 0.5) / 4
        cy, cx = torch.meshgrid(g, g, indexing="ij")
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2).expand(-1, 2, 2)
        wh = torch.tensor([0.25, 0.4]).reshape(1, -1, 1).expand(16, -1, 2)
        self.register_buffer("anchors", torch.cat([centres, wh], -1).reshape(-1, 4))

    def forward(self, image):
        f = self.backbone(image)
        n = f.shape[0]
        d = self.box(f).permute(0, 2, 3, 1).reshape(n, -1, 4)
        logits = self.cls(f).permute(0, 2, 3, 1).reshape(n, -1, 4)
        a = self.anchors
        xy = a[:, :2] + 0.1 * torch.tanh(d[..., :2]) * a[:, 2:]
        wh = a[:, 2:] * torch.exp(0.5 * torch.tanh(d[..., 2:]))
        return torch.cat([xy, wh], -1), logits

''' + ENTRY_POINTS


def test_a_tflite_int8_that_misses_parity_is_repaired_through_the_onnx_model(tmp_path: Path) -> None:
    """PyTorch source, rpi-like target: litert-torch's int8 of a detection head misses parity on
    its decoded boxes (the plain candidate is dropped); with fallback: mixed the build makes it again from
    the exported ONNX model with onnx2tf + ai-edge-quantizer (keeping in float the ops that add the
    error, if any), and it ships."""
    from packager import build

    from ..convert.onnx_models import onnx2tf_env
    onnx2tf_env()
    (tmp_path / "net.py").write_text(DETECTION_MODEL)
    target = write_yaml(tmp_path / "mixed-pi.yaml", TFLITE_TARGET)
    manifest = write_yaml(tmp_path / "net.yaml", f"""\
        name: net
        source: {{framework: torch, entry: net.py:build}}
        inputs: [{{name: image, dtype: float32, shape: [batch, 3, 32, 32]}}]
        outputs: [boxes, {{name: class_logits, scores: true}}]
        calibration: {{entry: net.py:samples, samples: 64}}
        golden: {{samples: 16}}
        targets: [{target}]
        """)
    result = build(manifest, tmp_path / "out")
    [t] = result.targets
    cands = {c.id: c for c in t.candidates}
    assert cands["tfl-plain"].status == "dropped", (cands["tfl-plain"].status, cands["tfl-plain"].message)
    assert cands["tfl-mixed"].status == "ok", (cands["tfl-mixed"].status, cands["tfl-mixed"].message)
    doc = json.loads((Path(t.bundle_dir) / "bundle.json").read_text(encoding="utf-8"))
    entry = next(c for c in doc["candidates"] if c["id"] == "tfl-mixed")
    assert entry["converter"].startswith("onnx2tf") and "ai-edge-quantizer" in entry["converter"]
    first = entry["conversion"]["fallback_from"]
    assert first.startswith("litert-torch") and "int8 missed parity (boxes: " in first, first
    mixed = entry["conversion"]["mixed"]
    # ai-edge-quantizer's int8 (global min/max ranges) may hold parity with nothing kept float
    assert mixed["passed"] and mixed["rounds"][-1]["passed"]
    assert mixed["kept_float_added"] == entry["conversion"].get("kept_float", [])
    assert any("tfl-mixed: " in w and "missed parity" in w and "from the exported ONNX model" in w
               for w in result.warnings), result.warnings
