"""Backend registry: backend name (as in bundle.json ``backend``) -> Backend class.

A candidate naming an unregistered backend is skipped with a reason instead of crashing.
Importing a backend module costs nothing: each imports its framework only when tried.
"""
from __future__ import annotations

from .base import Backend
from .onnxruntime import OnnxRuntimeBackend
from .tflite import TFLiteBackend
from .torchscript import TorchScriptBackend

_REGISTRY: dict[str, type[Backend]] = {
    cls.name: cls for cls in (OnnxRuntimeBackend, TFLiteBackend, TorchScriptBackend)}


def register_backend(name: str, cls: type[Backend]) -> None:
    """Add or replace a backend (tests use this to inject fakes)."""
    _REGISTRY[name] = cls


def unregister_backend(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_backend(name: str) -> type[Backend] | None:
    return _REGISTRY.get(name)


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["Backend", "OnnxRuntimeBackend", "TFLiteBackend", "TorchScriptBackend",
           "backend_names", "get_backend", "register_backend", "unregister_backend"]
