"""Dtypes across formats: litert-torch makes a PyTorch model's int64 token ids (and an int64
argmax output) int32 in the TFLite model. The build records it in the candidate's io_map, the
runtime converts int64 feeds (refusing ids int32 cannot hold) and gives int64 results back, and
the candidate ships with exact parity against the ONNX one. litert-torch compiles the symbolic
sequence length as the example's: the candidate records it (static_axes) and the runtime refuses
other lengths for it with a FeedError, while the ONNX candidate takes any."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import runtime
from packager.pipeline import build
from runtime.errors import FeedError

from ...conftest import write_yaml

pytestmark = pytest.mark.slow

TOKEN_MODEL = '''
import numpy as np
import torch
from torch import nn


class Tok(nn.Module):
    """Token ids -> embedding -> mean -> class scores, and the argmax (int64)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        scores = self.fc(self.emb(ids).mean(1))
        return scores, scores.argmax(-1)


def build(seed=0):
    torch.manual_seed(seed)
    return Tok().eval()


def samples(n=32):
    rng = np.random.default_rng(1)
    yield {"ids": rng.integers(0, 100, (n, 6)).astype(np.int64)}
'''

TARGET = """\
name: tok-x86
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: tflite, precision: fp32}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==2.3.0]
"""

MANIFEST = """\
name: tok
source: {framework: torch, entry: tok.py:build}
inputs: [{name: ids, dtype: int64, shape: [batch, seq]}]
outputs: [{name: scores, dtype: float32}, {name: label, dtype: int64}]
calibration: {entry: tok.py:samples, samples: 32}
golden: {samples: 8}
targets: [tok-x86.yaml]
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("litert_torch", reason="litert-torch (edgepack[tflite-torch]) makes PyTorch TFLite")
    folder = tmp_path_factory.mktemp("tok")
    (folder / "tok.py").write_text(TOKEN_MODEL)
    write_yaml(folder / "tok-x86.yaml", TARGET)
    result = build(write_yaml(folder / "tok.yaml", MANIFEST), folder / "out")
    (target,) = result.targets
    statuses = {c.id: (c.status, c.message) for c in target.candidates}
    assert statuses["tflite-fp32"][0] == "ok" and statuses["onnx-fp32"][0] == "ok", statuses
    assert target.bundle_dir is not None
    return Path(target.bundle_dir)


def test_int32_tflite_io_is_recorded_with_a_note(bundle: Path) -> None:
    doc = json.loads((bundle / "bundle.json").read_text())
    tfl = next(c for c in doc["candidates"] if c["id"] == "tflite-fp32")
    assert tfl["io_map"]["input_dtypes"] == {"ids": "int32"}
    assert tfl["io_map"]["output_dtypes"] == {"label": "int32"}
    assert any("'ids' is int32 in the TFLite model (int64 in the manifest)" in n and "refusing" in n
               for n in tfl["notes"]), tfl["notes"]
    onnx = next(c for c in doc["candidates"] if c["id"] == "onnx-fp32")
    assert "input_dtypes" not in (onnx.get("io_map") or {})
    assert tfl["parity"]["passed"] and tfl["parity"]["outputs"][1]["max_abs"] == 0


def test_runtime_converts_int64_feeds_and_refuses_what_int32_cannot_hold(bundle: Path) -> None:
    ids = np.random.default_rng(3).integers(0, 100, (5, 6)).astype(np.int64)
    with runtime.load(bundle, prefer="onnx-fp32") as ref_model:
        ref = ref_model.run({"ids": ids})
    with runtime.load(bundle, prefer="tflite-fp32", strict=True) as model:
        assert model.candidate_spec.id == "tflite-fp32"
        assert any("converted to int32" in n for d in model.decisions for n in d.notes)
        got = model.run({"ids": ids})  # a batch of 5 through the batch-1 artifact, int64 in and out
        assert got["label"].dtype == np.int64 and got["scores"].dtype == np.float32
        np.testing.assert_array_equal(got["label"], ref["label"])
        np.testing.assert_allclose(got["scores"], ref["scores"], rtol=1e-5, atol=1e-6)
        out = {"scores": np.empty((5, 3), np.float32), "label": np.empty(5, np.int64)}
        model.run_into({"ids": ids}, out)
        np.testing.assert_array_equal(out["label"], ref["label"])
        raw = model.run({"ids": ids[:1].astype(np.int32)}, raw=True)  # the artifact's own dtypes
        assert raw["label"].dtype == np.int32
        with pytest.raises(FeedError, match="int64 does not match int32"):
            model.run({"ids": ids[:1]}, raw=True)
        wrapped = ids[:1].copy()
        wrapped[0, 0] = 2**32 + 7  # would wrap to 7, a valid id: must be refused, not run
        with pytest.raises(FeedError) as info:
            model.run({"ids": wrapped})
        assert "input 'ids'" in str(info.value) and "1 value(s) lie outside" in str(info.value)


def test_a_sequence_length_the_tflite_model_fixed_is_refused_clearly(bundle: Path) -> None:
    doc = json.loads((bundle / "bundle.json").read_text())
    tfl = next(c for c in doc["candidates"] if c["id"] == "tflite-fp32")
    assert tfl["static_axes"] == {"ids": {"1": 6}}
    assert any("compiled for fixed ids axis 1 = 6" in n for n in tfl["notes"]), tfl["notes"]
    longer = np.random.default_rng(4).integers(0, 100, (2, 9)).astype(np.int64)
    with runtime.load(bundle, prefer="onnx-fp32") as onnx_model:
        assert onnx_model.run({"ids": longer})["scores"].shape == (2, 3)  # dynamic there
    with runtime.load(bundle, prefer="tflite-fp32", strict=True) as model:
        with pytest.raises(FeedError) as info:
            model.run({"ids": longer})
        assert "axis 1 is 9; candidate tflite-fp32 was compiled for 6" in str(info.value)
        assert "pad or cut axis 1 to 6" in (info.value.hint or "")
        out = {"scores": np.empty((2, 3), np.float32), "label": np.empty(2, np.int64)}
        with pytest.raises(FeedError, match="compiled for 6"):
            model.run_into({"ids": longer}, out)
