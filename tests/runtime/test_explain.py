"""``python -m runtime verify --explain``: the per-node table made on the device from what a bundle
built with ``explain_bytes`` carries (runtime/explain.py; packager/diagnose/probe.py). A real
classifier whose plain int8 is all zeros (a 1000-way softmax over untrained logits): the device
finds the Softmax; a device that computes one convolution differently (its probe's weight scale
changed here, as a faulty kernel would) is named as where it parts ways with the build host."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.bundle import open_bundle
from runtime.explain import explain_here

from ..conftest import REPO
from ..packager.diagnose.test_mixed import project  # the softmax classifier's model file and manifest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

TARGET = """\
name: explain-x86
arch: x86_64
python: "3.11"
threads: 1
explain_bytes: {budget}
candidates:
  - {{id: int8-plain, format: onnx, precision: int8, quantization: {{mode: static, per_channel: true}}}}
  - {{id: fp32, format: onnx, precision: fp32}}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""


def _build(folder: Path, budget: int) -> tuple[Path, list[str]]:
    from packager import build
    folder.mkdir(parents=True, exist_ok=True)
    result = build(project(folder, TARGET.format(budget=budget)), folder / "out", allow_parity_failure=True)
    [t] = result.targets
    return Path(t.bundle_dir), result.warnings


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = _build(tmp_path_factory.mktemp("explain"), 4_000_000)
    return path


def _verify(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime", "verify", str(bundle), "--all", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_the_bundle_carries_the_probe_and_references_within_the_budget(bundle: Path) -> None:
    doc = json.loads((bundle / "bundle.json").read_text())
    entry = next(c for c in doc["candidates"] if c["id"] == "int8-plain")
    record = entry["explain"]
    assert record["probe"] == "explain/int8-plain.probe.onnx" and record["samples"] == 4
    sizes = (bundle / record["probe"]).stat().st_size + (bundle / record["references"]).stat().st_size
    assert sizes <= 4_000_000
    probe = onnx.load(str(bundle / record["probe"]))
    outputs = {o.name for o in probe.graph.output}
    assert {t["output"] for t in record["tensors"]} <= outputs  # every probed tensor is a probe output
    refs = np.load(bundle / record["references"])
    assert sorted(refs.files) == sorted(t["tensor"] for t in record["tensors"])
    assert all(refs[t["tensor"]].shape[0] == 4 for t in record["tensors"])  # one row per golden sample
    assert [t["depth"] for t in record["tensors"]] == sorted(t["depth"] for t in record["tensors"])
    assert "explain" not in next(c for c in doc["candidates"] if c["id"] == "fp32")  # int8 only
    open_bundle(bundle).verify()  # the new files are in the bundle's hashes


def test_verify_explain_finds_the_softmax_on_the_device(bundle: Path) -> None:
    proc = _verify(bundle, "--explain", "--json")
    assert proc.returncode == 1, proc.stderr  # plain int8 fails parity
    doc = json.loads(proc.stdout)
    cands = {c["candidate"]: c for c in doc["candidates"]}
    explained = cands["int8-plain"]["explained"]
    assert explained["starts"][0]["op_type"] == "Softmax" and explained["starts"][0]["snr_db"] < 1.0
    assert explained["starts"][0]["added_db"] > 40
    # the same CPU provider as the build host: every tensor as there
    assert explained["first_worse_than_host"] is None and not explained["worse_than_host"]
    assert "explained" not in cands["fp32"]  # it passed and carries nothing to explain
    text = _verify(bundle, "--explain")
    assert "where the error starts on this device" in text.stdout and "Softmax" in text.stdout
    assert "within 6 dB of the build host" in text.stdout
    plain = _verify(bundle)
    assert "where the error starts" not in plain.stdout  # only when asked


def test_the_device_report_shows_the_table(bundle: Path, tmp_path: Path) -> None:
    html = tmp_path / "verify.html"
    proc = _verify(bundle, "--explain", "--report", str(html))
    assert proc.returncode == 1 and html.is_file(), proc.stderr
    section = html.read_text(encoding="utf-8").split('data-candidate="int8-plain"')[1].split("</section>")[0]
    assert "where the error starts on this device" in section and "Softmax" in section
    assert "every probed tensor within 6 dB of the build host" in section and "<svg" in section


def test_a_device_that_computes_a_layer_differently_is_named(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    record = json.loads((copy / "bundle.json").read_text())
    entry = next(c for c in record["candidates"] if c["id"] == "int8-plain")["explain"]
    probe = onnx.load(str(copy / entry["probe"]))
    inits = {i.name: i for i in probe.graph.initializer}
    convs = [n for n in probe.graph.node if n.op_type == "Conv"]
    weight_dq = next(n for n in probe.graph.node if n.output[0] == convs[1].input[1])  # the second conv's weights
    scale = inits[weight_dq.input[1]]
    values = onnx.numpy_helper.to_array(scale) * np.float32(1.8)  # a kernel that gets the scale wrong
    scale.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), scale.name))
    onnx.save(probe, str(copy / entry["probe"]))
    opened = open_bundle(copy)
    cand = next(c for c in opened.candidates if c.id == "int8-plain")
    got = explain_here(opened, cand, ["CPUExecutionProvider"])
    rows = got["rows"]  # the first conv's ReLU, the second's (fused by onnxruntime), the pooling, ...
    assert [r["op_type"] for r in rows[:2]] == ["Relu", "Relu"]
    assert got["first_worse_than_host"] == rows[1]["node"]  # the second convolution's output
    assert rows[1]["snr_db"] < rows[1]["host_snr_db"] - 6 and rows[1]["added_db"] > 6
    assert abs(rows[0]["snr_db"] - rows[0]["host_snr_db"]) < 0.01  # before it, as on the host


def test_without_references_verify_explain_says_how_to_get_them(tmp_path: Path) -> None:
    path, warnings = _build(tmp_path / "small", 1000)  # too small for even the probe
    doc = json.loads((path / "bundle.json").read_text())
    assert not (path / "explain").exists() and all("explain" not in c for c in doc["candidates"])
    assert any("int8-plain: no per-node references for verify --explain: the int8 model alone is" in w
               for w in warnings), warnings
    proc = _verify(path, "--explain", "--json")
    explained = {c["candidate"]: c for c in json.loads(proc.stdout)["candidates"]}["int8-plain"]["explained"]
    assert "carries no per-node references for int8-plain" in explained["error"]
    assert "explain_bytes" in explained["hint"]


def test_inspect_says_the_bundle_carries_the_references(bundle: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "packager", "inspect", str(bundle)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((bundle / "bundle.json").read_text())
    record = next(c for c in doc["candidates"] if c["id"] == "int8-plain")["explain"]
    assert f"verify --explain: {len(record['tensors'])} tensors probed on 4 golden samples" in proc.stdout
    assert "explain/int8-plain.probe.onnx" in proc.stdout
    # kept in the bundle despite failing parity (--allow-parity-failure): the build host's table with it
    host = proc.stdout.split("where the error starts on the build host")[1].splitlines()[1]
    assert host.strip().startswith(f"{record['tensors'][-1]['node']} (Softmax): SNR 0.0 dB")  # the last probed
