"""Element-wise, reduction and matrix ops (ONNX semantics: numpy broadcasting, integer division
truncates, Softmax before opset 13 normalises the flattened trailing axes)."""
from __future__ import annotations

from functools import reduce
from typing import Any

from .registry import OpCall, Tensor, axes_list, axis_of, module_op, op, torch_dtype


def _t() -> Any:
    import torch
    return torch


def _binary(fn_name: str) -> Any:
    def run(c: OpCall) -> Tensor:
        return getattr(_t(), fn_name)(c.inputs[0], c.inputs[1])
    return run


for _onnx, _torch in {"Add": "add", "Sub": "sub", "Mul": "mul", "Equal": "eq", "Less": "lt", "LessOrEqual": "le",
                      "Greater": "gt", "GreaterOrEqual": "ge", "And": "logical_and", "Or": "logical_or",
                      "Xor": "logical_xor", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or"}.items():
    op(_onnx)(_binary(_torch))

_UNARY = {"Neg": "neg", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
          "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh",
          "Cosh": "cosh", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Erf": "erf", "Floor": "floor",
          "Ceil": "ceil", "Round": "round", "Sign": "sign", "Not": "logical_not", "IsNaN": "isnan",
          "Softsign": "nn.functional.softsign", "Mish": "nn.functional.mish"}


def _unary(path: str) -> Any:
    def run(c: OpCall) -> Tensor:
        fn: Any = _t()
        for part in path.split("."):
            fn = getattr(fn, part)
        return fn(c.inputs[0])
    return run


for _onnx, _torch in _UNARY.items():
    op(_onnx)(_unary(_torch))


@op("Identity", "Dropout")
def identity(c: OpCall) -> Any:
    x = c.inputs[0]
    return (x, _t().ones_like(x, dtype=_t().bool)) if c.n_outputs > 1 else x


@op("Div")
def div(c: OpCall) -> Tensor:
    a, b = c.inputs[0], c.inputs[1]
    if a.is_floating_point():
        return a / b
    return _t().div(a, b, rounding_mode="trunc")


@op("Mod")
def mod(c: OpCall) -> Tensor:
    torch = _t()
    return torch.fmod(c.inputs[0], c.inputs[1]) if c.attr("fmod", 0) else torch.remainder(c.inputs[0], c.inputs[1])


@op("Pow")
def power(c: OpCall) -> Tensor:
    base, exponent = c.inputs[0], c.inputs[1]
    exp = c.const(1)
    if exp is not None and exp.size == 1 and float(exp.reshape(-1)[0]) == 2.0:
        return base * base
    return _t().pow(base, exponent).to(base.dtype)


@op("IsInf")
def isinf(c: OpCall) -> Tensor:
    torch, x = _t(), c.inputs[0]
    pos, neg = c.attr("detect_positive", 1), c.attr("detect_negative", 1)
    if pos and neg:
        return torch.isinf(x)
    return torch.isposinf(x) if pos else torch.isneginf(x) if neg else torch.zeros_like(x, dtype=torch.bool)


def _variadic(fn_name: str) -> Any:
    def run(c: OpCall) -> Tensor:
        return reduce(getattr(_t(), fn_name), [x for x in c.inputs if x is not None])
    return run


op("Max")(_variadic("maximum"))
op("Min")(_variadic("minimum"))
op("Sum")(_variadic("add"))


@op("Mean")
def mean(c: OpCall) -> Tensor:
    xs = [x for x in c.inputs if x is not None]
    return reduce(_t().add, xs) / len(xs)


@op("Where")
def where(c: OpCall) -> Tensor:
    return _t().where(c.inputs[0], c.inputs[1], c.inputs[2])


@op("Clip")
def clip(c: OpCall) -> Tensor:
    torch, x = _t(), c.inputs[0]
    if c.opset < 11:
        lo, hi = c.attr("min"), c.attr("max")
    else:
        lo, hi = c.input(1), c.input(2)
    if lo is not None:
        x = torch.maximum(x, lo if isinstance(lo, torch.Tensor) else torch.tensor(lo, dtype=x.dtype))
    if hi is not None:
        x = torch.minimum(x, hi if isinstance(hi, torch.Tensor) else torch.tensor(hi, dtype=x.dtype))
    return x


@op("LeakyRelu")
def leaky_relu(c: OpCall) -> Tensor:
    return _t().nn.functional.leaky_relu(c.inputs[0], c.attr("alpha", 0.01))


@op("PRelu")
def prelu(c: OpCall) -> Tensor:
    x, slope = c.inputs[0], c.inputs[1]
    return _t().where(x >= 0, x, x * slope)


@op("Elu")
def elu(c: OpCall) -> Tensor:
    return _t().nn.functional.elu(c.inputs[0], c.attr("alpha", 1.0))


@op("Celu")
def celu(c: OpCall) -> Tensor:
    return _t().nn.functional.celu(c.inputs[0], c.attr("alpha", 1.0))


@op("Selu")
def selu(c: OpCall) -> Tensor:
    x, torch = c.inputs[0], _t()
    alpha, gamma = c.attr("alpha", 1.67326319217681884765625), c.attr("gamma", 1.05070102214813232421875)
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@op("HardSigmoid")
def hard_sigmoid(c: OpCall) -> Tensor:
    return _t().clamp(c.attr("alpha", 0.2) * c.inputs[0] + c.attr("beta", 0.5), 0, 1)


@op("HardSwish")
def hard_swish(c: OpCall) -> Tensor:
    return _t().nn.functional.hardswish(c.inputs[0])


@op("Softplus")
def softplus(c: OpCall) -> Tensor:
    return _t().nn.functional.softplus(c.inputs[0])


@op("ThresholdedRelu")
def thresholded_relu(c: OpCall) -> Tensor:
    x = c.inputs[0]
    return _t().where(x > c.attr("alpha", 1.0), x, _t().zeros_like(x))


@op("Gelu")
def gelu(c: OpCall) -> Tensor:
    return _t().nn.functional.gelu(c.inputs[0], approximate=c.attr("approximate", "none"))


@op("Softmax", "LogSoftmax")
def softmax(c: OpCall) -> Tensor:
    torch, x = _t(), c.inputs[0]
    fn = torch.softmax if c.op_type == "Softmax" else torch.log_softmax
    if c.opset >= 13:
        return fn(x, axis_of(c.attr("axis", -1), x.dim()))
    axis = axis_of(c.attr("axis", 1), x.dim())  # before 13: over the flattened axes from ``axis`` on
    if axis == x.dim() - 1:
        return fn(x, axis)
    shape = torch._shape_as_tensor(x)
    return fn(x.flatten(axis), axis).reshape(list(shape))


def _axes(c: OpCall, rank: int, *, input_from: int) -> list[int] | None:
    """A reduction's axes: an input from opset ``input_from`` on, an attribute before."""
    values = c.ints(1) if c.opset >= input_from else c.attr("axes")
    if values is None or len(values) == 0:
        return None
    if any(not isinstance(v, int) for v in values):
        raise c.fail("axes computed at run time")
    return axes_list(values, rank)


_REDUCE_INPUT_FROM = {"ReduceSum": 13}


@op("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare", "ReduceL1",
    "ReduceLogSumExp")
def reduce_op(c: OpCall) -> Tensor:
    torch, x = _t(), c.inputs[0]
    axes = _axes(c, x.dim(), input_from=_REDUCE_INPUT_FROM.get(c.op_type, 18))
    keep = bool(c.attr("keepdims", 1))
    if axes is None:
        if c.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.dim()))
    if c.op_type == "ReduceMean":
        return x.mean(dim=axes, keepdim=keep)
    if c.op_type == "ReduceSum":
        return x.sum(dim=axes, keepdim=keep)
    if c.op_type == "ReduceSumSquare":
        return (x * x).sum(dim=axes, keepdim=keep)
    if c.op_type == "ReduceL1":
        return x.abs().sum(dim=axes, keepdim=keep)
    if c.op_type == "ReduceL2":
        return (x * x).sum(dim=axes, keepdim=keep).sqrt()
    if c.op_type == "ReduceLogSumExp":
        return torch.logsumexp(x, dim=axes, keepdim=keep)
    if c.op_type == "ReduceProd":
        for a in sorted(axes, reverse=True):
            x = x.prod(dim=a, keepdim=keep)
        return x
    return torch.amax(x, dim=axes, keepdim=keep) if c.op_type == "ReduceMax" else torch.amin(x, dim=axes, keepdim=keep)


