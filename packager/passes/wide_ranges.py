"""Tensors whose calibrated range 8 bits cannot hold, and the nodes kept in float because of them.

A transformer's attention mask is filled with float32's minimum (or -1e4, -1e9) where a token is
padding or in the future. Calibration then gives the mask and the scores it is added to a range
like [-3.4e38, 5]: one uint8 step spans about 1e36, every real score rounds to the same value and
the softmax after it sees uniform attention (a small BERT: 55 % error, top-1 agreement 0.75).
Keeping the few nodes that make or read such a tensor in float (the mask's Where, the Add, the
Softmax) keeps the model's parity and costs little; the bundle records which ones.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

WIDE = 1e4  # |value| at or above this in a calibrated range is a fill value, not a signal (-1e4 masks included)


def calibrated_ranges(tensors_data: Any) -> dict[str, tuple[float, float]]:
    """(min, max) per tensor from onnxruntime's ``TensorsData`` (any calibration method)."""
    ranges = {}
    for name, data in tensors_data.data.items():
        lo, hi = data.range_value if hasattr(data, "range_value") else (data.lowest, data.highest)
        ranges[name] = (float(np.min(lo)), float(np.max(hi)))
    return ranges


def wide_tensors(ranges: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The tensors whose range reaches a fill value (or is not finite), sorted by name."""
    return {name: (lo, hi) for name, (lo, hi) in sorted(ranges.items())
            if not (np.isfinite(lo) and np.isfinite(hi)) or max(abs(lo), abs(hi)) >= WIDE}


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every unnamed top-level node named (op type and position), so that the
    quantizer can be told to leave it out; named nodes keep their names."""
    taken = {n.name for n in model.graph.node if n.name}
    if len(taken) == len(model.graph.node):
        return model
    named = onnx.ModelProto()
    named.CopyFrom(model)
    for i, node in enumerate(named.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    return named


def nodes_touching(model: onnx.ModelProto, tensors: Mapping[str, Any]) -> list[onnx.NodeProto]:
    """The top-level nodes that make or read any of ``tensors``, in graph order."""
    wide = set(tensors)
    return [n for n in model.graph.node if wide & set(n.input) or wide & set(n.output)]


def describe(nodes: list[onnx.NodeProto], tensors: Mapping[str, tuple[float, float]]) -> str:
    """One note: which nodes stay float and why (the widest range named)."""
    name, (lo, hi) = max(tensors.items(), key=lambda kv: max(abs(kv[1][0]), abs(kv[1][1])))
    ops = ", ".join(f"{n.name} ({n.op_type})" for n in nodes[:6]) + (f" and {len(nodes) - 6} more"
                                                                       if len(nodes) > 6 else "")
    return (f"{len(nodes)} node(s) kept in float: {len(tensors)} tensor(s) reach a fill value 8 bits cannot "
            f"hold beside the real values (e.g. '{name}' ranges over [{lo:.3g}, {hi:.3g}], as an attention mask does): "
            f"{ops}")
