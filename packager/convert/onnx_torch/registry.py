"""The op table of the ONNX -> torch converter: ONNX op type -> a function of one node's call.

An op function gets an ``OpCall`` (the node's attributes, its input tensors, and those inputs'
values when they are constants known at conversion time) and returns its output tensor(s). Ops
write shapes with torch values (``torch._shape_as_tensor``, lists of 0-d tensors), never Python
ints read from a tensor: ``torch.jit.trace`` records those as graph operations, so a dynamic axis
(batch, sequence) stays dynamic in the TorchScript artifact instead of being frozen at the
example's length.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Tensor = Any  # torch.Tensor: torch is imported by the functions that run, not at module import
OpFn = Callable[["OpCall"], Any]

OPS: dict[str, OpFn] = {}
# ops that hold a torch submodule made at conversion time (nn.Linear, nn.LSTM, ...): name -> maker;
# the maker returns the module, or None when the node does not fit (the op function then runs)
MODULES: dict[str, Callable[[OpCall], Any]] = {}
# the input positions such a submodule holds (its weights): not kept as buffers besides
HELD: dict[str, frozenset[int]] = {}


def op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register ``fn`` for the ONNX op types ``names`` (default domain)."""
    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
        return fn
    return register


def module_op(name: str, holds: set[int]) -> Callable[[Callable[[OpCall], Any]], Callable[[OpCall], Any]]:
    """Register the submodule maker for op type ``name``, whose module holds inputs ``holds``."""
    def register(fn: Callable[[OpCall], Any]) -> Callable[[OpCall], Any]:
        MODULES[name] = fn
        HELD[name] = frozenset(holds)
        return fn
    return register


class Unconvertible(Exception):
    """This node cannot be expressed in torch (an attribute value or form the converter lacks)."""


@dataclass
class OpCall:
    """One node as an op function sees it."""

    op_type: str
    name: str
    attrs: dict[str, Any]
    inputs: list[Any]  # tensors; None: an omitted optional input
    consts: list[np.ndarray | None]  # the value when known at conversion time
    opset: int
    module: Any = None  # the submodule MODULES made for this node, if any
    n_outputs: int = 1

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def input(self, i: int) -> Tensor | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def const(self, i: int) -> np.ndarray | None:
        return self.consts[i] if i < len(self.consts) else None

    def ints(self, i: int) -> list[Any] | None:
        """Input ``i`` as a list of ints (a constant) or of 0-d tensors (computed at run time),
        or None when the input is omitted."""
        value = self.const(i)
        if value is not None:
            return [int(v) for v in np.asarray(value).reshape(-1)]
        tensor = self.input(i)
        return None if tensor is None else list(tensor.reshape(-1).unbind(0))

    def scalar(self, i: int) -> Any:
        """Input ``i`` as a Python number when constant, else the 0-d tensor (None if omitted)."""
        value = self.const(i)
        if value is not None:
            return np.asarray(value).reshape(-1)[0].item()
        tensor = self.input(i)
        return None if tensor is None else tensor.reshape(())

    def fail(self, why: str) -> Unconvertible:
        return Unconvertible(f"{self.op_type} node {self.name!r}: {why}")


# ONNX TensorProto data types -> torch dtype names
DTYPES: dict[int, str] = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                          10: "float16", 11: "float64", 16: "bfloat16"}


def torch_dtype(code: int, where: OpCall) -> Any:
    import torch
    if code not in DTYPES:
        raise where.fail(f"ONNX data type {code} has no torch counterpart here")
    return getattr(torch, DTYPES[code])


def axis_of(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def axes_list(values: Sequence[int], rank: int) -> list[int]:
    return [axis_of(int(a), rank) for a in values]
