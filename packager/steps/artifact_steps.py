"""The steps that make one candidate's file: ONNX precision passes on the base model, and the
framework conversions to TorchScript and TFLite (from the source model itself).

The ONNX passes need only the base model and the calibration batches, so a worker running them
imports onnx/onnxruntime and never torch or TensorFlow.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import UnsupportedError
from ..results import Made
from .base import ArtifactStep, Kind, StepContext, StepName
from .model_steps import _onnx, _source, first_feed_batch

if TYPE_CHECKING:
    import onnx

    from ..config.manifest import Manifest
    from ..config.targets import CandidateSpec, Target
    from ..passes import PassResult
    from ..passes.quantize import Repair
    from ..sources import Source


def _calibration_batches(ctx: StepContext) -> list[dict[str, Any]] | None:
    cal = ctx.calibration()
    return list(cal.batches(ctx.manifest.calibration.batch_size)) if cal is not None else None


class _OnnxPass(ArtifactStep):
    """A precision pass on the fp32 base model: the artifact is the pass's model."""

    requires: ClassVar[Kind] = "onnx"
    tools = ("onnx", "onnxruntime")

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext, spec: CandidateSpec,
            target: Target) -> Made:
        from ..onnx_utils import serialize
        result = self.apply(_onnx(value), ctx, spec)
        # the converter ("<exporter> + <pass>") is completed by the scheduler, which knows the exporter
        return Made(serialize(result.model), ".onnx", result.name, result.details, result.notes)

    @abstractmethod
    def apply(self, model: onnx.ModelProto, ctx: StepContext, spec: CandidateSpec) -> PassResult: ...


class OnnxFp32(_OnnxPass):
    """The base model, with onnxsim's shape annotations or without, whichever onnxruntime runs
    faster on the build host (``passes.annotations``)."""

    name: ClassVar[StepName] = "fp32"
    reads = frozenset({"golden"})  # timed on a golden sample
    parallel = False  # timed in the main process, as the exporters are

    def apply(self, model: onnx.ModelProto, ctx: StepContext, spec: CandidateSpec) -> PassResult:
        from ..passes.annotations import fastest
        return fastest(model, next(ctx.golden().batches(1)), log=ctx.progress.detail)


class OnnxFp16(_OnnxPass):
    """float16 weights and activations (onnxconverter-common, I/O kept float32)."""

    name: ClassVar[StepName] = "fp16"

    def apply(self, model: onnx.ModelProto, ctx: StepContext, spec: CandidateSpec) -> PassResult:
        from ..passes import quantize
        return quantize.to_fp16(model)


class OnnxInt8Dynamic(_OnnxPass):
    """int8 weights, activations quantized at run time (no calibration data)."""

    name: ClassVar[StepName] = "int8-dynamic"

    def apply(self, model: onnx.ModelProto, ctx: StepContext, spec: CandidateSpec) -> PassResult:
        from ..passes import quantize
        return quantize.int8_dynamic(model)


def _repair(ctx: StepContext, spec: CandidateSpec) -> Repair | None:
    """What the mixed-precision search checks against, for a ``fallback: mixed`` candidate: the
    golden samples and tolerances the build's parity check uses, and the accuracy budget."""
    if spec.quantization is None or spec.quantization.fallback != "mixed":
        return None
    from ..metrics import Budget
    from ..passes.quantize import Repair  # noqa: F811 (at run time; the one above is for types)
    m = ctx.manifest
    budget = Budget.of(m, ctx.evaluation(), ctx.reference_metric()) if m.evaluation and m.evaluation.max_drop \
        is not None else None
    return Repair(list(ctx.golden().batches(m.calibration.batch_size)),
                  {o.name: m.tolerance_for("int8", o.name) for o in m.outputs},
                  {o.name: o.scores for o in m.outputs if o.scores is not None}, budget)


