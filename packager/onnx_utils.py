"""Small ONNX helpers shared by sources, conversions and passes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from .errors import ConversionError, SourceError
from .onnx_check import accept, subgraphs
from .onnx_order import structural_order

ONNX_DTYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.BOOL: "bool",
}


def load_onnx(path: Path, where: str, notes: list[str] | None = None) -> onnx.ModelProto:
    """Load and check an ONNX file (external data next to it is followed). A file the onnx checker
    refuses but onnxruntime loads is accepted, with a note appended to ``notes``."""
    if not path.is_file():
        raise SourceError(f"model file {path} not found", where=where,
                          hint="paths in a manifest are relative to the manifest's folder")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise SourceError(f"{path.name} is not a readable ONNX model: {exc}", where=where,
                          hint="re-export the model, or check the file is not truncated") from None
    said = accept(model, path.name, cls=SourceError, where=where,
                  hint="fix the exporter output (onnx.checker.check_model shows the details)")
    if notes is not None:
        notes.extend(said)
    return model


def graph_io(model: onnx.ModelProto) -> tuple[dict[str, tuple[int, list[Any] | None]],
                                              dict[str, tuple[int, list[Any] | None]]]:
    """Real inputs (initializers excluded) and outputs: name -> (elem_type, dims or None)."""
    inits = {i.name for i in model.graph.initializer}

    def describe(vi: onnx.ValueInfoProto) -> tuple[int, list[Any] | None]:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            return t.elem_type, None
        dims: list[Any] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                           for d in t.shape.dim]
        return t.elem_type, dims

    ins = {i.name: describe(i) for i in model.graph.input if i.name not in inits}
    outs = {o.name: describe(o) for o in model.graph.output}
    return ins, outs


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def node_count(model: onnx.ModelProto) -> int:
    return len(model.graph.node)


def remove_initializer_inputs(model: onnx.ModelProto) -> int:
    """Drop initializers listed as graph inputs (old exporters did that; it blocks constant folding).

    Below IR version 4 an initializer must also be a graph input, and the onnx version converter
    then calls a weight it no longer finds among the inputs "undefined" (``Input w_SHAPE is
    undefined!``): the IR version is raised to 4, the first where initializers stand alone."""
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    removed = len(model.graph.input) - len(keep)
    if removed:
        del model.graph.input[:]
        model.graph.input.extend(keep)
    if inits and model.ir_version < 4:
        model.ir_version = 4
    return removed


def set_min_ir_version(model: onnx.ModelProto) -> None:
    """Use the lowest IR version the model's opsets allow, so older device runtimes load it."""
    try:
        model.ir_version = max(helper.find_min_ir_version_for(list(model.opset_import), True), 7)
    except Exception:  # unknown domains: keep what the exporter wrote
        pass


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic bytes of a model (same model -> same bytes -> same hash)."""
    return model.SerializeToString(deterministic=True)


def rename_outputs(model: onnx.ModelProto, mapping: dict[str, str]) -> None:
    """Rename graph outputs (and every use of those values) from a converter's names to ours."""
    missing = [o.name for o in model.graph.output if o.name not in mapping]
    if missing:
        raise ConversionError(f"converter produced unexpected outputs {missing} (expected {sorted(mapping)})",
                              where="onnx")
    _rename_values(model, mapping)


def canonical_names(model: onnx.ModelProto) -> None:
    """Name nodes, intermediate values and initializers by position in the graph.

    Converters such as tf2onnx number names with process-wide counters, so two runs of the same
    conversion differ; positional names make the bytes (and the bundle hash) reproducible.
    """
    graph = model.graph
    graph.doc_string = ""  # e.g. "converted from __inference_serving_906": a per-process counter
    structural_order(graph)  # ties between independent nodes, broken by what they compute
    keep = {i.name for i in graph.input} | {o.name for o in graph.output}
    mapping: dict[str, str] = {}
    # initializers: named and ordered by first use, since converters list them in counter order
    inits = {init.name: init for init in graph.initializer}
    order = [name for node in graph.node for name in node.input if name in inits]
    order = list(dict.fromkeys(order)) + [n for n in inits if n not in set(order)]
    reordered = [inits[n] for n in order]
    del graph.initializer[:]
    graph.initializer.extend(reordered)
    for i, name in enumerate(order):
        if name not in keep:
            mapping[name] = f"init_{i}"
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{i}"
        for j, out in enumerate(node.output):
            if out and out not in keep:
                mapping[out] = f"{node.op_type}_{i}_out{j}"
    _rename_values(model, mapping)
    for node in graph.node:  # Loop / If / Scan bodies: their own values, by position too
        for k, sub in enumerate(subgraphs(node)):
            _canonical_local(sub, f"{node.name}_g{k}")
    # symbolic dims the converter numbered (unk__79): renumbered by first appearance, bodies included
    dims: dict[str, str] = {}
    for g in _graphs(graph):
        for node in g.node:  # the default domain, written explicitly by some code paths and not others
            if node.HasField("domain") and not node.domain:
                node.ClearField("domain")
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_param") and d.dim_param.startswith("unk__"):
                    d.dim_param = dims.setdefault(d.dim_param, f"dim_{len(dims)}")


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """``graph`` and every subgraph inside it, outer first."""
    return [graph, *(g for n in graph.node for sub in subgraphs(n) for g in _graphs(sub))]


