"""Small ONNX helpers shared by sources, conversions and passes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from .errors import ConversionError, SourceError

ONNX_DTYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.BOOL: "bool",
}


def load_onnx(path: Path, where: str) -> onnx.ModelProto:
    """Load and check an ONNX file (external data next to it is followed)."""
    if not path.is_file():
        raise SourceError(f"model file {path} not found", where=where,
                          hint="paths in a manifest are relative to the manifest's folder")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise SourceError(f"{path.name} is not a readable ONNX model: {exc}", where=where,
                          hint="re-export the model, or check the file is not truncated") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise SourceError(f"{path.name} fails the ONNX checker: {first}", where=where,
                          hint="fix the exporter output (onnx.checker.check_model shows the details)") from None
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
    """Drop initializers listed as graph inputs (old exporters did that; it blocks constant folding)."""
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    removed = len(model.graph.input) - len(keep)
    if removed:
        del model.graph.input[:]
        model.graph.input.extend(keep)
    return removed


def upgrade_opset(model: onnx.ModelProto, opset: int, where: str) -> onnx.ModelProto:
    """Convert the default-domain opset up to ``opset`` (never down)."""
    if opset_of(model) >= opset:
        return model
    try:
        from onnx import version_converter
        return version_converter.convert_version(model, opset)
    except Exception as exc:
        raise ConversionError(f"cannot upgrade the model from opset {opset_of(model)} to {opset}: {exc}",
                              where=where, hint="re-export the model at a newer opset") from None


def set_min_ir_version(model: onnx.ModelProto) -> None:
    """Use the lowest IR version the model's opsets allow, so older device runtimes load it."""
    try:
        model.ir_version = max(helper.find_min_ir_version_for(list(model.opset_import), True), 7)
    except Exception:  # unknown domains: keep what the exporter wrote
        pass


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic bytes of a model (same model -> same bytes -> same hash)."""
    return model.SerializeToString(deterministic=True)