class OnnxInt8Static(_OnnxPass):
    """int8 weights and activations, calibrated on the manifest's calibration data."""

    name: ClassVar[StepName] = "int8-static"
    reads = frozenset({"calibration", "golden", "evaluation"})  # the mixed-precision search checks on them

    def apply(self, model: onnx.ModelProto, ctx: StepContext, spec: CandidateSpec) -> PassResult:
        from ..passes import quantize
        cal, batches = ctx.calibration(), _calibration_batches(ctx)
        assert spec.quantization is not None and cal is not None and batches is not None
        return quantize.int8_static(model, spec.quantization, batches, random_data=cal.random,
                                    repair=_repair(ctx, spec))


class TorchScriptConvert(ArtifactStep):
    """torch.nn.Module -> TorchScript (traced or scripted; int8 by dynamic quantization)."""

    name: ClassVar[StepName] = "torchscript"
    requires: ClassVar[Kind] = "source"
    reads = frozenset({"golden"})  # example inputs for tracing
    tools = ("torch",)

    def config(self, manifest: Manifest, spec: CandidateSpec, target: Target) -> dict[str, Any]:
        return dict(super().config(manifest, spec, target), method=manifest.torchscript)

    def variant(self, spec: CandidateSpec, target: Target) -> str:
        """int8 depends on the CPU's quantized engine (fbgemm on x86, qnnpack on ARM)."""
        if spec.precision == "int8":
            from ..convert.torch_to_torchscript import quantized_engine_for
            return f"{spec.variant}-{quantized_engine_for(target.arch)}"
        return spec.variant

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext, spec: CandidateSpec,
            target: Target) -> Made:
        from ..convert.torch_to_torchscript import to_torchscript
        from ..sources.torch_source import TorchSource
        if spec.precision == "int8" and spec.quantization and spec.quantization.mode == "static":
            raise UnsupportedError("TorchScript int8 is dynamic quantization only", where=f"candidate {spec.id}",
                                   hint="use quantization: {mode: dynamic}, or an onnx int8 static candidate")
        result = to_torchscript(_source(value, TorchSource).module, ctx.manifest, first_feed_batch(ctx),
                                precision=spec.precision, arch=target.arch, method=ctx.manifest.torchscript)
        extras = {"quantized_engine": result.details["quantized_engine"]} \
            if "quantized_engine" in result.details else {}
        return Made(result.data, ".pt", "torchscript", result.details, result.notes, extras, result.method)


class OnnxToTorchScript(TorchScriptConvert):
    """The base ONNX model -> ``nn.Module`` (edgepack's op table) -> TorchScript by trace, its
    symbolic axes checked at twice the length (``convert.onnx_to_torchscript``)."""

    requires: ClassVar[Kind] = "onnx"

    def config(self, manifest: Manifest, spec: CandidateSpec, target: Target) -> dict[str, Any]:
        from ..convert.onnx_to_torchscript import CONVERTER
        return dict(ArtifactStep.config(self, manifest, spec, target), converter=CONVERTER)

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext, spec: CandidateSpec,
            target: Target) -> Made:
        from ..convert.onnx_to_torchscript import onnx_to_torchscript
        if spec.precision == "int8" and spec.quantization and spec.quantization.mode == "static":
            raise UnsupportedError("TorchScript int8 is dynamic quantization only", where=f"candidate {spec.id}",
                                   hint="use quantization: {mode: dynamic}, or an onnx int8 static candidate")
        result = onnx_to_torchscript(_onnx(value), ctx.manifest, first_feed_batch(ctx), precision=spec.precision,
                                     arch=target.arch)
        extras: dict[str, Any] = {k: result.details[k] for k in ("quantized_engine", "static_batch", "static_axes")
                  if k in result.details}
        return Made(result.data, ".pt", "torchscript", result.details, result.notes, extras, result.method)


