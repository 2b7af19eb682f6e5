"""Your metric and an accuracy budget (evaluation.metric as an entry point, max_accuracy_drop):
the original model's value and each candidate's are what the entry point computes on their
outputs, and a candidate beyond the budget is dropped like one that misses parity, with the
numbers. A small real regression net, exported and quantized for real."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ...conftest import write_yaml

torch = pytest.importorskip("torch")

MODEL = '''
import numpy as np
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        layers = [torch.nn.Linear(8, 64), torch.nn.ReLU()]
        for _ in range(9):
            layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
        self.body = torch.nn.Sequential(*layers, torch.nn.Linear(64, 3))
        for layer in self.body:  # He init: the signal keeps its scale through 11 layers
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                torch.nn.init.zeros_(layer.bias)

    def forward(self, x):
        return self.body(x)


def build():
    torch.manual_seed(0)
    return Net().eval()


def samples(n=96):
    yield {"x": np.random.default_rng(0).normal(0, 1, (n, 8)).astype(np.float32)}


def held_out():
    """Targets are the original model's own outputs: it scores a perfect 1.0."""
    x = np.random.default_rng(7).normal(0, 1, (48, 8)).astype(np.float32)
    with torch.no_grad():
        y = build()(torch.from_numpy(x)).numpy()
    return {"x": x}, y


def fit(outputs, labels):
    """1 - normalised squared error of the regression output (higher is better)."""
    y = outputs["y"]
    return float(1 - ((y - labels) ** 2).sum() / ((labels - labels.mean(0)) ** 2).sum())


def error(outputs, labels):
    return 1 - fit(outputs, labels)


def broken(outputs, labels):
    return "good"


def raises(outputs, labels):
    return outputs["nope"]
