"""A chain of model steps run in order: the source -> an ONNX model, with the records the bundle's
provenance keeps.

The builder memoises chains by key and caches their output; what running one means lives here, so
the scheduler stays a scheduler.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..progress import Progress
from ..sources import Source
from ..steps import ModelStep
from .inputs import Inputs

if TYPE_CHECKING:
    import onnx


@dataclass
class Chain:
    """What a chain of model steps made: the model (the source while none ran), and their records."""

    model: Source | onnx.ModelProto
    steps: list[dict[str, Any]]
    warnings: list[str]
    exporter: str

    def copy(self) -> Chain:
        """A chain to extend without touching this one (the model itself is never changed in place)."""
        return Chain(self.model, list(self.steps), list(self.warnings), self.exporter)


def run_steps(chain: Chain, steps: tuple[ModelStep, ...], inputs: Inputs, progress: Progress) -> Chain:
    """``chain`` extended by ``steps``, each run on the previous one's model; what a step decided
    goes to the build log now (its warnings come at the end of the build)."""
    for step in steps:
        with progress.step(step.label) if step.label else nullcontext():
            result = step.run(chain.model, inputs)
        for note in result.notes:
            if note not in result.warnings:
                progress.note(f"    {note}")
        if step.requires == "source":
            chain.exporter = str(result.details.get("exporter", chain.exporter))
        if step.recorded:
            chain.steps.append(result.record(step.name))
        chain.warnings.extend(result.warnings)
        chain.model = result.model
    return chain
