"""A transformers model with SDPA attention gets one more export to compare: the TorchScript
exporter with eager attention (what Optimum's export has); the source model is left as it was."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from packager.config.manifest import load_manifest
from packager.convert import torch_to_onnx
from packager.convert.attention import eager_attention

from ...conftest import write_yaml

transformers = pytest.importorskip("transformers", reason="transformers comes with litert-torch (dev extras)")

BERT = '''
import torch
from transformers import BertConfig, BertForSequenceClassification


def build():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3)
    model = BertForSequenceClassification(cfg).eval()
    model.config.return_dict = False
    return model
'''


def test_eager_attention_is_one_more_judged_export_and_is_undone(tmp_path: Path) -> None:
    (tmp_path / "bert.py").write_text(BERT)
    manifest = load_manifest(write_yaml(tmp_path / "bert.yaml", """\
        name: bert
        source: {framework: torch, entry: bert.py:build}
        inputs: [{name: input_ids, dtype: int64, shape: [batch, 16]}]
        outputs: [logits]
        calibration: {file: none.npz}
        targets: [x86-cpu]
        """))
    from packager.sources import load_source
    model = load_source(manifest).module
    assert model.config._attn_implementation == "sdpa"
    swap = eager_attention(model)
    assert swap is not None
    with swap():
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == "sdpa"
    seen: list[list[str]] = []

    def judge(models: list[tuple[str, object]]) -> tuple[int, list[str]]:
        seen.append([name for name, _ in models])
        return 1, ["kept the second"]
    feeds = {"input_ids": np.random.default_rng(0).integers(1, 100, (2, 16)).astype(np.int64)}
    result = torch_to_onnx.export_torch(model, manifest, feeds, judge=judge)
    assert seen[0][1] == torch_to_onnx.TORCHSCRIPT + " with eager attention", seen  # judged second
    assert result.exporter == seen[0][1] and model.config._attn_implementation == "sdpa"
    ops = {n.op_type for n in result.model.graph.node}
    assert "IsNaN" not in ops  # the SDPA export's guard after Softmax is not in the eager graph
    assert eager_attention(torch_to_onnx) is None  # not a transformers model


def test_a_wrapped_transformers_model_gets_the_eager_export_too(tmp_path: Path) -> None:
    """Users wrap a transformers model to return a tensor (``.logits``); the wrapper has no config,
    the model inside has."""
    import torch
    namespace: dict = {}
    exec(BERT, namespace)
    inner = namespace["build"]()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids)[0]

    wrapper = Logits().eval()
    swap = eager_attention(wrapper)
    assert swap is not None and inner.config._attn_implementation == "sdpa"
    with swap():
        assert inner.config._attn_implementation == "eager"
        assert all(m.config._attn_implementation == "eager" for m in inner.modules() if hasattr(m, "config"))
    assert inner.config._attn_implementation == "sdpa"
    assert eager_attention(torch.nn.Linear(2, 2)) is None  # no transformers model inside
