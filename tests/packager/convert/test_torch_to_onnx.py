"""torch -> ONNX: dynamic batch from the manifest's symbols, and a recorded exporter fallback."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from packager.config.manifest import load_manifest
from packager.convert import torch_to_onnx
from packager.errors import ConversionError
from packager.inputs.data import load_samples
from packager.onnx_utils import serialize
from packager.sources import load_source


def _export(tiny_project: Callable[..., Path], **overrides: object):
    m = load_manifest(tiny_project(**overrides))
    src = load_source(m)
    cal = load_samples(m.calibration, m, "calibration")
    return m, src, cal, torch_to_onnx.export_torch(src.module, m, cal.take(slice(0, 1)).arrays)


def test_dynamo_export_keeps_names_and_dynamic_batch(tiny_project: Callable[..., Path]) -> None:
    m, src, cal, result = _export(tiny_project)
    assert result.exporter == torch_to_onnx.DYNAMO and not result.notes
    sess = ort.InferenceSession(serialize(result.model), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x"] and [o.name for o in sess.get_outputs()] == ["scores"]
    assert sess.get_inputs()[0].shape[0] == "batch"
    for n in (1, 3, 7):  # the example had batch 1: the dim must not be specialised
        x = cal.arrays["x"][:n]
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], src.reference({"x": x})["scores"],
                                   atol=1e-5, rtol=1e-4)


def test_fallback_to_torchscript_exporter_is_recorded(tiny_project: Callable[..., Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("torch.export could not trace data-dependent control flow")
    monkeypatch.setattr(torch_to_onnx, "_export_dynamo", broken)
    _, _, cal, result = _export(tiny_project)
    assert result.exporter == torch_to_onnx.TORCHSCRIPT
    assert "fell back" in result.notes[0] and "data-dependent" in result.notes[0]
    sess = ort.InferenceSession(serialize(result.model), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": cal.arrays["x"][:5]})[0].shape == (5, 5)


def test_all_exporters_failing_is_a_clear_error(tiny_project: Callable[..., Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("nope")
    monkeypatch.setattr(torch_to_onnx, "_export_dynamo", broken)
    monkeypatch.setattr(torch_to_onnx, "_export_torchscript", broken)
    with pytest.raises(ConversionError) as info:
        _export(tiny_project)
    assert "every exporter" in info.value.message and "exporter: torchscript" in info.value.hint
