"""Mixed precision until parity holds: keep the node that adds the most error in float, quantize
again, check again, within a budget of nodes.

Each round localises the error of the current int8 model on the golden inputs (ONNX:
``onnx_nodes.localise``; TFLite: ``tflite_tensors.localise``) and keeps the worst quantized node
in float (onnxruntime's ``nodes_to_exclude``; ai-edge-quantizer's NO_QUANTIZE scope), so a
1000-way softmax or an attention mask costs one or two float nodes instead of the whole int8
candidate. Every round is recorded: the bundle says which nodes stay float and why, and a search
that runs out of budget says so with its trace.

A node kept float still hands on a quantized output when a quantized node reads it (onnxruntime
puts a Q/DQ pair on every tensor a quantized node reads). So when a node already kept still ranks
first, its ``readers`` (node -> the nodes that read its output, through view nodes such as
Reshape) are kept too, and the tensor whose range lost the signal flows in float: an outlier
channel costs the convolution, its activation and the convolution after it; a softmax whose
output is the model's costs itself alone.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
           max_share: float = MAX_SHARE, readers: Mapping[str, Sequence[str]] | None = None) -> Mixed[M]:
    """Quantize with ``start`` kept float; while ``check`` fails, keep the worst node (as
    ``localise`` ranks the quantized model's nodes) in float too, or, when the worst is a kept node
    whose output is still quantized, its ``readers``; up to ``max_share`` of the float model's
    ``nodes``."""
    budget = max(1, int(max_share * nodes))
    kept = list(start)
    trace: list[dict[str, Any]] = []
    added: list[str] = []
    while True:
        model = quantize(kept)
        report = check(model)
        trace.append({"kept_float": len(kept), "added": ", ".join(added) or None, "passed": report.passed,
                      "failures": _failures(report)})
        if report.passed:
            return Mixed(model, kept, True, trace)
        rows = ranked(localise(model))
        step = _next(rows, kept, readers or {})
        if len(kept) - len(start) + max(1, len(step)) > budget:
            return Mixed(model, kept, False, trace, rows[:10], why=(
                f"still failing ({'; '.join(_failures(report))}) with {len(kept) - len(start)} node(s) kept in "
                f"float, the budget ({max_share:.0%} of {nodes} nodes)"))
        if not step:
            return Mixed(model, kept, False, trace, rows[:10],
                         why="no quantized node adds error any more: the loss is not in a node int8 computes")
        added = step
        kept.extend(added)


def _next(rows: Sequence[NodeError], kept: Sequence[str], readers: Mapping[str, Sequence[str]]) -> list[str]:
    """What to keep float next, from the first row (most error added first) that can change: a
    quantized node not kept yet, or a kept one whose output is still quantized by readers not kept."""
    for r in rows:
        if not r.quantized or r.added_db <= 0:
            continue
        if r.node not in kept:
            return [r.node]
        more = [n for n in readers.get(r.node, ()) if n not in kept]
        if more:
            return more
    return []
