"""The route table: every route is a well-formed chain of steps, and missing routes say why."""
from __future__ import annotations

import pytest

from packager.config.targets import CandidateSpec, Quantization
from packager.errors import UnsupportedError
from packager.steps import ROUTES, SUPPORTED_FORMATS, route_for, variant_of


@pytest.mark.parametrize("key", sorted(ROUTES))
def test_each_route_chains_what_one_step_ensures_into_what_the_next_requires(key: tuple[str, str, str]) -> None:
    route = ROUTES[key]
    have = "source"
    for step in route.model_steps:
        assert step.requires == have, f"{key}: {step.name} requires {step.requires}, gets {have}"
        have = step.ensures
    assert route.make.requires == have and route.make.ensures == "artifact"


def test_formats_and_variants() -> None:
    assert SUPPORTED_FORMATS == {"torch": ("onnx", "tflite", "torchscript"), "tensorflow": ("onnx", "tflite"),
                                 "onnx": ("onnx", "tflite", "torchscript")}
    assert len(ROUTES) == 4 * 8  # every precision of every supported (framework, format)
    # every ONNX precision of one framework starts from the same model steps (made once)
    assert len({ROUTES[("torch", "onnx", v)].model_steps for v in ("fp32", "fp16", "int8-dynamic", "int8-static")}) == 1
    int8 = CandidateSpec("a", "onnx", "int8", "onnxruntime", quantization=Quantization(mode="dynamic"))
    assert variant_of(int8) == "int8-dynamic" and ROUTES[("onnx", "onnx", "int8-dynamic")].make.name == "int8-dynamic"


def test_a_missing_route_names_the_candidate_and_what_to_use() -> None:
    spec = CandidateSpec("ts", "torchscript", "fp32", "torchscript")
    with pytest.raises(UnsupportedError) as info:
        route_for("tensorflow", spec)
    assert "TorchScript is PyTorch's format" in info.value.message and info.value.where == "candidate ts"
    assert info.value.hint == "use onnx or tflite candidates for tensorflow models"
    key, route = route_for("torch", spec)
    assert key == ("torch", "torchscript", "fp32") and route.make.name == "torchscript" and not route.model_steps
    key, route = route_for("onnx", spec)  # from the base model, through edgepack's ONNX -> torch op table
    assert route.model_steps == ROUTES[("onnx", "onnx", "fp32")].model_steps and route.make.requires == "onnx"
    assert type(route.make).__name__ == "OnnxToTorchScript" and route.make.name == "torchscript"


def test_onnx_models_reach_tflite_from_their_base_model() -> None:
    """onnx2tf converts the loaded, upgraded, simplified ONNX model the ONNX candidates start from;
    torch and TensorFlow keep their own converters (from the source model)."""
    route = ROUTES[("onnx", "tflite", "int8-static")]
    assert route.model_steps == ROUTES[("onnx", "onnx", "fp32")].model_steps and route.make.requires == "onnx"
    assert type(route.make).__name__ == "OnnxToTflite" and "calibration" in route.make.reads
    assert not route.make.parallel  # a subprocess already; the environment is created in the main process
    assert type(ROUTES[("torch", "tflite", "fp32")].make).__name__ == "TorchToTflite"
    assert type(ROUTES[("tensorflow", "tflite", "fp32")].make).__name__ == "TfToTflite"
