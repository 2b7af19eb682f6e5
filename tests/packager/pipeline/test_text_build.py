"""A text model built from a text file with a WordPiece tokenizer declared: golden ids made by the
runtime's own tokenizer, golden texts and the vocabulary carried in the bundle, the end-to-end
check on load, ``run --text`` and serve taking raw text."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from packager.errors import ManifestError
from packager.pipeline import build
from runtime.bundle import open_bundle
from runtime.end_to_end import check_end_to_end
from runtime.golden import load_golden
from runtime.model import load
from runtime.tokenizer import WordPiece

from ...conftest import tiny_manifest
from ...runtime.test_tokenizer import VOCAB

pytestmark = pytest.mark.slow

TEXT_MODEL = '''
import torch
from torch import nn


class Bag(nn.Module):
    """Embeddings averaged over the attention mask, then a linear head: a text classifier in miniature."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(200, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build():
    torch.manual_seed(0)
    return Bag().eval()
'''
SENTENCES = ["The cat sat on the mat.", "Hello, world!", "A dog is good.", "The dog sat.", "Cats playing",
             "Hello cat", "the mat is good", "a naive cafe", "unbelievable!", "Dogs? cats!"]


@pytest.fixture
def text_project(tmp_path: Path) -> Path:
    (tmp_path / "bag.py").write_text(TEXT_MODEL)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (tmp_path / "texts.txt").write_text("\n".join(SENTENCES * 4) + "\n\n")
    (tmp_path / "labels.txt").write_text("negative\nneutral\npositive\n")
    return tiny_manifest(tmp_path, name="bag", source={"framework": "torch", "entry": "bag.py:build"},
                         inputs=[{"name": "input_ids", "dtype": "int64", "shape": ["batch", 12]},
                                 {"name": "attention_mask", "dtype": "int64", "shape": ["batch", 12]}],
                         outputs=[{"name": "logits", "postprocess": {"softmax": True, "labels": "labels.txt"}}],
                         tokenizer={"vocab": "vocab.txt"}, calibration={"texts": "texts.txt", "samples": 40},
                         golden={"samples": 8})


def test_texts_in_tokenized_by_the_runtime_and_checked_end_to_end(text_project: Path, tmp_path: Path) -> None:
    result = build(text_project, tmp_path / "out")
    assert result.ok, result.targets[0].message
    root = tmp_path / "out" / "bag-x86-cpu"
    doc = json.loads((root / "bundle.json").read_text())
    assert doc["processing"]["text"] == {"kind": "wordpiece", "vocab": "processing/vocab.txt", "length": 12,
                                         "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
                                         "lowercase": True, "name": "text"}
    raw = doc["golden"]["raw"]
    assert len(raw) == 8 and raw[0] == "golden/raw/0000.txt"
    bundle = open_bundle(root)
    bundle.verify()
    golden = load_golden(bundle)
    texts = [(root / r).read_text() for r in raw]
    assert all(t in SENTENCES for t in texts)
    want = WordPiece.from_lines(VOCAB).encode(texts, 12)
    np.testing.assert_array_equal(golden.inputs["input_ids"], want["input_ids"])
    np.testing.assert_array_equal(golden.inputs["attention_mask"], want["attention_mask"])
    with load(bundle, prefer="onnx-fp32") as model:
        report = check_end_to_end(model, golden)
        assert report is not None and report.passed and report.kind == "text" and report.preprocess_max_abs == 0
        # a device tokenizing without lower-casing (the wrong vocabulary case) is caught
        text_spec = dataclasses.replace(bundle.processing.text, lowercase=False)  # type: ignore[union-attr]
        model.bundle = dataclasses.replace(bundle, processing=dataclasses.replace(bundle.processing, text=text_spec))
        other = check_end_to_end(model, golden)
        assert other is not None and not other.preprocess_passed and other.preprocess_limit == 0
        model.bundle = bundle
        ids = WordPiece.from_lines(VOCAB).encode(["The cat sat."], 12)
        expected = model.run({k: ids[k] for k in ("input_ids", "attention_mask")})["logits"]
    run = subprocess.run([sys.executable, "-m", "runtime", "run", "--prefer", "onnx-fp32", "--text", "The cat sat.",
                          "--json", "--values"], cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)["outputs"]["logits"]
    np.testing.assert_allclose(np.array(out["values"]), expected, rtol=1e-6, atol=1e-6)
    best = int(np.argmax(expected))
    assert out["top_k"][0][0]["label"] == ["negative", "neutral", "positive"][best]
    bad = subprocess.run([sys.executable, "-m", "runtime", "run", "--input", "x.png"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("tokenizer", "says"), [
    ({"vocab": "vocab.txt", "max_length": 20}, "max_length 20 differs from the inputs' fixed length 12"),
    ({"vocab": "vocab.txt", "ids": "tokens"}, "the model has no input 'tokens'"),
    ({"vocab": "vocab.txt", "mask": "input_ids", "ids": "attention_mask", "type_ids": "nope"}, "no input 'nope'"),
])
def test_tokenizer_mistakes_are_refused_with_the_reason(text_project: Path, tokenizer: dict[str, object],
                                                        says: str) -> None:
    import yaml

    from packager.config.manifest import load_manifest
    doc = yaml.safe_load(text_project.read_text())
    doc["tokenizer"] = tokenizer
    text_project.write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError, match=says):
        load_manifest(text_project)


def test_serve_takes_raw_text(text_project: Path, tmp_path: Path) -> None:
    """OIP JSON BYTES strings under the tokenizer's name: tokenized on the server, answered like Model.run."""
    from ...runtime.serve.test_server import Server
    assert build(text_project, tmp_path / "out").ok
    root = tmp_path / "out" / "bag-x86-cpu"
    server = Server(root, "--prefer", "onnx-fp32")
    try:
        assert server.state["state"] == "ready" and server.state["verified"]["end_to_end"] == "passed"
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["The cat sat.", "Hello!"]}],
                "outputs": [{"name": "logits", "parameters": {"classification": 1}}]}
        status, answer = server.post(f"/v2/models/{server.model}/infer", json.dumps(body).encode())
        assert status == 200, answer
        out = json.loads(answer)["outputs"][0]
        with load(open_bundle(root), prefer="onnx-fp32") as model:
            ids = WordPiece.from_lines(VOCAB).encode(["The cat sat.", "Hello!"], 12)
            logits = model.run({k: ids[k] for k in ("input_ids", "attention_mask")})["logits"]
        labels = ["negative", "neutral", "positive"]
        assert [s.split(":")[2] for s in out["data"]] == [labels[i] for i in logits.argmax(-1)]
        wrong = {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        status, answer = server.post(f"/v2/models/{server.model}/infer", json.dumps(wrong).encode())
        assert status == 400 and "takes BYTES (raw text)" in json.loads(answer)["error"]
    finally:
        server.stop()
