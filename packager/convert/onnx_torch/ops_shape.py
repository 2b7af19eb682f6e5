"""Shape and indexing ops. Shapes stay torch values (``_shape_as_tensor``; lists of 0-d tensors)
so the trace keeps dynamic axes dynamic; ONNX's conventions (Reshape's 0 copies a dimension,
negative indices count from the end, Slice clamps) are spelled out here."""
from __future__ import annotations

from typing import Any

import numpy as np

from .registry import OpCall, Tensor, axes_list, axis_of, op, torch_dtype


def _t() -> Any:
    import torch
    return torch


def shape_of(x: Tensor) -> Tensor:
    return _t()._shape_as_tensor(x)


@op("Shape")
def shape(c: OpCall) -> Tensor:
    s = shape_of(c.inputs[0])
    start, end = c.attr("start"), c.attr("end")
    return s if start is None and end is None else s[start:end]


@op("Size")
def size(c: OpCall) -> Tensor:
    return shape_of(c.inputs[0]).prod()


@op("Constant")
def constant(c: OpCall) -> Tensor:
    raise c.fail("a Constant is folded at conversion time")  # never reached: constants are folded


@op("Reshape")
def reshape(c: OpCall) -> Tensor:
    x, new = c.inputs[0], c.ints(1)
    assert new is not None
    if not c.attr("allowzero", 0) and any(not isinstance(v, int) or v == 0 for v in new):
        dims = shape_of(x)  # a 0 copies the input's dimension at that position
        if all(isinstance(v, int) for v in new):
            new = [dims[i] if v == 0 else v for i, v in enumerate(new)]
        else:
            torch = _t()
            padded = torch.cat([dims, torch.ones(max(0, len(new) - x.dim()), dtype=dims.dtype)])[:len(new)]
            new = torch.where(c.inputs[1] == 0, padded, c.inputs[1]).unbind(0)
    return x.reshape(new)


@op("Flatten")
def flatten(c: OpCall) -> Tensor:
    x = c.inputs[0]
    axis = axis_of(c.attr("axis", 1), x.dim())
    return x.reshape([shape_of(x)[:axis].prod(), -1])


@op("Squeeze")
def squeeze(c: OpCall) -> Tensor:
    x = c.inputs[0]
    axes = c.ints(1) if c.opset >= 13 else c.attr("axes")
    if not axes:
        return x.squeeze()
    for a in sorted(axes_list(axes, x.dim()), reverse=True):
        x = x.squeeze(a)
    return x


@op("Unsqueeze")
def unsqueeze(c: OpCall) -> Tensor:
    x = c.inputs[0]
    axes = c.ints(1) if c.opset >= 13 else c.attr("axes")
    if axes is None or any(not isinstance(a, int) for a in axes):
        raise c.fail("axes computed at run time")
    for a in sorted(axes_list(axes, x.dim() + len(axes))):
        x = x.unsqueeze(a)
    return x


@op("Transpose")
def transpose(c: OpCall) -> Tensor:
    x = c.inputs[0]
    perm = c.attr("perm") or list(range(x.dim()))[::-1]
    return x.permute(*perm)


@op("Concat")
def concat(c: OpCall) -> Tensor:
    xs = [x for x in c.inputs if x is not None]
    return _t().cat(xs, axis_of(c.attr("axis"), xs[0].dim()))


@op("Split")
def split(c: OpCall) -> tuple[Tensor, ...]:
    x = c.inputs[0]
    axis = axis_of(c.attr("axis", 0), x.dim())
    sizes = c.ints(1) if c.opset >= 13 else c.attr("split")
    if sizes:
        return tuple(_t().split(x, sizes, dim=axis))
    n = c.attr("num_outputs", c.n_outputs)
    length = shape_of(x)[axis]
    chunk = (length + n - 1) // n
    return tuple(x.narrow(axis, chunk * i, _t().minimum(chunk, length - chunk * i)) for i in range(n))


def _clamp_index(v: Any, dim: Any, step_negative: bool) -> Any:
    """ONNX Slice's clamping of one start/end index into [0, dim] (or [-1, dim-1] going back)."""
    torch = _t()
    v = torch.where(v < 0, v + dim, v)
    return torch.clamp(v, -1, dim - 1) if step_negative else torch.clamp(v, 0, dim)


@op("Slice")
def slice_op(c: OpCall) -> Tensor:
    x = c.inputs[0]
    if c.opset < 10:
        starts, ends, axes, steps = c.attr("starts"), c.attr("ends"), c.attr("axes"), None
    else:
        starts, ends, axes, steps = c.ints(1), c.ints(2), c.ints(3), c.ints(4)
    assert starts is not None and ends is not None
    axes = axes_list(axes, x.dim()) if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    index: list[Any] = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if not isinstance(step, int):
            raise c.fail("steps computed at run time")
        if step > 0:  # aten::slice counts negative bounds from the end and clamps, as ONNX does
            index[axis] = slice(start, end, step)
        else:  # backwards: the indices spelled out (torch slicing has no negative step)
            dim = shape_of(x)[axis]
            s = _clamp_index(_t().as_tensor(start), dim, True)
            e = _clamp_index(_t().as_tensor(end), dim, True)
            picks = _t().arange(s, e, step)
            x = x.index_select(axis, picks)
    return x[tuple(index)]


@op("Gather")
def gather(c: OpCall) -> Tensor:
    x, idx = c.inputs[0], c.inputs[1]
    axis = axis_of(c.attr("axis", 0), x.dim())
    return x[(slice(None),) * axis + (idx.long(),)]


@op("GatherElements")
def gather_elements(c: OpCall) -> Tensor:
    x, idx = c.inputs[0], c.inputs[1].long()
    axis = axis_of(c.attr("axis", 0), x.dim())
    idx = _t().where(idx < 0, idx + shape_of(x)[axis], idx)
    return _t().gather(x, axis, idx)


