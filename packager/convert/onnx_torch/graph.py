"""An ONNX graph as a ``torch.nn.Module``: its nodes run in order through the op table.

At conversion time every node whose inputs are all constants is evaluated once (shape arithmetic
on fixed axes, weight transposes, Constant nodes), so the ops that need numbers (axes, pads,
kernel sizes) read them as Python values; constants the remaining nodes read become buffers, and
nodes with a torch counterpart holding weights (Gemm / MatMul by a constant -> ``nn.Linear``,
LSTM / GRU -> ``nn.LSTM`` / ``nn.GRU``) become submodules. ``forward`` takes the manifest's
inputs in order and returns its outputs in order.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from . import ops_math, ops_nn, ops_rnn, ops_shape  # noqa: F401 (they fill the op table)
from .registry import HELD, MODULES, OPS, OpCall, Unconvertible

# never evaluated at conversion time: their value is not a function of their inputs' values alone
_NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
_FOLD_LIMIT = 1 << 26  # bytes: a folded constant larger than this stays a computation


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[a.name] = value
    return out


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    attrs = _attrs(node)
    for key in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if key in attrs:
            dtype = np.float32 if "float" in key else np.int64 if "int" in key else None
            return np.asarray(attrs[key], dtype=dtype)
    raise Unconvertible(f"Constant node {node.name!r}: {sorted(attrs)} (sparse or string constants)")


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """The graph's op types the converter has no function for (with their domain if not ONNX's)."""
    out = []
    for node in model.graph.node:
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        if (domain or node.op_type not in OPS) and node.op_type != "Constant":
            label = f"{domain}.{node.op_type}" if domain else node.op_type
            if label not in out:
                out.append(label)
    return out


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


class _Plan:
    """What forward runs: nodes left after folding, with their attributes and submodule keys."""

    def __init__(self, model: onnx.ModelProto, inputs: list[str]) -> None:
        import torch
        self.opset = _opset(model)
        graph = model.graph
        # an initializer also fed as an input (old exporters list weights as inputs) is the input
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer
                                              if t.name not in inputs}
        # per node left: the node, its attributes, its submodule's key and the inputs it reads at run time
        self.steps: list[tuple[onnx.NodeProto, dict[str, Any], str | None, list[str]]] = []
        self.modules: dict[str, Any] = {}
        for index, node in enumerate(graph.node):
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                self.consts[node.output[0]] = _constant_value(node)
                continue
            attrs = _attrs(node)
            names = [n for n in node.input]
            if all(n == "" or n in self.consts for n in names) and node.op_type not in _NOT_FOLDED \
                    and node.op_type not in MODULES:
                call = self.call(node, attrs, [torch.from_numpy(np.array(self.consts[n])) if n else None
                                               for n in names], None)
                values = OPS[node.op_type](call)
                values = values if isinstance(values, tuple) else (values,)
                if sum(int(np.asarray(v).nbytes) for v in values) <= _FOLD_LIMIT:
                    for name, value in zip(node.output, values, strict=False):
                        if name:
                            self.consts[name] = value.detach().numpy().copy()
                    continue
            key, reads = None, names
            if node.op_type in MODULES:
                # the maker sees which inputs are given (their names) and the constants' values
                module = MODULES[node.op_type](self.call(node, attrs, [n or None for n in names], None))
                if module is not None:
                    key = f"n{index}"
                    self.modules[key] = module
                    reads = ["" if i in HELD[node.op_type] else n for i, n in enumerate(names)]
            self.steps.append((node, attrs, key, reads))

    def call(self, node: onnx.NodeProto, attrs: dict[str, Any], inputs: list[Any], module: Any) -> OpCall:
        return OpCall(node.op_type, node.name or node.output[0], attrs, inputs,
                      [self.consts.get(n) if n else None for n in node.input], self.opset, module,
                      n_outputs=len(node.output))


def to_module(model: onnx.ModelProto, inputs: list[str], outputs: list[str]) -> Any:
    """``model`` as an ``nn.Module`` taking ``inputs`` positionally and returning ``outputs``
    (a tuple, or the one tensor); Unconvertible names the first node it cannot express."""
    import torch
    missing = unsupported_ops(model)
    if missing:
        raise Unconvertible(f"no torch counterpart for op(s) {', '.join(missing)}")
    plan = _Plan(model, inputs)

    class OnnxGraphModule(torch.nn.Module):
        """The ONNX graph, node by node (made by edgepack's ONNX -> torch converter)."""

        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleDict(plan.modules)
            read = {n for _, _, _, reads in plan.steps for n in reads} | set(outputs)
            self._names: dict[str, str] = {}
            for i, name in enumerate(sorted(n for n in read if n in plan.consts)):
                self.register_buffer(f"c{i}", torch.from_numpy(np.array(plan.consts[name])), persistent=True)
                self._names[name] = f"c{i}"

        def forward(self, *args: Any) -> Any:
            env: dict[str, Any] = dict(zip(inputs, args, strict=True))
            for name, attr in self._names.items():
                env[name] = getattr(self, attr)
            for node, attrs, key, reads in plan.steps:
                call = plan.call(node, attrs, [env[n] if n else None for n in reads],
                                 self.blocks[key] if key is not None else None)
                values = OPS[node.op_type](call)
                values = values if isinstance(values, tuple) else (values,)
                for name, value in zip(node.output, values, strict=False):
                    if name:
                        env[name] = value
            result = tuple(env[n] for n in outputs)
            return result[0] if len(result) == 1 else result

    return OnnxGraphModule().eval().requires_grad_(False)
