"""What onnxruntime runs although the strict onnx checker refuses it.

A model is made for onnxruntime, and files written by onnxruntime's own tools (its transformer
optimizer's fused ``com.microsoft`` ops, its float16 converter's unsorted nodes) fail
``onnx.checker``. Refusing a model its runtime runs is a dead end, so the checker's verdict is
final only when onnxruntime refuses the model too; otherwise the model is accepted with a note.
This module imports nothing of edgepack but its errors (``onnx_utils`` builds on it).
"""
from __future__ import annotations

from collections.abc import Iterator

import onnx

from .errors import EdgepackError

ORT_DOMAINS = ("com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental")
"""Op domains only onnxruntime implements (its contrib and internal ops)."""


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs a node holds as attributes (If branches, Loop and Scan bodies)."""
    return [g for a in node.attribute for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)]


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of the subgraphs (If/Loop/Scan bodies) inside it."""
    for node in graph.node:
        yield node
        for sub in subgraphs(node):
            yield from all_nodes(sub)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def ort_only_ops(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(domain, op_type) of the nodes only onnxruntime runs: its own domains, and default-domain
    ops that ONNX does not define at the model's opset (onnxruntime registers contrib ops such as
    LayerNormalization there, before opset 17 made it standard)."""
    opset = _opset(model)
    found: set[tuple[str, str]] = set()
    for node in all_nodes(model.graph):
        if node.domain in ORT_DOMAINS:
            found.add((node.domain, node.op_type))
        elif node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type, max(opset, 1), ""):
            found.add(("", node.op_type))
    return sorted(found)


def describe_ops(ops: list[tuple[str, str]], opset: int | None = None) -> str:
    """'BiasGelu, SkipLayerNormalization (domain com.microsoft); LayerNormalization (default domain ...)'."""
    by_domain: dict[str, list[str]] = {}
    for domain, op in ops:
        by_domain.setdefault(domain, []).append(op)
    parts = []
    for domain, names in sorted(by_domain.items()):
        where = f"domain {domain}" if domain else \
            "default domain" + (f" at opset {opset}" if opset else "") + ", onnxruntime's contrib ops"
        parts.append(f"{', '.join(sorted(names))} ({where})")
    return "; ".join(parts)


def missing_opset_imports(model: onnx.ModelProto) -> list[str]:
    """Domains nodes use that the model does not import (onnxruntime tolerates it; shape inference
    and the version converter do not)."""
    imported = {o.domain for o in model.opset_import} | {"", "ai.onnx"}
    return sorted({n.domain for n in all_nodes(model.graph)} - imported)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def ort_refusal(model: onnx.ModelProto) -> str | None:
    """Why onnxruntime (CPU) cannot load ``model``, or None when it can (no graph optimization:
    loading is the question, not speed)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types: any means "refused"
        return " ".join(str(exc).split())
    return None


def accept(model: onnx.ModelProto, what: str, *, cls: type[EdgepackError], where: str, hint: str) -> list[str]:
    """Check ``model``; when the onnx checker refuses it but onnxruntime loads it, accept it and
    return the note that says so. Raise ``cls`` only when both refuse it."""
    try:
        onnx.checker.check_model(model)
        return []
    except onnx.checker.ValidationError as exc:
        checker = first_line(exc)
    refused = ort_refusal(model)
    if refused is not None:
        raise cls(f"{what} fails the ONNX checker: {checker}", where=where,
                  hint=f"{hint} (onnxruntime refuses it too: {refused[:300]})")
    return [f"the onnx checker refuses {what} ({checker}); onnxruntime loads it, so it is accepted "
            "(every artifact's parity is still checked against the source)"]
