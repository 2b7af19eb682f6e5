"""The signature of an ONNX file, read from its graph.

The graph states its inputs and outputs; output dims it leaves unknown are filled in by ONNX shape
inference where it can (the build observes the rest). Dims are named by ``signature.name_dims``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SourceError
from .signature import SUPPORTED_DTYPES, Inferred, Tensor, choose_batch, guess_layout, model_name, name_dims

if TYPE_CHECKING:
    import onnx

Dims = list[Any] | None     # graph_io's dims: ints, dim_param names, "?" where unknown; None: no shape


def _fill_output_dims(onnx_model: onnx.ModelProto, outs: dict[str, tuple[int, Dims]]) -> None:
    """Unknown output dims (no shape, or "?") from ONNX shape inference, in place (on a copy with its
    nodes in order: inference reads them in file order)."""
    from ..onnx_utils import graph_io
    if not any(dims is None or "?" in dims for _, dims in outs.values()):
        return
    import onnx

    from ..passes.toposort import toposort
    try:
        ordered = onnx.ModelProto()
        ordered.CopyFrom(onnx_model)
        toposort(ordered, "init")
        _, found = graph_io(onnx.shape_inference.infer_shapes(ordered))
    except Exception:  # noqa: BLE001 - shapes stay unknown; the build observes them
        found = {}
    for n, (elem, dims) in list(outs.items()):
        more = found.get(n, (elem, None))[1]
        if more is not None and (dims is None or len(dims) == len(more)):
            outs[n] = (elem, more if dims is None
                       else [m if d == "?" else d for d, m in zip(dims, more, strict=False)])


def infer_onnx(model: str, path: Path, batch_dim: str | None, fixed_batch: bool) -> Inferred:
    """``path``'s signature from its graph; ``model`` is the argument as given (for errors)."""
    from ..onnx_check import describe_ops, ort_only_ops
    from ..onnx_utils import ONNX_DTYPES, graph_io, load_onnx, opset_of
    accepted: list[str] = []  # what the onnx checker refused and onnxruntime runs
    onnx_model = load_onnx(path, model, accepted)
    ops = ort_only_ops(onnx_model)
    if ops:
        accepted.append(f"the model uses onnxruntime-only op(s) {describe_ops(ops, opset_of(onnx_model))}: only "
                        "onnx candidates (onnxruntime) can be built from it; the build reports other formats as "
                        "unsupported, naming these ops")
    ins, outs = graph_io(onnx_model)
    _fill_output_dims(onnx_model, outs)
    if not ins:
        raise SourceError(f"{path.name} has no inputs (every graph input is an initializer)", where=model,
                          hint="export the model with its real inputs as graph inputs")

    def dtype(name: str, elem: int) -> str:
        if elem not in ONNX_DTYPES:
            raise SourceError(f"tensor {name!r} has ONNX element type {elem}, which edgepack does not "
                              f"handle", where=model, hint=SUPPORTED_DTYPES)
        return ONNX_DTYPES[elem]

    for n, (_, dims) in ins.items():
        if dims is None:
            raise SourceError(f"input {n!r} of {path.name} has no shape in the graph", where=model,
                              hint="re-export the model with input shapes (dynamic axes named)")
    batch, notes = choose_batch({n: d for n, (_, d) in ins.items()}, model, batch_dim, fixed_batch)
    notes = accepted + notes
    batch_params = {d[0] for _, d in ins.values() if d and isinstance(d[0], str) and d[0] not in ("", "?")}
    params: dict[str, str] = {}
    inputs = []
    for n, (elem, dims) in ins.items():
        shape = name_dims(dims or [], n, batch=batch, fixed_batch=fixed_batch, batch_params=batch_params,
                          params=params, is_input=True)
        inputs.append(Tensor(n, dtype(n, elem), shape, guess_layout("onnx", shape)))
    outputs = []
    for n, (elem, dims) in outs.items():
        out_shape = None if dims is None else name_dims(dims, n, batch=batch, fixed_batch=fixed_batch,
                                                        batch_params=batch_params, params=params,
                                                        is_input=False)
        if dims is None:
            notes.append(f"output {n!r} has no shape in the graph: the build observes it")
        outputs.append(Tensor(n, dtype(n, elem) if elem else "float32", out_shape))
    return Inferred(framework="onnx", entry=None, path=path.resolve(), base=path.parent, kwargs={},
                    inputs=inputs, outputs=outputs, batch=batch, default_name=model_name(path.stem),
                    default_dir=path.resolve().parent, description=f"{path.name} (ONNX)", notes=notes)
