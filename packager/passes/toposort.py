"""Put a graph's nodes (and its subgraphs') in topological order.

onnxruntime sorts a graph itself when it loads it, so files with their nodes out of order run
(onnxruntime's float16 converter appends its input Casts at the end of the node list), but the
onnx checker, shape inference and the version converter read nodes in file order. The sort is
stable: nodes already in order keep their relative order.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from ..errors import ConversionError
from ..onnx_check import subgraphs
from ..onnx_order import dependencies, kahn, reorder


@dataclass
class Sorted:
    """What a sort did: nodes in graphs that needed it, and how many of them read a value made
    further down the file."""

    nodes: int = 0
    late: int = 0

    def note(self) -> str | None:
        if not self.nodes:
            return None
        return (f"sorted {self.nodes} nodes into topological order ({self.late} read a value made further "
                "down the file; the onnx checker, shape inference and the opset converter need producers first)")


def _sort(graph: onnx.GraphProto, where: str, done: Sorted) -> None:
    for node in graph.node:
        for sub in subgraphs(node):
            _sort(sub, where, done)
    needs = dependencies(graph)
    late = sum(1 for i, deps in enumerate(needs) if any(d > i for d in deps))
    if not late:
        return
    order, stuck = kahn(needs, lambda i: i)  # stable: nodes already in order keep it
    if stuck:
        names = sorted({graph.node[i].name or graph.node[i].op_type for i in stuck})[:5]
        raise ConversionError(f"the graph has a cycle: node(s) {', '.join(names)} wait on each other",
                              where=where, hint="the file is damaged or was edited by hand; re-export it")
    reorder(graph, order)
    done.nodes += len(order)
    done.late += late


def toposort(model: onnx.ModelProto, where: str) -> Sorted:
    """Sort ``model``'s graphs in place where they are out of order; say what was done."""
    done = Sorted()
    _sort(model.graph, where, done)
    return done
