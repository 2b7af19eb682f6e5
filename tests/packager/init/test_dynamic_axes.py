"""`edgepack init` of a torch text model: axis 1 of token ids (and of masks of the same length)
becomes the symbol `seq` where the model runs at another length, in the outputs that follow it
too; --dynamic names axes by hand, --static-axes keeps them fixed (packager/init/dynamic_axes.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run, tiny_onnx

TEXT_MODELS = '''
import torch
from torch import nn


class Tagger(nn.Module):
    """Per-token scores [B, L, 4] and a pooled class [B, 3]: any sequence length."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 8)
        self.tok = nn.Linear(8, 4)
        self.cls = nn.Linear(8, 3)

    def forward(self, ids, mask):
        h = self.emb(ids) * mask.unsqueeze(-1)
        return self.tok(h), self.cls(h.mean(1))


class FixedLength(nn.Module):
    """Flattens the sequence into a Linear: only length 6 works."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 2)
        self.fc = nn.Linear(12, 3)

    def forward(self, ids):
        return self.fc(self.emb(ids).flatten(1))


def tagger():
    return Tagger().eval()


def fixed():
    return FixedLength().eval()
'''


@pytest.fixture
def text(project: Path) -> Path:
    (project / "text.py").write_text(TEXT_MODELS)
    return project


def _init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code, out, err = run(capsys, *args, "-o", "-", "--json")
    return code, (json.loads(out) if code == 0 else {}), err


def test_sequence_axis_is_probed_for_token_inputs_and_followed_into_outputs(
        text: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data, err = _init(capsys, "text.py:tagger", "-x", "ids=1x6:int64", "-x", "mask=1x6:int64")
    assert code == 0, err
    assert [i["shape"] for i in data["inputs"]] == [["batch", "seq"], ["batch", "seq"]]
    assert [o["shape"] for o in data["outputs"]] == [["batch", "seq", 4], ["batch", 3]]
    assert any("axis 1 of ids, mask is the symbol 'seq'" in n and "length 6 and 9" in n for n in data["notes"])
    code, data, err = _init(capsys, "text.py:tagger", "-x", "ids=1x6:int64", "-x", "mask=1x6:int64",
                            "--static-axes")
    assert code == 0 and [i["shape"] for i in data["inputs"]] == [["batch", 6], ["batch", 6]]


def test_a_model_that_needs_its_length_keeps_it_and_says_why(text: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, data, err = _init(capsys, "text.py:fixed", "-x", "ids=1x6:int64")
    assert code == 0, err
    assert data["inputs"][0]["shape"] == ["batch", 6]
    note = next(n for n in data["notes"] if "stays fixed at 6" in n)
    assert "fails at 9" in note and "--dynamic" in note
    code, data, err = _init(capsys, "text.py:fixed", "-x", "ids=1x6:int64", "--dynamic", "ids:1=tokens")
    assert code == 0 and data["inputs"][0]["shape"] == ["batch", "tokens"]  # as asked, though it fails
    assert any("--dynamic: axis 1 of ids is 'tokens'" in n for n in data["notes"])


def test_images_are_not_probed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data, err = _init(capsys, "tiny.py:build", "-x", "1x1x4x4")
    assert code == 0, err
    assert data["inputs"][0]["shape"] == ["batch", 1, 4, 4] and not any("seq" in n for n in data["notes"])


@pytest.mark.parametrize("spec, says", [
    ("ids:0=n", "axis 0, the batch axis"), ("ids1", "is not [INPUT:]AXIS=SYMBOL"),
    ("nope:1=seq", "names input 'nope'"), ("ids:3=seq", "no axis 3 in ids"), ("ids:1=9x", "is not a symbol")])
def test_bad_dynamic_specs_are_clear_errors(text: Path, capsys: pytest.CaptureFixture[str], spec: str,
                                            says: str) -> None:
    code, _, err = _init(capsys, "text.py:fixed", "-x", "ids=1x6:int64", "--dynamic", spec)
    assert code == 2 and says in err and "hint:" in err, err


def test_dynamic_is_refused_for_a_model_that_states_its_signature(project: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    tiny_onnx(project / "tiny.onnx")
    code, _, err = _init(capsys, "tiny.onnx", "--dynamic", "1=seq")
    assert code == 2 and "--dynamic is for torch entry points" in err, err
