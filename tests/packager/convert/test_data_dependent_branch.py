"""A PyTorch model with a Python `if` on a tensor's value: a trace (torch.jit.trace, or the
TorchScript-based ONNX exporter) keeps only the branch the example took. With the default
`auto` settings the build scripts the model instead (TorchScript artifact by torch.jit.script,
ONNX by exporting the scripted model: an If node), both branches agree with PyTorch, and the log
names the line that branched. With the trace forced, the note says what to do."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from packager.config.manifest import load_manifest
from packager.convert import torch_to_onnx
from packager.convert.torch_to_torchscript import to_torchscript
from packager.pipeline import build
from packager.sources import load_source

from ...conftest import write_yaml

pytestmark = pytest.mark.slow

BRANCHY = '''
import numpy as np
import torch
from torch import nn


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:
            return h * 2.0
        return -h


def build(seed=0):
    torch.manual_seed(seed)
    return Branchy().eval()


def samples(n=32):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    x[::2] += 3.0  # half the samples take one branch, half the other
    x[1::2] -= 3.0
    yield {"x": x}
'''
BRANCH_LINE = "`if h.sum() > 0:`"

TARGET = """\
name: branchy-x86
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - {format: torchscript, precision: fp32}
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1, torch==2.13.0]
"""


def manifest(folder: Path, export: str = "") -> Path:
    (folder / "branchy.py").write_text(BRANCHY)
    write_yaml(folder / "branchy-x86.yaml", TARGET)
    return write_yaml(folder / "branchy.yaml", f"""\
        name: branchy
        source: {{framework: torch, entry: branchy.py:build}}
        inputs: [{{name: x, dtype: float32, shape: [1, 4]}}]
        outputs: [scores]
        calibration: {{entry: branchy.py:samples, samples: 32}}
        golden: {{samples: 8}}
        targets: [branchy-x86.yaml]
        {export}
        """)


def test_auto_scripts_the_branch_and_both_artifacts_ship(tmp_path: Path) -> None:
    result = build(manifest(tmp_path), tmp_path / "out")
    (target,) = result.targets
    by_id = {c.id: c for c in target.candidates}
    for cid in ("torchscript-fp32", "onnx-fp32"):
        c = by_id[cid]
        assert c.status == "ok", (cid, c.status, c.message)
        assert c.parity is not None and all(o.max_abs is not None and o.max_abs < 1e-5 for o in c.parity.outputs)
    assert target.status == "ok"
    notes = " ".join(result.warnings)
    assert f"branchy.py:14: {BRANCH_LINE}" in notes and "ONNX If" in notes, result.warnings
    bundle = Path(target.bundle_dir or "")
    model = onnx.load(str(next(bundle.glob("**/*.onnx"))))
    assert "If" in {n.op_type for n in model.graph.node}


def test_a_forced_trace_says_where_it_branched_and_what_to_do(tmp_path: Path) -> None:
    m = load_manifest(manifest(tmp_path, "export: {exporter: torchscript, torchscript: trace}"))
    src = load_source(m)
    feeds = {"x": np.full((1, 4), 3.0, np.float32)}
    exported = torch_to_onnx.export_torch(src.module, m, feeds)
    assert exported.exporter == torch_to_onnx.TORCHSCRIPT
    assert any(BRANCH_LINE in n and "only the branch" in n for n in exported.notes), exported.notes
    assert any("torch.where" in n for n in exported.notes)
    traced = to_torchscript(src.module, m, feeds, precision="fp32", arch="x86_64", method="trace")
    assert traced.method == "torch.jit.trace" and any(BRANCH_LINE in n for n in traced.notes), traced.notes
    auto = to_torchscript(src.module, m, feeds, precision="fp32", arch="x86_64", method="auto")
    assert auto.method == "torch.jit.script"
    import io
    module = torch.jit.load(io.BytesIO(auto.data))
    low = torch.full((1, 4), -3.0)  # the branch the example did not take
    np.testing.assert_allclose(module(low).detach().numpy(), src.module(low).detach().numpy(), atol=1e-6)
    trace_module = torch.jit.load(io.BytesIO(traced.data))
    assert not np.allclose(trace_module(low).detach().numpy(), src.module(low).detach().numpy(), atol=1e-3)
