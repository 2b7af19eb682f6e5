"""The step contract: what a build step requires and ensures, its config, its tools -> its output.

Every conversion and pass of a build is a step (cf. onnx-ir's pass infrastructure): a
``ModelStep`` turns the source or an ONNX model into an ONNX model and does not depend on the
target (one result serves every target, like Olive's target-agnostic passes); an ``ArtifactStep``
makes the file one candidate ships. A step declares what it reads and which tool versions shape
its output, so its cache key follows from one rule (``packager.steps.keys.step_key``), and the
main process and the worker processes run the very same ``run``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    import onnx

    from ..config.manifest import Manifest
    from ..config.targets import CandidateSpec, Target
    from ..inputs.data import EvaluationSet, SampleSet
    from ..progress import Progress
    from ..results import Made
    from ..sources import Source

Kind = Literal["source", "onnx", "artifact"]
"""What a step takes or gives: the loaded source model, an ONNX model, or a shippable file."""

Reads = Literal["golden", "calibration", "evaluation"]
"""The build's data a step reads besides its input model (its key then holds the data's key)."""

StepName = Literal["export", "load", "prepare", "simplify", "opset", "fp32", "fp16", "int8-dynamic", "int8-static",
                   "torchscript", "tflite"]

Variant = Literal["fp32", "fp16", "int8-dynamic", "int8-static"]
"""A candidate's precision as routes tell them apart (int8 split by quantization mode)."""


def variant_of(spec: CandidateSpec) -> Variant:
    """The route column of a candidate: its precision, int8 told apart by quantization mode."""
    if spec.precision == "int8":
        return "int8-dynamic" if spec.quantization and spec.quantization.mode == "dynamic" else "int8-static"
    if spec.precision == "fp16":
        return "fp16"
    return "fp32"


class StepContext(Protocol):
    """What a step may use besides its input: the build's manifest, data and (lazily) source.

    The main process's inputs and a worker's job both provide it, so a step runs the same in both.
    """

    manifest: Manifest
    progress: Progress

    def source(self) -> Source: ...

    def golden(self) -> SampleSet: ...

    def calibration(self) -> SampleSet | None: ...

    def evaluation(self) -> EvaluationSet | None: ...

    def reference_metric(self) -> float | None:
        """The original model's evaluation metric (None without evaluation data)."""
        ...


@dataclass
class StepResult:
    """A model step's output and its record (``modified``: whether it changed the model)."""

    model: onnx.ModelProto
    modified: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # notes the build summary shows as warnings

    def record(self, name: str) -> dict[str, Any]:
        """The step's entry in the build's provenance ``steps``."""
        return {"step": name, "details": self.details, "notes": self.notes}


class ModelStep(ABC):
    """Source or ONNX model -> ONNX model, the same for every target."""

    name: ClassVar[StepName]
    requires: ClassVar[Kind]
    ensures: ClassVar[Kind] = "onnx"
    reads: ClassVar[frozenset[Reads]] = frozenset()
    tools: ClassVar[tuple[str, ...]] = ()
    label: ClassVar[str | None]  # the progress line while it runs (None: too quick to show)
    recorded: ClassVar[bool] = True  # its record goes into the build's provenance steps

    def config(self, manifest: Manifest) -> dict[str, Any]:
        """What of the manifest shapes this step's output (part of its cache key)."""
        return {}

    @abstractmethod
    def run(self, value: Source | onnx.ModelProto, ctx: StepContext) -> StepResult: ...


class ArtifactStep(ABC):
    """Source or ONNX model -> the file one candidate ships (bytes, suffix, extras, record)."""

    name: ClassVar[StepName]
    requires: ClassVar[Kind]
    ensures: ClassVar[Kind] = "artifact"
    reads: ClassVar[frozenset[Reads]] = frozenset()
    tools: ClassVar[tuple[str, ...]] = ()
    parallel: ClassVar[bool] = True  # worth a worker process when several candidates need making

    def config(self, manifest: Manifest, spec: CandidateSpec, target: Target) -> dict[str, Any]:
        """What of the manifest, candidate and target shapes the file (part of its cache key)."""
        q = spec.quantization
        return {"variant": self.variant(spec, target), "format": spec.format, "precision": spec.precision,
                "quantization": q.to_dict() if q else None, "io": spec.io}

    def variant(self, spec: CandidateSpec, target: Target) -> str:
        """Candidates with the same variant share one file."""
        return spec.variant

    @abstractmethod
    def run(self, value: Source | onnx.ModelProto, ctx: StepContext, spec: CandidateSpec,
            target: Target) -> Made: ...
