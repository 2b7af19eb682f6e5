"""Mixed precision until parity holds: keep the node that adds the most error in float, quantize
again, check again, within a budget of nodes.

Each round localises the error of the current int8 model on the golden inputs (ONNX:
``onnx_nodes.localise``; TFLite: ``tflite_tensors.localise``) and keeps the worst quantized node
in float (onnxruntime's ``nodes_to_exclude``; ai-edge-quantizer's NO_QUANTIZE scope), so a
1000-way softmax or an attention mask costs one or two float nodes instead of the whole int8
candidate. Every round is recorded: the bundle says which nodes stay float and why, and a search
that runs out of budget says so with its trace.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from runtime.compare import ParityReport

from .onnx_nodes import NodeError, ranked

M = TypeVar("M")  # the model: an onnx.ModelProto, or a TFLite flatbuffer's bytes

MAX_SHARE = 0.10  # at most this share of the model's nodes kept in float


@dataclass
class Mixed(Generic[M]):
    """The search's outcome: the last model made, the nodes kept float, and every round."""

    model: M
    kept: list[str]
    passed: bool
    trace: list[dict[str, Any]] = field(default_factory=list)
    worst: list[NodeError] = field(default_factory=list)  # the last round's ranked table (top rows)
    why: str = ""  # when it did not pass


def _failures(report: ParityReport) -> list[str]:
    return [f"{o.name}: {'; '.join(o.failures)}" for o in report.outputs if not o.passed]


def search(nodes: int, quantize: Callable[[list[str]], M], check: Callable[[M], ParityReport],
           localise: Callable[[M], list[NodeError]], *, start: Sequence[str] = (),
           max_share: float = MAX_SHARE) -> Mixed[M]:
    """Quantize with ``start`` kept float; while ``check`` fails, keep the worst node (as
    ``localise`` ranks the quantized model's nodes) in float too, up to ``max_share`` of the float
    model's ``nodes``."""
    budget = max(1, int(max_share * nodes))
    kept = list(start)
    trace: list[dict[str, Any]] = []
    added: str | None = None
    while True:
        model = quantize(kept)
        report = check(model)
        trace.append({"kept_float": len(kept), "added": added, "passed": report.passed,
                      "failures": _failures(report)})
        if report.passed:
            return Mixed(model, kept, True, trace)
        rows = ranked(localise(model))
        worst = [r for r in rows if r.quantized and r.added_db > 0 and r.node not in kept]
        if len(kept) - len(start) >= budget:
            return Mixed(model, kept, False, trace, rows[:10], why=(
                f"still failing ({'; '.join(_failures(report))}) with {len(kept) - len(start)} node(s) kept in "
                f"float, the budget ({max_share:.0%} of {nodes} nodes)"))
        if not worst:
            return Mixed(model, kept, False, trace, rows[:10],
                         why="no quantized node adds error any more: the loss is not in a node int8 computes")
        added = worst[0].node
        kept.append(added)
