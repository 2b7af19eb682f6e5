"""Put a graph's nodes (and its subgraphs') in topological order.

onnxruntime sorts a graph itself when it loads it, so files with their nodes out of order run
(onnxruntime's float16 converter appends its input Casts at the end of the node list), but the
onnx checker, shape inference and the version converter read nodes in file order. The sort is
stable: nodes already in order keep their relative order.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import onnx

from ..errors import ConversionError
from ..onnx_check import subgraphs


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


def _defined(graph: onnx.GraphProto) -> set[str]:
    return ({i.name for i in graph.input} | {i.name for i in graph.initializer} |
            {s.values.name for s in graph.sparse_initializer} | {o for n in graph.node for o in n.output})


def _free(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from the scopes around it."""
    used = {name for n in graph.node for name in n.input}
    for n in graph.node:
        for sub in subgraphs(n):
            used |= _free(sub)
    return used - _defined(graph) - {""}


def _sort(graph: onnx.GraphProto, where: str, done: Sorted) -> None:
    for node in graph.node:
        for sub in subgraphs(node):
            _sort(sub, where, done)
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    needs = [{producer[x] for x in set(n.input) | {y for s in subgraphs(n) for y in _free(s)}
              if x in producer and producer[x] != i} for i, n in enumerate(graph.node)]
    late = sum(1 for i, deps in enumerate(needs) if any(d > i for d in deps))
    if not late:
        return
    users: dict[int, list[int]] = {}
    for i, deps in enumerate(needs):
        for d in deps:
            users.setdefault(d, []).append(i)
    waiting = [len(deps) for deps in needs]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) < len(graph.node):
        stuck = sorted({graph.node[i].name or graph.node[i].op_type for i, w in enumerate(waiting) if w})[:5]
        raise ConversionError(f"the graph has a cycle: node(s) {', '.join(stuck)} wait on each other",
                              where=where, hint="the file is damaged or was edited by hand; re-export it")
    nodes = []
    for i in order:
        copy = onnx.NodeProto()
        copy.CopyFrom(graph.node[i])
        nodes.append(copy)
    del graph.node[:]
    graph.node.extend(nodes)
    done.nodes += len(nodes)
    done.late += late


def toposort(model: onnx.ModelProto, where: str) -> Sorted:
    """Sort ``model``'s graphs in place where they are out of order; say what was done."""
    done = Sorted()
    _sort(model.graph, where, done)
    return done
