"""A graph's nodes in an order that follows from what they compute, not from their names.

tf2onnx breaks ties between independent nodes by names that carry process-wide counters, so two
conversions of one masked LSTM list the same nodes in different orders, and positional names
(``onnx_utils.canonical_names``) then differ too. Ordering ready nodes by a structural key (the
op, its attributes and, recursively, what its inputs are) gives the same bytes on every run.
"""
from __future__ import annotations

import hashlib
import heapq

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

    deps = [{producer[x] for x in set(n.input) | {y for s in subgraphs(n) for b in s.node for y in b.input}
             if x in producer and producer[x] != i} for i, n in enumerate(graph.node)]
    users: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(i)
    waiting = [len(ds) for ds in deps]
    ready = [(key(i), i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (key(u), u))
    if len(order) != len(graph.node):
        return  # not a DAG: leave it for the checker to name
    nodes = []
    for i in order:
        copy = onnx.NodeProto()
        copy.CopyFrom(graph.node[i])
        nodes.append(copy)
    del graph.node[:]
    graph.node.extend(nodes)
