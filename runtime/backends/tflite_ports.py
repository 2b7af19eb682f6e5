"""A TFLite tensor as the backend sees it (``Port``), and the int8 (de)quantization between the
float arrays callers feed and get and a full-integer artifact's own dtypes."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..signature import TensorSpec

QUANTIZED = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


class Port(NamedTuple):
    """One artifact input or output: how to reach it and how to convert it."""

    name: str
    tensor: int  # tensor index (used without a signature runner)
    dtype: np.dtype  # the artifact tensor's dtype
    scale: float
    zero_point: int
    convert: bool  # (de)quantize between float and the artifact's integer dtype
    float_dtype: np.dtype  # the float dtype the caller feeds / gets when converting


def port_of(name: str, detail: Mapping[str, Any], spec: TensorSpec | None) -> Port:
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization") or (0.0, 0)
    want = np.dtype(spec.dtype) if spec is not None else np.dtype(np.float32)
    convert = (dtype in QUANTIZED and float(scale) != 0.0 and want.kind == "f")
    return Port(name, int(detail["index"]), dtype, float(scale), int(zero), convert,
                 want if want.kind == "f" else np.dtype(np.float32))


def quantize(x: np.ndarray, port: Port) -> np.ndarray:
    """float -> the tensor's integer dtype: round(x / scale) + zero_point, clipped."""
    info = np.iinfo(port.dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(port.scale)) + port.zero_point
    return np.clip(q, info.min, info.max).astype(port.dtype)


def dequantize(q: np.ndarray, port: Port) -> np.ndarray:
    """integer tensor -> float: (q - zero_point) * scale."""
    return ((q.astype(np.float32) - np.float32(port.zero_point))
            * np.float32(port.scale)).astype(port.float_dtype, copy=False)
