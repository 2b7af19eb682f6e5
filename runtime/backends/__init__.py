"""Backend registry: backend name (as in bundle.json ``backend``) -> Backend class.

A candidate naming an unregistered backend is skipped with a reason instead of crashing. The
built-in backends are imported by name when a candidate first asks for one, so ``import runtime``
and a bundle with only ONNX candidates never load the TFLite or TorchScript modules (each
imports its framework only when tried, too). ``fake`` (``runtime.backends.fake``) is the backend
for users' own tests.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import Backend

# name -> Backend class, or "module:Class" for one not imported yet
_REGISTRY: dict[str, type[Backend] | str] = {
    "onnxruntime": "onnxruntime:OnnxRuntimeBackend", "tflite": "tflite:TFLiteBackend",
    "torchscript": "torchscript:TorchScriptBackend", "fake": "fake:FakeBackend"}
_LAZY = {"OnnxRuntimeBackend": "onnxruntime", "TFLiteBackend": "tflite",
         "TorchScriptBackend": "torchscript", "FakeBackend": "fake"}


def register_backend(name: str, cls: type[Backend]) -> None:
    """Add or replace a backend (``runtime.backends.fake.faking`` does it for tests)."""
    _REGISTRY[name] = cls


def unregister_backend(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_backend(name: str) -> type[Backend] | None:
    entry = _REGISTRY.get(name)
    if isinstance(entry, str):
        module, _, cls_name = entry.partition(":")
        entry = getattr(import_module(f"{__name__}.{module}"), cls_name)
        _REGISTRY[name] = entry
    return entry


def backend_names() -> list[str]:
    """The backends a bundle may name (the fake one is for tests, not bundles)."""
    return sorted(n for n in _REGISTRY if n != "fake")


def __getattr__(name: str) -> Any:  # the backend classes, imported on first use
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Backend", "FakeBackend", "OnnxRuntimeBackend", "TFLiteBackend", "TorchScriptBackend",
           "backend_names", "get_backend", "register_backend", "unregister_backend"]
