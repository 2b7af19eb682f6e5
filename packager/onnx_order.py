"""A graph's nodes in an order that follows from what they compute, not from their names.

tf2onnx breaks ties between independent nodes by names that carry process-wide counters, so two
conversions of one masked LSTM list the same nodes in different orders, and positional names
(``onnx_utils.canonical_names``) then differ too. Ordering ready nodes by a structural key (the
op, its attributes and, recursively, what its inputs are) gives the same bytes on every run.
"""
from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from typing import Any

import onnx

from .onnx_check import subgraphs


def _attribute_key(attr: onnx.AttributeProto) -> bytes:
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):  # names inside are not canonical yet
        graphs = subgraphs(onnx.helper.make_node("X", [], [], value=attr.g) if attr.type == onnx.AttributeProto.GRAPH
                           else onnx.helper.make_node("X", [], [], value=list(attr.graphs)))
        return attr.name.encode() + b"".join(
            b"|".join(n.op_type.encode() for n in g.node) + b";" for g in graphs)
    plain = onnx.AttributeProto()
    plain.CopyFrom(attr)
    plain.t.name = ""  # a Constant's tensor carries a counter-numbered name
    for t in plain.tensors:
        t.name = ""
    return plain.SerializeToString(deterministic=True)


def _tensor_key(tensor: onnx.TensorProto) -> str:
    """The tensor's type, shape and values (not its name)."""
    nameless = onnx.TensorProto()
    nameless.CopyFrom(tensor)
    nameless.name = ""
    return hashlib.sha256(nameless.SerializeToString(deterministic=True)).hexdigest()


def structural_order(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place: topological, ties broken by each node's structural key."""
    inputs = {vi.name: f"in{i}" for i, vi in enumerate(graph.input)}
    inits = {t.name: _tensor_key(t) for t in graph.initializer}
    producer = {out: i for i, n in enumerate(graph.node) for out in n.output if out}
    keys: dict[int, str] = {}

    def key(i: int) -> str:
        if i not in keys:
            keys[i] = ""  # a cycle (never in a valid graph) ends here instead of recursing forever
            node = graph.node[i]
            h = hashlib.sha256(f"{node.domain}|{node.op_type}|".encode())
            for attr in sorted(node.attribute, key=lambda a: a.name):
                h.update(_attribute_key(attr))
            for name in node.input:
                if name in producer:
                    src = producer[name]
                    h.update(f"n{key(src)}.{list(graph.node[src].output).index(name)}|".encode())
                else:
                    h.update(f"{inputs.get(name) or inits.get(name) or 'outer:' + name}|".encode())
            keys[i] = h.hexdigest()
        return keys[i]

    order, _ = kahn(dependencies(graph), key)
    if len(order) == len(graph.node):  # else not a DAG: left for the checker to name
        reorder(graph, order)


def _defined(graph: onnx.GraphProto) -> set[str]:
    return ({i.name for i in graph.input} | {i.name for i in graph.initializer} |
            {s.values.name for s in graph.sparse_initializer} | {o for n in graph.node for o in n.output})


def outer_reads(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph (and the subgraphs inside it) reads from the scopes around it."""
    used = {name for n in graph.node for name in n.input}
    for n in graph.node:
        for sub in subgraphs(n):
            used |= outer_reads(sub)
    return used - _defined(graph) - {""}


def dependencies(graph: onnx.GraphProto) -> list[set[int]]:
    """Per node, the nodes of this graph whose outputs it (or a subgraph of it) reads."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    return [{producer[x] for x in set(n.input) | {y for s in subgraphs(n) for y in outer_reads(s)}
             if x in producer and producer[x] != i} for i, n in enumerate(graph.node)]


def kahn(deps: list[set[int]], priority: Callable[[int], Any]) -> tuple[list[int], list[int]]:
    """A topological order of the nodes (the ready node of lowest ``priority`` first), and the
    nodes left waiting (a cycle) when there is none."""
    users: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(i)
    waiting = [len(ds) for ds in deps]
    ready = [(priority(i), i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (priority(u), u))
    return order, [i for i, w in enumerate(waiting) if w]


def reorder(graph: onnx.GraphProto, order: list[int]) -> None:
    """Put ``graph``'s nodes in ``order`` (indices into the current list), in place."""
    nodes = []
    for i in order:
        copy = onnx.NodeProto()
        copy.CopyFrom(graph.node[i])
        nodes.append(copy)
    del graph.node[:]
    graph.node.extend(nodes)