@op("GatherND")
def gather_nd(c: OpCall) -> Tensor:
    torch = _t()
    x, idx = c.inputs[0], c.inputs[1].long()
    b = c.attr("batch_dims", 0)
    k = idx.shape[-1]
    if b == 0:
        return x[tuple(idx[..., i] for i in range(k))]
    batch = shape_of(x)[:b]
    flat_x = x.flatten(0, b - 1) if b > 1 else x
    flat_i = idx.flatten(0, b - 1) if b > 1 else idx
    rows = torch.arange(shape_of(flat_x)[0]).reshape([-1] + [1] * (flat_i.dim() - 2))
    out = flat_x[(rows,) + tuple(flat_i[..., i] for i in range(k))]
    return out.reshape(list(batch) + list(shape_of(out)[1:]))


@op("ScatterND")
def scatter_nd(c: OpCall) -> Tensor:
    x, idx, updates = c.inputs[0], c.inputs[1].long(), c.inputs[2]
    if c.attr("reduction", "none") != "none":
        raise c.fail(f"reduction {c.attr('reduction')!r}")
    return x.index_put(tuple(idx[..., i] for i in range(idx.shape[-1])), updates)


@op("ScatterElements")
def scatter_elements(c: OpCall) -> Tensor:
    x, idx, updates = c.inputs[0], c.inputs[1].long(), c.inputs[2]
    axis = axis_of(c.attr("axis", 0), x.dim())
    idx = _t().where(idx < 0, idx + shape_of(x)[axis], idx)
    reduction = c.attr("reduction", "none")
    if reduction == "none":
        return x.scatter(axis, idx, updates)
    if reduction not in ("add", "mul"):
        raise c.fail(f"reduction {reduction!r}")
    return x.scatter_reduce(axis, idx, updates, "sum" if reduction == "add" else "prod")


@op("Expand")
def expand(c: OpCall) -> Tensor:
    x, target = c.inputs[0], c.ints(1)
    assert target is not None
    return x * _t().ones(target, dtype=x.dtype) if x.dtype != _t().bool else \
        _t().logical_and(x, _t().ones(target, dtype=_t().bool))


@op("Tile")
def tile(c: OpCall) -> Tensor:
    repeats = c.ints(1)
    assert repeats is not None
    return c.inputs[0].repeat(repeats)


@op("ConstantOfShape")
def constant_of_shape(c: OpCall) -> Tensor:
    torch = _t()
    value = c.attr("value")
    fill = torch.from_numpy(np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1).copy())
    dims = c.ints(0)
    assert dims is not None
    # zeros/ones take a shape of 0-d tensors under the trace (torch.full would freeze it)
    zeros = torch.zeros(dims, dtype=fill.dtype)
    return zeros if not bool(fill[0]) else zeros + fill[0]


@op("Range")
def range_op(c: OpCall) -> Tensor:
    start, limit, delta = c.inputs[0], c.inputs[1], c.inputs[2]
    return _t().arange(start.reshape(()), limit.reshape(()), delta.reshape(()), dtype=start.dtype)


@op("Trilu")
def trilu(c: OpCall) -> Tensor:
    k = c.scalar(1) or 0
    x = c.inputs[0]
    return x.triu(k) if c.attr("upper", 1) else x.tril(k)


@op("OneHot")
def one_hot(c: OpCall) -> Tensor:
    torch = _t()
    idx, depth, values = c.inputs[0].long(), c.scalar(1), c.inputs[2]
    idx = torch.where(idx < 0, idx + depth, idx)
    hot = torch.nn.functional.one_hot(idx, int(depth) if isinstance(depth, (int, float)) else depth)
    axis = axis_of(c.attr("axis", -1), hot.dim())
    hot = hot.movedim(-1, axis)
    return torch.where(hot.bool(), values[1], values[0])


@op("NonZero")
def nonzero(c: OpCall) -> Tensor:
    return _t().nonzero(c.inputs[0]).transpose(0, 1)


@op("TopK")
def topk(c: OpCall) -> tuple[Tensor, Tensor]:
    x = c.inputs[0]
    k = c.scalar(1) if c.opset >= 10 else c.attr("k")
    axis = axis_of(c.attr("axis", -1), x.dim())
    values, indices = _t().topk(x, k, dim=axis, largest=bool(c.attr("largest", 1)), sorted=bool(c.attr("sorted", 1)))
    return values, indices


@op("DepthToSpace")
def depth_to_space(c: OpCall) -> Tensor:
    x, b = c.inputs[0], c.attr("blocksize")
    n, ch, h, w = shape_of(x)
    if c.attr("mode", "DCR") == "DCR":
        y = x.reshape([n, b, b, ch // (b * b), h, w]).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape([n, ch // (b * b), b, b, h, w]).permute(0, 1, 4, 2, 5, 3)
    return y.reshape([n, ch // (b * b), h * b, w * b])


@op("SpaceToDepth")
def space_to_depth(c: OpCall) -> Tensor:
    x, b = c.inputs[0], c.attr("blocksize")
    n, ch, h, w = shape_of(x)
    y = x.reshape([n, ch, h // b, b, w // b, b]).permute(0, 3, 5, 1, 2, 4)
    return y.reshape([n, ch * b * b, h // b, w // b])


@op("EyeLike")
def eye_like(c: OpCall) -> Tensor:
    x = c.inputs[0]
    dtype = torch_dtype(c.attr("dtype"), c) if c.attr("dtype") is not None else x.dtype
    return _t().ones_like(x, dtype=dtype).triu(c.attr("k", 0)).tril(c.attr("k", 0))