'''

TARGET = """\
name: x86-budget
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: true
candidates:
  - {format: onnx, precision: int8, quantization: {mode: static, per_channel: true}}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""


def project(folder: Path, evaluation: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(MODEL)
    write_yaml(folder / "x86-budget.yaml", TARGET)
    return write_yaml(folder / "net.yaml", f"""\
        name: net
        source: {{framework: torch, entry: net.py:build}}
        inputs: [{{name: x, dtype: float32, shape: [batch, 8]}}]
        outputs: [{{name: y, scores: false}}]
        calibration: {{entry: net.py:samples, samples: 96}}
        golden: {{samples: 16}}
        evaluation: {evaluation}
        targets: [x86-budget.yaml]
        """)


def by_id(result: object) -> dict[str, object]:
    [t] = result.targets  # type: ignore[attr-defined]
    return {c.id: c for c in t.candidates}


def test_an_entry_point_metric_is_reported_for_the_original_and_every_candidate(tmp_path: Path) -> None:
    from packager import build
    result = build(project(tmp_path, "{entry: net.py:held_out, metric: net.py:fit}"), tmp_path / "out")
    assert result.metric == "fit" and result.reference_accuracy == pytest.approx(1.0, abs=1e-6)
    cands = by_id(result)
    int8, fp32 = cands["onnx-int8-static-pc"], cands["onnx-fp32"]
    assert fp32.accuracy == pytest.approx(1.0, abs=1e-5)  # type: ignore[attr-defined]
    assert 0.5 < int8.accuracy < 1.0 - 1e-6  # type: ignore[attr-defined]  # int8 really differs
    [t] = result.targets
    doc = json.loads((Path(t.bundle_dir) / "bundle.json").read_text())
    assert doc["evaluation"]["metric"] == "net.py:fit" and doc["evaluation"]["samples"] == 48
    entry = next(c for c in doc["candidates"] if c["id"] == "onnx-int8-static-pc")
    assert entry["accuracy"] == pytest.approx(int8.accuracy)  # type: ignore[attr-defined]


def test_a_candidate_beyond_the_budget_is_dropped_with_the_numbers(tmp_path: Path) -> None:
    from packager import build
    result = build(project(tmp_path, "{entry: net.py:held_out, metric: net.py:fit, max_accuracy_drop: 0.0}"),
                   tmp_path / "out")
    cands = by_id(result)
    int8 = cands["onnx-int8-static-pc"]
    assert int8.status == "dropped", (int8.status, int8.message)  # type: ignore[attr-defined]
    message = int8.message  # type: ignore[attr-defined]
    assert message.startswith("accuracy budget missed (fit ") and "points below the original model's 1" in message
    assert "(max_accuracy_drop 0)" in message and message.endswith("fell back to onnx-fp32")
    [t] = result.targets
    assert t.fallbacks[0]["reason"].startswith("accuracy budget missed") and cands["onnx-fp32"].status == "ok"


def test_within_the_budget_and_lower_is_better(tmp_path: Path) -> None:
    """An error rate (higher_is_better: false) within a generous budget: the int8 candidate stays."""
    from packager import build
    result = build(project(tmp_path, "{entry: net.py:held_out, metric: net.py:error, higher_is_better: false, "
                                     "max_accuracy_drop: 50}"), tmp_path / "out")
    cands = by_id(result)
    assert cands["onnx-int8-static-pc"].status == "ok"  # type: ignore[attr-defined]
    assert result.reference_accuracy == pytest.approx(0.0, abs=1e-6)
    assert 1e-6 < cands["onnx-int8-static-pc"].accuracy < 0.5  # type: ignore[attr-defined]


@pytest.mark.parametrize(("metric", "expected"), [
    ("net.py:broken", "net.py:broken returned 'good', not a finite number"),
    ("net.py:raises", "net.py:raises raised KeyError: 'nope'"),
])
def test_a_metric_that_fails_says_so(tmp_path: Path, metric: str, expected: str) -> None:
    import subprocess
    import sys

    from ...conftest import REPO
    project(tmp_path, f"{{entry: net.py:held_out, metric: {metric}}}")
    proc = subprocess.run([sys.executable, "-m", "packager", "build", "net.yaml", "--out", "out", "--cache-dir",
                           "cache"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert expected in proc.stderr and "evaluation.metric" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "net-x86-budget").exists()


MIXED = """\
name: x86-mixed
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: true
candidates:
  - {format: onnx, precision: int8, quantization: {mode: static, per_channel: true, fallback: mixed}}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""


def test_the_mixed_search_keeps_going_until_the_metric_is_within_the_budget(tmp_path: Path) -> None:
    """Plain int8 holds parity but not a budget set below its drop: the search's first round
    fails on the metric (its trace says so), keeps nodes in float, and stops where the metric is
    within the budget."""
    from packager import build
    plain = build(project(tmp_path / "plain", "{entry: net.py:held_out, metric: net.py:fit}"), tmp_path / "o1")
    drop = (1.0 - by_id(plain)["onnx-int8-static-pc"].accuracy) * 100  # type: ignore[attr-defined]
    assert drop > 0.05, drop  # int8 really costs something here
    budget = round(drop * 0.85, 4)
    manifest = project(tmp_path / "mixed", f"{{entry: net.py:held_out, metric: net.py:fit, "
                                           f"max_accuracy_drop: {budget}}}")
    write_yaml(tmp_path / "mixed" / "x86-mixed.yaml", MIXED)
    manifest.write_text(manifest.read_text().replace("x86-budget.yaml", "x86-mixed.yaml"))
    result = build(manifest, tmp_path / "o2")
    cand = by_id(result)["onnx-int8-static-pc-mixed"]
    assert cand.status == "ok", (cand.status, cand.message, cand.notes)  # type: ignore[attr-defined]
    assert (1.0 - cand.accuracy) * 100 <= budget + 1e-6  # type: ignore[attr-defined]
    [t] = result.targets
    doc = json.loads((Path(t.bundle_dir) / "bundle.json").read_text())
    entry = next(c for c in doc["candidates"] if c["id"] == "onnx-int8-static-pc-mixed")
    rounds = entry["conversion"]["mixed"]["rounds"]
    assert not rounds[0]["passed"] and any(f.startswith("evaluation: fit ") and "points below" in f
                                           for f in rounds[0]["failures"]), rounds[0]
    assert rounds[-1]["passed"] and len(entry["conversion"]["kept_float"]) == len(rounds) - 1
