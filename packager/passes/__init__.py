"""Model passes (prepare, simplify, quantize): each takes an ONNX model and records what it did."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx


@dataclass
class PassResult:
    """A pass's output model and a record of what it did (shown in the build summary)."""

    model: onnx.ModelProto
    name: str
    modified: bool
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