@op("ArgMax", "ArgMin")
def argmax(c: OpCall) -> Tensor:
    torch, x = _t(), c.inputs[0]
    axis, keep = axis_of(c.attr("axis", 0), x.dim()), bool(c.attr("keepdims", 1))
    if c.attr("select_last_index", 0):
        flipped = x.flip(axis)
        idx = (flipped.argmax if c.op_type == "ArgMax" else flipped.argmin)(dim=axis, keepdim=keep)
        return torch._shape_as_tensor(x)[axis] - 1 - idx
    return (x.argmax if c.op_type == "ArgMax" else x.argmin)(dim=axis, keepdim=keep)


@op("CumSum")
def cumsum(c: OpCall) -> Tensor:
    x = c.inputs[0]
    axis = c.scalar(1)
    if not isinstance(axis, int):
        raise c.fail("the axis is computed at run time")
    axis = axis_of(axis, x.dim())
    if c.attr("reverse", 0):
        x = x.flip(axis)
    out = x.cumsum(axis)
    if c.attr("exclusive", 0):
        out = out - x
    return out.flip(axis) if c.attr("reverse", 0) else out


@op("MatMul")
def matmul(c: OpCall) -> Tensor:
    if c.module is not None:
        return c.module(c.inputs[0])
    return _t().matmul(c.inputs[0], c.inputs[1])


