"""The target-independent steps that make the fp32 ONNX base model: export or load, prepare, simplify;
and the opset upgrade that only some artifact steps need.

They wrap ``packager.convert`` and ``packager.passes``; heavy imports (torch, TensorFlow, onnxsim)
happen inside ``run`` so a worker process that only quantizes never pays for them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .base import Kind, ModelStep, StepContext, StepName, StepResult

if TYPE_CHECKING:
    import onnx

    from ..config.manifest import Manifest
    from ..sources import Source


def first_feed_batch(ctx: StepContext) -> dict[str, Any]:
    """Example inputs for export: up to 2 golden samples, so a symbolic batch dim is not specialised
    (their values do not shape the model, so export steps do not read the data for their key)."""
    return next(ctx.golden().batches(2))


def _source(value: Source | onnx.ModelProto, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(value).__name__}")
    return value


class TorchExport(ModelStep):
    """torch.nn.Module -> ONNX: with ``exporter: auto`` both exporters (torch.export / dynamo and
    TorchScript's), and the one onnxruntime runs faster on the build host among those that match
    the model (``convert.exporter_choice``); else the one the manifest names."""

    name: ClassVar[StepName] = "export"
    requires: ClassVar[Kind] = "source"
    reads = frozenset({"golden"})  # the exporters are checked against the model on golden samples
    tools = ("torch", "onnxscript", "onnx", "onnxruntime")
    label = "export torch -> onnx"

    def config(self, manifest: Manifest) -> dict[str, Any]:
        return {"framework": "torch", "opset": manifest.opset, "exporter": manifest.exporter,
                "choice": "fastest matching" if manifest.exporter == "auto" else "as named"}

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext) -> StepResult:
        from ..convert.exporter_choice import choose
        from ..convert.torch_to_onnx import export_torch
        from ..onnx_utils import node_count
        from ..sources.torch_source import TorchSource
        source = _source(value, TorchSource)
        m = ctx.manifest
        feeds = next(ctx.golden().batches(8))
        tolerance = {o.name: m.tolerance_for("fp32", o.name) for o in m.outputs}
        exported = export_torch(source.module, m, first_feed_batch(ctx),
                                judge=lambda models: choose(models, feeds, source.reference, tolerance,
                                                            log=ctx.progress.detail))
        return StepResult(exported.model, details={"exporter": exported.exporter,
                                                   "nodes": node_count(exported.model)},
                          notes=[*exported.notes, *exported.choice], warnings=list(exported.notes))


class TfExport(ModelStep):
    """TensorFlow / Keras model -> ONNX (tf2onnx)."""

    name: ClassVar[StepName] = "export"
    requires: ClassVar[Kind] = "source"
    tools = ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx")
    label = "convert tensorflow -> onnx (tf2onnx)"

    def config(self, manifest: Manifest) -> dict[str, Any]:
        return {"framework": "tensorflow", "opset": manifest.opset}

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext) -> StepResult:
        from ..convert.tf_to_onnx import tf_to_onnx
        from ..onnx_utils import node_count
        from ..sources.tf_source import TensorFlowSource
        model, how = tf_to_onnx(_source(value, TensorFlowSource), ctx.manifest.opset)
        return StepResult(model, details={"exporter": how, "nodes": node_count(model)})


class OnnxLoad(ModelStep):
    """An ONNX source is its own model (not recorded: nothing was converted)."""

    name: ClassVar[StepName] = "load"
    requires: ClassVar[Kind] = "source"
    label = None
    recorded = False

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext) -> StepResult:
        from ..sources.onnx_source import OnnxSource
        return StepResult(_source(value, OnnxSource).model, modified=False,
                          details={"exporter": "none (onnx source)"})


class Prepare(ModelStep):
    """Check the model, sort its nodes, bring it to the manifest's explicit opset, infer shapes."""

    name: ClassVar[StepName] = "prepare"
    requires: ClassVar[Kind] = "onnx"
    tools = ("onnx", "onnxruntime", "onnxsim")  # onnxruntime: the checker's fallback; onnxsim: folding
    label = "prepare onnx (check, order, opset, shapes)"

    def config(self, manifest: Manifest) -> dict[str, Any]:
        return {"opset": manifest.opset if manifest.opset_explicit else None}

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext) -> StepResult:
        from ..passes.prepare import prepare
        m = ctx.manifest
        result = prepare(_onnx(value), m.opset if m.opset_explicit else None, f"{m.file}: source")
        return StepResult(result.model, result.modified, result.details, result.notes)


class UpgradeOpset(ModelStep):
    """The opset one artifact step needs (``passes.opset.OPSET_NEEDS``): only the routes of those
    steps include it, so a model the converter cannot upgrade fails those candidates alone."""

    name: ClassVar[StepName] = "opset"
    requires: ClassVar[Kind] = "onnx"
    tools = ("onnx", "onnxsim", "onnxruntime")
    label = "upgrade onnx opset"

    def __init__(self, variant: str) -> None:
        self.variant = variant  # the artifact step's variant, a key of OPSET_NEEDS

    def __str__(self) -> str:
        from ..passes.opset import OPSET_NEEDS
        return f"opset {OPSET_NEEDS[self.variant][0]} for {self.variant}"

    def config(self, manifest: Manifest) -> dict[str, Any]:
        from ..passes.opset import OPSET_NEEDS
        return {"opset": OPSET_NEEDS[self.variant][0]}

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext) -> StepResult:
        from ..passes.prepare import upgrade_for
        result = upgrade_for(_onnx(value), self.variant, f"{ctx.manifest.file}: source")
        return StepResult(result.model, result.modified, dict(result.details, variant=self.variant), result.notes)


class Simplify(ModelStep):
    """Constant folding and graph clean-up (onnxsim), checked against the unsimplified model."""

    name: ClassVar[StepName] = "simplify"
    requires: ClassVar[Kind] = "onnx"
    tools = ("onnxsim", "onnx", "onnxruntime")
    label = "simplify (onnxsim)"

    def run(self, value: Source | onnx.ModelProto, ctx: StepContext) -> StepResult:
        from ..passes.simplify import simplify
        result = simplify(_onnx(value))
        return StepResult(result.model, result.modified, result.details, result.notes, list(result.notes))


def _onnx(value: Source | onnx.ModelProto) -> onnx.ModelProto:
    import onnx
    if not isinstance(value, onnx.ModelProto):
        raise TypeError(f"expected an ONNX model, got {type(value).__name__}")
    return value
