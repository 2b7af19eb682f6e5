"""Where a quantized model's error comes from: per-node comparison with the float model, and the
mixed-precision search that keeps the worst nodes in float until parity holds."""
from __future__ import annotations

from .mixed import Mixed, search
from .onnx_nodes import NodeError, localise, ranked

__all__ = ["Mixed", "NodeError", "localise", "ranked", "search"]
