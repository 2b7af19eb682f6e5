"""PyTorch sources: an entry point returning an nn.Module with its weights loaded."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.manifest import Manifest
from ..errors import SourceError, not_installed
from ..inputs.entrypoints import call_entry


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise not_installed("a torch source", "PyTorch", "torch", pin="pins torch==2.13.0") from None
    return torch


def state_dict_sha256(module: Any) -> str:
    """A hash of every parameter and buffer (names, dtypes, shapes, values) in a stable order."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        data = (t.int_repr() if t.is_quantized else t).contiguous().reshape(-1)
        h.update(data.view(__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class TorchSource:
    """A torch model in eval mode, run under no_grad as the reference."""

    module: Any
    manifest: Manifest
    sha256: str
    framework: str = "torch"

    @property
    def description(self) -> str:
        return f"torch entry {self.manifest.source.entry}"

    @property
    def cache_key(self) -> str:
        """Weights AND code: the source of every non-torch module class, so an edited forward()
        with unchanged weights is a different model."""
        import inspect
        codes = []
        for cls in sorted({type(m) for m in self.module.modules()}, key=lambda c: c.__qualname__):
            if not cls.__module__.startswith("torch."):
                try:
                    codes.append(inspect.getsource(cls))
                except (OSError, TypeError):
                    codes.append(f"{cls.__module__}.{cls.__qualname__}")
        return hashlib.sha256("\n".join([self.sha256, *codes, repr(sorted(self.manifest.source.kwargs.items()))])
                              .encode()).hexdigest()

    @classmethod
    def load(cls, manifest: Manifest) -> TorchSource:
        torch = _import_torch()
        where = f"{manifest.file}: source.entry"
        module = call_entry(manifest.source.entry or "", manifest.base_dir, SourceError, where,
                            **manifest.source.kwargs)
        if not isinstance(module, torch.nn.Module):
            raise SourceError(f"{manifest.source.entry} returned {type(module).__name__}, not a "
                              "torch.nn.Module", where=where,
                              hint="return the model object with its weights loaded")
        module.eval()
        return cls(module=module, manifest=manifest, sha256=state_dict_sha256(module))

    def reference(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = _import_torch()
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.manifest.inputs]
        try:
            with torch.no_grad():
                result = self.module(*args)
            return outputs_to_dict(result, self.manifest)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"running the torch model failed: {type(exc).__name__}: {exc}",
                              where=f"{self.manifest.file}: inputs",
                              hint="check that the manifest's inputs (order, dtype, shape) match "
                                   "the model's forward()") from exc


def ordered_outputs(module: Any, names: list[str], args: tuple[Any, ...]) -> Any:
    """``module`` itself, or, when its forward() returns a dict, a wrapper returning a tuple in
    the manifest's output order: exporters name outputs by position, not by dict key."""
    torch = _import_torch()
    with torch.no_grad():
        if not isinstance(module(*args), dict):
            return module

    module_base: Any = torch.nn.Module  # torch is imported lazily: its class is a value here

    class Ordered(module_base):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *args: Any) -> Any:
            result = self.inner(*args)
            if isinstance(result, dict):
                return tuple(result[n] for n in names)
            return result

    return Ordered().eval()


def outputs_to_dict(result: Any, manifest: Manifest) -> dict[str, np.ndarray]:
    """Map a forward() result (tensor, tuple/list, or dict) onto the manifest's output names."""
    names = [o.name for o in manifest.outputs]
    if isinstance(result, dict):
        missing = [n for n in names if n not in result]
        if missing:
            raise SourceError(f"the model's output dict lacks {missing} (it has {list(result)})",
                              where=f"{manifest.file}: outputs")
        values = [result[n] for n in names]
    else:
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(values) != len(names):
            raise SourceError(f"the model returns {len(values)} output(s), the manifest lists "
                              f"{len(names)} ({names})", where=f"{manifest.file}: outputs",
                              hint="list one output name per returned tensor, in order")
    bad = [n for n, v in zip(names, values, strict=True) if not hasattr(v, "detach")]
    if bad:
        raise SourceError(f"output(s) {bad} of the model are not tensors", where=f"{manifest.file}: outputs",
                          hint="forward() must return tensors (a tensor, a tuple/list or a dict of them)")
    return {n: v.detach().cpu().numpy() for n, v in zip(names, values, strict=True)}