def set_input_dims(model: onnx.ModelProto, shapes: dict[str, tuple[int | str, ...] | None]) -> None:
    """Write the manifest's symbolic dims (``batch``) onto the graph inputs' dynamic axes."""
    for vi in model.graph.input:
        shape = shapes.get(vi.name)
        if not shape:
            continue
        for d, want in zip(vi.type.tensor_type.shape.dim, shape, strict=False):
            if isinstance(want, str) and not d.HasField("dim_value"):
                d.dim_param = want


def _rename_values(model: onnx.ModelProto, mapping: dict[str, str]) -> None:
    graph = model.graph
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name in mapping:
                    names[i] = mapping[name]
        for sub in subgraphs(node):
            _rename_outer(sub, mapping)
    for seq in (graph.output, graph.value_info, graph.initializer):
        for item in seq:
            if item.name in mapping:
                item.name = mapping[item.name]


def _canonical_local(graph: onnx.GraphProto, prefix: str) -> None:
    """A subgraph's own inputs, initializers, nodes and values named by position under ``prefix``
    (what it reads from outside was renamed with the outer graph)."""
    graph.name, graph.doc_string = prefix, ""
    _drop_identities(graph)
    structural_order(graph)
    mapping = {vi.name: f"{prefix}_in{i}" for i, vi in enumerate(graph.input)}
    mapping.update({init.name: f"{prefix}_init{i}" for i, init in enumerate(graph.initializer)})
    for i, node in enumerate(graph.node):
        node.name = f"{prefix}_{node.op_type}_{i}"
        mapping.update({out: f"{node.name}_out{j}" for j, out in enumerate(node.output) if out})
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name in mapping:
                    names[i] = mapping[name]
        for k, sub in enumerate(subgraphs(node)):
            _rename_outer(sub, mapping)
            _canonical_local(sub, f"{node.name}_g{k}")
    for seq in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in seq:
            if item.name in mapping:
                item.name = mapping[item.name]


def _drop_identities(graph: onnx.GraphProto) -> None:
    """Remove a subgraph's Identity nodes that copy a value its own nodes make: tf2onnx leaves one
    before a Loop body's output in some runs of the same conversion and not in others, so the
    bytes differed. The body output then names the copied value (what the other runs had)."""
    made = {o for n in graph.node for o in n.output if o}
    outputs = {o.name for o in graph.output}
    drop = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and len(n.input) == 1
            and len(n.output) == 1 and n.input[0] in made and n.input[0] not in outputs}
    if not drop:
        _first_output_takes_the_value(graph)
        return
    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output and n.output[0] in drop)]
    del graph.node[:]
    graph.node.extend(kept)
    for g in _graphs(graph):
        for node in g.node:
            for i, name in enumerate(node.input):
                if name in drop:
                    node.input[i] = drop[name]
    for out in graph.output:
        if out.name in drop:
            out.name = drop[out.name]
    stale = [vi for vi in graph.value_info if vi.name in drop]
    for vi in stale:
        graph.value_info.remove(vi)
    _first_output_takes_the_value(graph)


def _first_output_takes_the_value(graph: onnx.GraphProto) -> None:
    """A value a body outputs twice goes out once as itself and once through an Identity; which
    output position got which differed between runs. The first position takes the value itself."""
    copies: dict[str, list[str]] = {}
    for n in graph.node:
        if n.op_type == "Identity" and len(n.input) == 1 and len(n.output) == 1:
            copies.setdefault(n.input[0], []).append(n.output[0])
    for value, idents in copies.items():
        positions = [k for k, out in enumerate(graph.output) if out.name == value or out.name in idents]
        names = [graph.output[k].name for k in positions]
        if value not in names or len(positions) < 2:
            continue
        rest = [name for name in names if name != value]
        for k, name in zip(positions, [value, *rest], strict=True):
            graph.output[k].name = name
            # the shape tf2onnx recorded went with the name in some runs, the position in others:
            # the element type is what a body output must declare
            graph.output[k].type.tensor_type.ClearField("shape")


def _rename_outer(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    """Rename what a subgraph (a Loop or If body) reads from the scopes around it: a renamed outer
    value left under its old name in the body is a dangling reference (an invalid model)."""
    local = ({i.name for i in graph.input} | {i.name for i in graph.initializer} |
             {o for n in graph.node for o in n.output})
    outer = {k: v for k, v in mapping.items() if k not in local}
    if not outer:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in outer:
                node.input[i] = outer[name]
        for sub in subgraphs(node):
            _rename_outer(sub, outer)
    for item in graph.output:
        if item.name in outer:
            item.name = outer[item.name]
