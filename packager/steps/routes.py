"""The route table: (source framework, format, precision) -> the steps that make that artifact.

The main process and the worker processes both look a candidate's route up here; adding a route
is one entry below plus its step. Routes that share their model steps (every ONNX precision
starts from one base model) share their results: the scheduler keys each step's output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..config.targets import CandidateSpec
from ..errors import UnsupportedError
from .artifact_steps import (
    OnnxFp16,
    OnnxFp32,
    OnnxInt8Dynamic,
    OnnxInt8Static,
    OnnxToTflite,
    OnnxToTorchScript,
    TfToTflite,
    TorchScriptConvert,
    TorchToTflite,
)
from .base import ArtifactStep, ModelStep, Variant, variant_of
from .model_steps import OnnxLoad, Prepare, Simplify, TfExport, TorchExport, UpgradeOpset

Framework = Literal["torch", "tensorflow", "onnx"]
Format = Literal["onnx", "tflite", "torchscript"]
RouteKey = tuple[str, str, Variant]  # (framework, format, variant): plain strings travel to workers


@dataclass(frozen=True)
class Route:
    """The model steps (target-independent, shared by every route that starts with them), then
    the step that makes the candidate's file."""

    model_steps: tuple[ModelStep, ...]
    make: ArtifactStep
    # tried when ``make`` fails or cannot take the model (recorded in the candidate's notes and the
    # build's warnings): PyTorch and TensorFlow -> TFLite through the exported ONNX model and onnx2tf
    fallback: Route | None = None


_BASE: dict[Framework, tuple[ModelStep, ...]] = {
    "torch": (TorchExport(), Prepare(), Simplify()),
    "tensorflow": (TfExport(), Prepare(), Simplify()),
    "onnx": (OnnxLoad(), Prepare(), Simplify()),
}
_ONNX_PASSES: dict[Variant, ArtifactStep] = {"fp32": OnnxFp32(), "fp16": OnnxFp16(),
                                             "int8-dynamic": OnnxInt8Dynamic(), "int8-static": OnnxInt8Static()}
_VARIANTS: tuple[Variant, ...] = get_args(Variant)
# an ONNX source keeps its opset: the passes that need a newer one upgrade their own copy, so a failed
# upgrade fails them alone (torch and TensorFlow models are exported at export.opset, 13 or newer)
_OPSET: dict[tuple[str, Variant], tuple[ModelStep, ...]] = {
    ("onnx", v): (UpgradeOpset(v),) for v in ("int8-dynamic", "int8-static")}

ROUTES: dict[RouteKey, Route] = {
    **{(fw, "onnx", v): Route(_BASE[fw] + _OPSET.get((fw, v), ()), step) for fw in get_args(Framework)
       for v, step in _ONNX_PASSES.items()},
    **{("torch", "tflite", v): Route((), TorchToTflite(), Route(_BASE["torch"], OnnxToTflite())) for v in _VARIANTS},
    **{("torch", "torchscript", v): Route((), TorchScriptConvert()) for v in _VARIANTS},
    **{("tensorflow", "tflite", v): Route((), TfToTflite(), Route(_BASE["tensorflow"], OnnxToTflite()))
       for v in _VARIANTS},
    # from the base model: onnx2tf in its own environment (torch and TensorFlow keep their own routes)
    **{("onnx", "tflite", v): Route(_BASE["onnx"], OnnxToTflite()) for v in _VARIANTS},
    # from the base model: edgepack's ONNX -> torch op table, then torch.jit.trace
    **{("onnx", "torchscript", v): Route(_BASE["onnx"], OnnxToTorchScript()) for v in _VARIANTS},
}

UNSUPPORTED_ROUTES: dict[tuple[str, str], str] = {
    ("tensorflow", "torchscript"): "TorchScript is PyTorch's format: a TensorFlow model cannot be "
                                   "turned into TorchScript",
}

SUPPORTED_FORMATS: dict[str, tuple[str, ...]] = {
    fw: tuple(dict.fromkeys(fmt for (f, fmt, _) in ROUTES if f == fw)) for fw in get_args(Framework)}


def route_for(framework: str, spec: CandidateSpec) -> tuple[RouteKey, Route]:
    """The candidate's route, or UnsupportedError saying why there is none and what to use."""
    key = (framework, spec.format, variant_of(spec))
    route = ROUTES.get(key)
    if route is None:
        reason = UNSUPPORTED_ROUTES.get((framework, spec.format),
                                        f"{framework} -> {spec.format} {key[2]} is not supported")
        raise UnsupportedError(reason, where=f"candidate {spec.id}",
                               hint=f"use {' or '.join(SUPPORTED_FORMATS.get(framework, ()))} candidates "
                                    f"for {framework} models")
    return key, route
