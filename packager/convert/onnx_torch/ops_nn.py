"""Convolution, pooling, normalisation, padding and resizing, in ONNX's terms (explicit pads
``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``, ``auto_pad``, Resize's coordinate modes)."""
from __future__ import annotations

from typing import Any

from .registry import OpCall, Tensor, axis_of, op


def _t() -> Any:
    import torch
    return torch


def _f() -> Any:
    import torch.nn.functional as F
    return F


def _pads(c: OpCall, x: Tensor, kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
    """Explicit pads (begins then ends) for the node, ``auto_pad`` resolved on x's spatial size."""
    n = len(kernel)
    auto = c.attr("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("NOTSET", "VALID"):
        return list(c.attr("pads") or [0] * 2 * n) if auto == "NOTSET" else [0] * 2 * n
    begins, ends = [], []
    for i in range(n):
        size = int(x.shape[2 + i])  # SAME_*: the padding depends on the input's size (fixed by the trace)
        out = -(-size // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(large if auto == "SAME_LOWER" else small)
        ends.append(small if auto == "SAME_LOWER" else large)
    return begins + ends


def _torch_pad(pads: list[int]) -> list[int]:
    """ONNX pads (begins, ends; first axis first) -> F.pad's (last axis first, begin then end)."""
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [pads[i], pads[n + i]]
    return out


def _symmetric(pads: list[int]) -> list[int] | None:
    n = len(pads) // 2
    return pads[:n] if pads[:n] == pads[n:] else None


@op("Conv")
def conv(c: OpCall) -> Tensor:
    x, w, b = c.inputs[0], c.inputs[1], c.input(2)
    n = x.dim() - 2
    kernel = list(c.attr("kernel_shape") or w.shape[2:])
    strides, dilations = list(c.attr("strides") or [1] * n), list(c.attr("dilations") or [1] * n)
    pads = _pads(c, x, kernel, strides, dilations)
    same = _symmetric(pads)
    if same is None:
        x, same = _f().pad(x, _torch_pad(pads)), [0] * n
    fn = {1: _f().conv1d, 2: _f().conv2d, 3: _f().conv3d}.get(n)
    if fn is None:
        raise c.fail(f"{n}-D convolution")
    return fn(x, w, b, strides, same, dilations, c.attr("group", 1))


@op("ConvTranspose")
def conv_transpose(c: OpCall) -> Tensor:
    x, w, b = c.inputs[0], c.inputs[1], c.input(2)
    n = x.dim() - 2
    if c.attr("output_shape") is not None or c.attr("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise c.fail("output_shape / auto_pad (give explicit pads)")
    strides, dilations = list(c.attr("strides") or [1] * n), list(c.attr("dilations") or [1] * n)
    pads = list(c.attr("pads") or [0] * 2 * n)
    out_pad = list(c.attr("output_padding") or [0] * n)
    fn = {1: _f().conv_transpose1d, 2: _f().conv_transpose2d, 3: _f().conv_transpose3d}.get(n)
    if fn is None:
        raise c.fail(f"{n}-D transposed convolution")
    y = fn(x, w, b, strides, 0, out_pad, c.attr("group", 1), dilations)
    index = [slice(None), slice(None)] + [slice(pads[i], y.shape[2 + i] - pads[n + i]) for i in range(n)]
    return y[tuple(index)] if any(pads) else y


@op("MaxPool", "AveragePool")
def pool(c: OpCall) -> Any:
    x = c.inputs[0]
    n = x.dim() - 2
    kernel = list(c.attr("kernel_shape"))
    strides, dilations = list(c.attr("strides") or [1] * n), list(c.attr("dilations") or [1] * n)
    pads = _pads(c, x, kernel, strides, dilations)
    ceil = bool(c.attr("ceil_mode", 0))
    same = _symmetric(pads)
    if c.op_type == "MaxPool":
        if c.attr("storage_order", 0) or c.n_outputs > 1:
            raise c.fail("the Indices output")
        if same is None:
            x, same = _f().pad(x, _torch_pad(pads), value=float("-inf")), [0] * n
        fn = {1: _f().max_pool1d, 2: _f().max_pool2d, 3: _f().max_pool3d}[n]
        return fn(x, kernel, strides, same, dilations, ceil_mode=ceil)
    if any(d != 1 for d in dilations):
        raise c.fail("dilated average pooling")
    include = bool(c.attr("count_include_pad", 0))
    if same is None:
        if not include and any(pads):
            raise c.fail("asymmetric pads without count_include_pad")
        x, same = _f().pad(x, _torch_pad(pads)), [0] * n
    fn = {1: _f().avg_pool1d, 2: _f().avg_pool2d, 3: _f().avg_pool3d}[n]
    return fn(x, kernel, strides, same, ceil_mode=ceil, count_include_pad=include)


@op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(c: OpCall) -> Tensor:
    x = c.inputs[0]
    dims = list(range(2, x.dim()))
    return x.mean(dim=dims, keepdim=True) if c.op_type == "GlobalAveragePool" else x.amax(dim=dims, keepdim=True)


@op("BatchNormalization")
def batch_norm(c: OpCall) -> Tensor:
    x, scale, bias, mean, var = c.inputs[:5]
    if c.attr("training_mode", 0):
        raise c.fail("training_mode=1")
    return _f().batch_norm(x, mean, var, scale, bias, False, 0.0, c.attr("epsilon", 1e-5))


@op("InstanceNormalization")
def instance_norm(c: OpCall) -> Tensor:
    x, scale, bias = c.inputs[:3]
    return _f().instance_norm(x, weight=scale, bias=bias, eps=c.attr("epsilon", 1e-5))


@op("LayerNormalization")
def layer_norm(c: OpCall) -> Any:
    x, scale, bias = c.inputs[0], c.inputs[1], c.input(2)
    axis = axis_of(c.attr("axis", -1), x.dim())
    if c.n_outputs > 1:
        raise c.fail("the Mean / InvStdDev outputs")
    return _f().layer_norm(x, list(x.shape[axis:]), scale, bias, c.attr("epsilon", 1e-5))


@op("GroupNormalization")
def group_norm(c: OpCall) -> Tensor:
    x, scale, bias = c.inputs[:3]
    groups = c.attr("num_groups")
    if c.opset < 21 and scale.shape[0] == groups:  # opset 18: scale and bias per group
        per = x.shape[1] // groups
        scale, bias = scale.repeat_interleave(per), bias.repeat_interleave(per)
    return _f().group_norm(x, groups, scale, bias, c.attr("epsilon", 1e-5))


@op("LRN")
def lrn(c: OpCall) -> Tensor:
    return _f().local_response_norm(c.inputs[0], c.attr("size"), c.attr("alpha", 1e-4), c.attr("beta", 0.75),
                                    c.attr("bias", 1.0))


@op("Pad")
def pad(c: OpCall) -> Tensor:
    x = c.inputs[0]
    mode = c.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads: list[Any] | None
    if c.opset < 11:
        pads, value = list(c.attr("pads")), c.attr("value", 0.0)
    else:
        pads, value = c.ints(1), c.scalar(2)
        axes = c.ints(3)
        if axes is not None and pads is not None:
            full = [0] * 2 * x.dim()
            for i, a in enumerate(axes):
                full[axis_of(a, x.dim())], full[x.dim() + axis_of(a, x.dim())] = pads[i], pads[len(axes) + i]
            pads = full
    assert pads is not None
    if any(not isinstance(p, int) for p in pads):
        raise c.fail("pads computed at run time")
    torch_pads = _torch_pad(pads)
    while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:  # F.pad pads the last axes first
        torch_pads = torch_pads[:-2]
    if mode == "constant":
        return _f().pad(x, torch_pads, value=0.0 if value is None else value)
    return _f().pad(x, torch_pads, mode={"reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode])


_RESIZE_MODES = {"nearest", "linear", "cubic"}


@op("Resize", "Upsample")
def resize(c: OpCall) -> Tensor:
    x = c.inputs[0]
    n = x.dim() - 2
    mode = c.attr("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    coord = c.attr("coordinate_transformation_mode", "half_pixel" if c.op_type == "Resize" else "asymmetric")
    coord = coord.decode() if isinstance(coord, bytes) else coord
    nearest = c.attr("nearest_mode", "round_prefer_floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
    if c.op_type == "Upsample" or c.opset < 11:
        scales, sizes = c.const(1) if c.opset >= 9 else c.attr("scales"), None
    else:
        scales, sizes = c.const(2), c.ints(3)
        if scales is not None and len(scales) == 0:
            scales = None
        if scales is None and sizes is None and c.input(2) is not None:
            raise c.fail("scales computed at run time")
    if c.attr("axes") is not None or c.attr("antialias", 0):
        raise c.fail("axes / antialias")
    if scales is not None and [float(s) for s in list(scales)[:2]] != [1.0, 1.0]:
        raise c.fail("a resize of the batch or channel axis")
    if sizes is None and scales is None:
        raise c.fail("neither scales nor sizes")
    kw: dict[str, Any] = {"size": list(sizes)[2:]} if sizes is not None else \
        {"scale_factor": [float(s) for s in list(scales)[2:]]}  # type: ignore[arg-type]
    if mode == "nearest":
        if coord == "asymmetric" and nearest == "floor":
            return _f().interpolate(x, mode="nearest", **kw)
        if coord in ("half_pixel", "pytorch_half_pixel") and nearest in ("round_prefer_ceil", "round_prefer_floor") \
                and scales is not None and all(float(s).is_integer() for s in list(scales)[2:]):
            return _f().interpolate(x, mode="nearest-exact", **kw)  # integer factors: no ties at all
        raise c.fail(f"nearest resize with coordinate mode {coord!r} and nearest_mode {nearest!r}")
    name = {1: "linear", 2: "bilinear", 3: "trilinear"}[n] if mode == "linear" else "bicubic" if n == 2 else None
    if name is None or mode not in _RESIZE_MODES:
        raise c.fail(f"{mode} resize of {n} spatial axes")
    if mode == "cubic" and c.attr("cubic_coeff_a", -0.75) != -0.75:
        raise c.fail("cubic_coeff_a other than -0.75")
    if coord == "align_corners":
        return _f().interpolate(x, mode=name, align_corners=True, **kw)
    if coord in ("half_pixel", "pytorch_half_pixel"):
        return _f().interpolate(x, mode=name, align_corners=False, **kw)
    raise c.fail(f"{mode} resize with coordinate mode {coord!r}")