@module_op("MatMul", holds={1})
def matmul_linear(c: OpCall) -> Any:
    """A MatMul by a constant 2-D weight is an ``nn.Linear`` (int8 dynamic quantization takes it)."""
    weight = c.const(1)
    if weight is None or weight.ndim != 2 or c.const(0) is not None or weight.dtype.kind != "f":
        return None
    torch = _t()
    linear = torch.nn.Linear(weight.shape[0], weight.shape[1], bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight.T.copy()))
    return linear


@op("Gemm")
def gemm(c: OpCall) -> Tensor:
    if c.module is not None:
        return c.module(c.inputs[0])
    a, b, bias = c.inputs[0], c.inputs[1], c.input(2)
    if c.attr("transA", 0):
        a = a.transpose(0, 1)
    if c.attr("transB", 0):
        b = b.transpose(0, 1)
    out = _t().matmul(a, b) * c.attr("alpha", 1.0)
    return out if bias is None else out + c.attr("beta", 1.0) * bias


@module_op("Gemm", holds={1, 2})
def gemm_linear(c: OpCall) -> Any:
    """``Gemm(x, W, b)`` with constant W (and b per output): an ``nn.Linear``."""
    weight, bias = c.const(1), c.const(2)
    if weight is None or c.attr("transA", 0) or weight.dtype.kind != "f" or c.const(0) is not None:
        return None
    if c.input(2) is not None and (bias is None or bias.size not in (1, weight.shape[0 if c.attr("transB", 0) else 1])):
        return None
    torch = _t()
    w = (weight if c.attr("transB", 0) else weight.T) * c.attr("alpha", 1.0)
    linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.astype(weight.dtype).copy()))
        if bias is not None:
            b = (bias.reshape(-1) * c.attr("beta", 1.0)).astype(weight.dtype)
            linear.bias.copy_(torch.from_numpy(b).expand(w.shape[0]).clone())
    return linear


@op("Einsum")
def einsum(c: OpCall) -> Tensor:
    return _t().einsum(c.attr("equation"), *[x for x in c.inputs if x is not None])


@op("Cast")
def cast(c: OpCall) -> Tensor:
    return c.inputs[0].to(torch_dtype(c.attr("to"), c))


@op("CastLike")
def cast_like(c: OpCall) -> Tensor:
    return c.inputs[0].to(c.inputs[1].dtype)
