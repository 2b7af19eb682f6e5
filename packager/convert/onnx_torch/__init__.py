"""ONNX -> ``torch.nn.Module``: edgepack's own converter, the first step of ONNX -> TorchScript.

Why not onnx2torch (the one maintained ONNX -> PyTorch converter): it imports torchvision at
import time, and PyPI's torchvision cannot be installed beside the pinned torch CPU wheel (the
matching one is a multi-GB CUDA build). This converter is an op table (``registry.OPS``, filled by
``ops_*``) run node by node by ``graph.to_module``; the module is then traced to TorchScript and
checked like every artifact. A graph with an op outside the table is refused with the op's name.
"""
from __future__ import annotations

from .graph import to_module, unsupported_ops
from .registry import OPS, Unconvertible

__all__ = ["OPS", "Unconvertible", "to_module", "unsupported_ops"]
