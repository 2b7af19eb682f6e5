"""TorchScript backend: ``torch.jit.load`` on the device the candidate asks for and this host has.

TorchScript modules take positional tensors and return a tensor, tuple, list or dict, so the
backend maps the bundle signature's input/output order onto them. Providers are devices
(``["cuda", "cpu"]``): a missing CUDA with a CPU fallback listed runs on CPU and reports it, so
select records the downgrade; CUDA as the only device is an error.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError
from ..signature import TensorSpec
from .base import Backend


def _import_torch() -> Any:
    import torch  # lazy: only when this backend is tried

    return torch


class TorchScriptBackend(Backend):
    """Runs .pt TorchScript artifacts. No lock: a scripted module in eval mode under
    inference_mode keeps no per-call state, and TorchScript's executor is thread-safe."""

    name = "torchscript"
    providers_pick_one = True  # the first available device of the list

    def __init__(self) -> None:
        self._module: Any = None
        self._torch: Any = None
        self._device: Any = None
        self._half: Any = None  # the module's half dtype when the candidate is fp16
        super().__init__()

    framework = "torch"

    @classmethod
    def import_framework(cls) -> Any:
        return _import_torch()

    def open_impl(self, path: Path, *, providers: Sequence[str],
                  provider_options: Sequence[Mapping[str, Any]], threads: int | None,
                  options: Mapping[str, Any], inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec]) -> None:
        where = str(path)
        torch = self.load_framework(where)
        self._version = str(getattr(torch, "__version__", "?"))
        asked = list(providers) or ["cpu"]
        device = self._pick_device(torch, asked, where)
        if threads and threads > 0:
            torch.set_num_threads(int(threads))  # process-wide: torch has no per-module knob
        engine = options.get("quantized_engine")
        if engine is not None:
            supported = list(torch.backends.quantized.supported_engines)
            if engine not in supported:
                raise BackendError(f"quantized engine {engine!r} not supported by this torch "
                                   f"build (supported: {supported})", where=where,
                                   hint="use the bundle built for this device's CPU "
                                        "(qnnpack on ARM, x86/fbgemm on x86)")
            torch.backends.quantized.engine = engine  # before load: packed weights depend on it
        try:
            with warnings.catch_warnings():  # "torch.jit.load is deprecated": not the user's to fix
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device)
            module.eval()
        except Exception as exc:
            raise BackendError(f"torch.jit.load failed: {_one_line(exc)}", where=where) from exc
        if options.get("precision") == "fp16":
            self._half = _half_dtype(torch, module)
        self._input_names = [s.name for s in inputs] or _forward_arg_names(module)
        self._output_names = [s.name for s in outputs]
        self._module, self._torch, self._device = module, torch, device
        self._asked = asked
        self._in_use = [str(device.type if device.index is None else device)]

    def _pick_device(self, torch: Any, asked: list[str], where: str) -> Any:
        """The first asked device this host has; a missing CUDA is noted, not fatal, while a
        later device is listed."""
        for name in asked:
            if name == "cpu":
                return torch.device("cpu")
            if name == "cuda" or name.startswith("cuda:"):
                if torch.cuda.is_available():
                    return torch.device(name)
                self._notes.append(f"{name}: torch.cuda.is_available() is false")
                continue
            raise BackendError(f"unknown TorchScript device {name!r}", where=where,
                               hint="providers are devices: 'cpu', 'cuda' or 'cuda:N'")
        raise BackendError(f"none of the devices {asked} is available here "
                           f"({'; '.join(self._notes)})", where=where,
                           hint="use a candidate for this device (a CPU one), or install the "
                                "CUDA build of torch")

    def run_impl(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False
                 ) -> dict[str, np.ndarray]:
        module, torch = self._module, self._torch
        if module is None:
            raise BackendError("module is not open", hint="open() first, or the model was closed")
        try:
            args = [self._tensor(feeds[name]) for name in self._input_names]
        except KeyError as exc:
            raise BackendError(f"missing input {exc.args[0]!r}") from None
        try:
            with torch.inference_mode():
                result = module(*args)
        except Exception as exc:
            raise BackendError(f"inference failed: {_one_line(exc)}") from exc
        return self._collect(result)

    def _tensor(self, arr: np.ndarray) -> Any:
        torch = self._torch
        arr = np.asarray(arr)
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr).copy()  # from_numpy warns on read-only memory
        t = torch.from_numpy(arr)
        if self._half is not None and t.is_floating_point():
            t = t.to(self._half)
        return t.to(self._device) if self._device.type != "cpu" else t

    def _collect(self, result: Any) -> dict[str, np.ndarray]:
        """Map a tensor / tuple / list / dict result onto the output names, as float32 numpy."""
        names = self._output_names
        if isinstance(result, dict):
            missing = [n for n in names if n not in result]
            if missing:
                raise BackendError(f"module returned keys {sorted(map(str, result))}, "
                                   f"lacking {missing}")
            pairs = [(n, result[n]) for n in names]
        else:
            values = list(result) if isinstance(result, (tuple, list)) else [result]
            if not names:
                names = [f"output_{i}" for i in range(len(values))]
            if len(values) != len(names):
                raise BackendError(f"module returned {len(values)} output(s), the signature has "
                                   f"{len(names)} ({names})",
                                   hint="the artifact does not match this bundle's signature")
            pairs = list(zip(names, values, strict=True))
        out: dict[str, np.ndarray] = {}
        for name, value in pairs:
            if not isinstance(value, self._torch.Tensor):
                raise BackendError(f"output {name!r} is a {type(value).__name__}, not a tensor")
            value = value.detach()
            if value.is_floating_point() and value.dtype != self._torch.float32 \
                    and value.dtype != self._torch.float64:
                value = value.float()  # fp16/bf16 back to float32 (numpy has no bfloat16)
            out[name] = value.cpu().numpy()
        return out

    def close_impl(self) -> None:
        # A run in flight keeps its own reference to the module and completes.
        self._module = None








def _half_dtype(torch: Any, module: Any) -> Any:
    """The module's own reduced float dtype (float16 or bfloat16); float16 when it has none."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point() and tensor.dtype in (torch.float16, torch.bfloat16):
            return tensor.dtype
    return torch.float16


def _forward_arg_names(module: Any) -> list[str]:
    """Input names from forward's schema, for use without a bundle signature."""
    try:
        return [a.name for a in module.forward.schema.arguments[1:]]
    except Exception:
        return []


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