class TfToTflite(ArtifactStep):
    """TensorFlow SavedModel -> TFLite (TFLiteConverter; int8 calibrated on the calibration data)."""

    name: ClassVar[StepName] = "tflite"
    requires: ClassVar[Kind] = "source"
    reads = frozenset({"calibration"})
    tools = ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert")

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext, spec: CandidateSpec,
            target: Target) -> Made:
        from ..convert.tf_to_tflite import to_tflite
        from ..sources.tf_source import TensorFlowSource
        cal = ctx.calibration()
        result = to_tflite(_source(value, TensorFlowSource), precision=spec.precision,
                           mode=spec.quantization.mode if spec.quantization else None, io=spec.io,
                           calibration=_calibration_batches(ctx), random_data=bool(cal and cal.random))
        return Made(result.data, ".tflite", "tflite", result.details, result.notes, {"io_map": result.io_map},
                    result.details["converter"])


class TorchToTflite(ArtifactStep):
    """torch.nn.Module -> TFLite (litert-torch, for a batch of one sample)."""

    name: ClassVar[StepName] = "tflite"
    requires: ClassVar[Kind] = "source"
    reads = frozenset({"calibration", "golden"})
    tools = ("torch", "litert-torch", "ai-edge-litert")

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext, spec: CandidateSpec,
            target: Target) -> Made:
        from ..convert.torch_to_tflite import torch_to_tflite
        from ..sources.torch_source import TorchSource
        samples = ctx.calibration() or ctx.golden()
        batches = list(samples.batches(ctx.manifest.calibration.batch_size))
        result = torch_to_tflite(_source(value, TorchSource).module, ctx.manifest, batches,
                                 precision=spec.precision, quantization=spec.quantization, io=spec.io)
        return Made(result.data, ".tflite", "tflite", result.details, result.notes,
                    {"io_map": result.io_map, "static_batch": result.details["static_batch"],
                     **({"static_axes": result.details["static_axes"]} if "static_axes" in result.details else {})},
                    result.details["converter"])


class OnnxToTflite(ArtifactStep):
    """The base ONNX model -> TFLite with onnx2tf, run as a subprocess in its own Python >= 3.12
    environment (created once: packager.convert.converter_env); int8 static: onnx2tf's float
    model quantized by ai-edge-quantizer, calibrated on the calibration data."""

    name: ClassVar[StepName] = "tflite"
    requires: ClassVar[Kind] = "onnx"
    reads = frozenset({"calibration", "golden", "evaluation"})  # the mixed-precision search checks on them
    # onnx serializes the model handed over (onnx2tf's own pin is in config); ai-edge-quantizer
    # quantizes int8 static here
    tools = ("onnx", "ai-edge-quantizer", "ai-edge-litert")
    parallel = False  # a subprocess already; its first run creates the environment (a progress line)

    def config(self, manifest: Manifest, spec: CandidateSpec, target: Target) -> dict[str, Any]:
        from ..convert.converter_env import ONNX2TF
        return dict(super().config(manifest, spec, target), converter=ONNX2TF.requirement)

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext, spec: CandidateSpec,
            target: Target) -> Made:
        from ..convert.converter_env import announced
        from ..convert.onnx_to_tflite import onnx_to_tflite
        static = spec.precision == "int8" and spec.quantization is not None and spec.quantization.mode == "static"
        cal = ctx.calibration() if static else None
        result = onnx_to_tflite(_onnx(value), ctx.manifest, precision=spec.precision, quantization=spec.quantization,
                                io=spec.io, calibration=cal.arrays if cal else None,
                                calibration_batched=cal.batched if cal else True, random_data=bool(cal and cal.random),
                                on_create=announced(ctx.progress), repair=_repair(ctx, spec) if static else None,
                                golden=list(ctx.golden().batches(ctx.manifest.calibration.batch_size)) if static
                                else None)
        extras: dict[str, Any] = {"io_map": result.io_map}
        for key in ("static_batch", "static_axes"):
            if key in result.details:
                extras[key] = result.details[key]
        return Made(result.data, ".tflite", "tflite", result.details, result.notes, extras,
                    result.details["converter"])
