"""onnxruntime providers: asked vs got with the real library, and the option defaults per provider."""
from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import load
from runtime.backends.ort_providers import CUDA_DEFAULTS, options_for_providers, tensorrt_cache_dir
from runtime.errors import NoCandidateError

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def test_a_missing_secondary_provider_is_asked_vs_got(bundle_factory: Callable[..., Path],
                                                      kit: types.ModuleType) -> None:
    # real onnxruntime (CPU build): CUDA is asked for but not installed; the session runs on CPU
    root = bundle_factory(candidates=[kit.candidate("cpu-then-cuda", providers=[CPU, CUDA])])
    with load(root) as model:
        assert model.providers == [CPU] and model.degraded
        row = model.explain()[0]
        assert row["providers_asked"] == [CPU, CUDA] and row["providers_in_use"] == [CPU]
        assert f"asked providers [{CPU}, {CUDA}], session runs on [{CPU}]" in row["reason"]
        assert any(f"{CUDA} is not in this onnxruntime build" in n for n in row["notes"])
    with pytest.raises(NoCandidateError, match="refused: --strict"):
        load(root, strict=True)


def test_a_missing_primary_provider_moves_to_the_next_candidate(bundle_factory: Callable[..., Path],
                                                                kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("trt", providers=[TRT, CUDA, CPU]), kit.candidate("cpu")])
    with load(root) as model:
        assert model.candidate["id"] == "cpu" and not model.degraded
        assert f"provider {TRT} not available" in model.explain()[0]["reason"]


def test_tensorrt_options_cache_keyed_by_model_versions_and_gpu(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPACK_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model-a")
    opts = options_for_providers([TRT, CUDA, CPU], [{}, {}, {}], model_path=model, precision="fp16",
                                 ort_version="1.20.0")
    trt, cuda, cpu = opts
    assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"]
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"]
    assert trt["trt_engine_cache_path"].startswith(str(tmp_path / "cache" / "tensorrt"))
    assert cuda == CUDA_DEFAULTS and cpu == {}
    base = dict(model_path=model, ort_version="1.20.0", trt_version="10.3", gpu="Orin")
    first = tensorrt_cache_dir(**base, root=tmp_path)
    assert first == tensorrt_cache_dir(**base, root=tmp_path)
    for change in ({"ort_version": "1.21.0"}, {"trt_version": "10.4"}, {"gpu": "H100"}):
        assert tensorrt_cache_dir(**{**base, **change}, root=tmp_path) != first, change
    model.write_bytes(b"model-b")
    assert tensorrt_cache_dir(**base, root=tmp_path) != first, "a new model never reuses an old engine"


def test_target_options_override_the_defaults(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"m")
    trt, cuda = options_for_providers([TRT, CUDA], [{"trt_fp16_enable": False}, {"device_id": 1}],
                                      model_path=model, precision="fp16", ort_version="1.20.0")
    assert trt["trt_fp16_enable"] is False and cuda["device_id"] == 1
    assert cuda["cudnn_conv_algo_search"] == "HEURISTIC"
