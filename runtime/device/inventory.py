"""What is installed to run models: each backend's pip distributions and, on request, its
framework's version and providers; CUDA and TensorRT found without importing any framework.

Frameworks are imported only in ``backend_providers``, i.e. when a backend is inspected, and
``inspect_backends`` never imports one that a known-bad rule says would crash.
"""
from __future__ import annotations

import ctypes.util
import importlib.util
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .facts import REAL_PATHS, read_cuda_version
from .requirements import installed_version

# --------------------------------------------------------------------------- backends

# Distributions that provide each backend's framework (pip names), in the order tried.
BACKEND_DISTS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino",
                    "onnxruntime-directml", "onnxruntime-qnn"),
    "tflite": ("ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu"),
    "torchscript": ("torch",),
}


def backend_packages(name: str,
                     version_of: Callable[[str], str | None] = installed_version
                     ) -> dict[str, str]:
    """Installed distributions that provide backend ``name`` (pip name -> version)."""
    found = {}
    for dist in BACKEND_DISTS.get(name, ()):
        v = version_of(dist)
        if v is not None:
            found[dist] = v
    return found


def backend_providers(name: str) -> tuple[str | None, list[str], dict[str, Any]]:
    """Import backend ``name``'s framework and list what it can run on.

    Returns (version, providers, extra facts). Raises what the import raises.
    """
    if name == "onnxruntime":
        import onnxruntime as ort  # lazy: doctor/tune inspect on request only

        facts: dict[str, Any] = {"device": ort.get_device()} if hasattr(ort, "get_device") else {}
        return getattr(ort, "__version__", None), list(ort.get_available_providers()), facts
    if name == "tflite":
        from ..backends.tflite import XNNPACK, _import_interpreter

        flavour = _import_interpreter()
        providers = [XNNPACK]
        for lib in ("edgetpu",):
            found = ctypes.util.find_library(lib)
            if found:
                providers.append(f"delegate:{found}")
        return f"{flavour.label} {flavour.version}", providers, {"flavour": flavour.label}
    if name == "torchscript":
        import torch  # lazy: only when the torchscript backend is inspected

        devices = ["cpu"]
        extra: dict[str, Any] = {"cuda_build": getattr(torch.version, "cuda", None),
                                 "quantized_engines": list(
                                     torch.backends.quantized.supported_engines)}
        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            devices += ["cuda"] + [f"cuda:{i}" for i in range(n)]
            extra["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(n)]
        return str(torch.__version__), devices, extra
    from ..backends import get_backend

    cls = get_backend(name)
    if cls is None:
        raise ImportError(f"no backend {name}")
    ok, why = cls.available()
    if not ok:
        raise ImportError(why)
    return why, [], {}


def inspect_backends(names: Sequence[str], *, inspect: Iterable[str],
                     skip: Mapping[str, str] | None = None,
                     version_of: Callable[[str], str | None] = installed_version
                     ) -> list[dict[str, Any]]:
    """Per backend: installed packages, and for those in ``inspect`` the framework's version and
    providers. Backends in ``skip`` (a known-bad crash) are never imported."""
    inspect = set(inspect)
    skip = dict(skip or {})
    rows = []
    for name in names:
        row: dict[str, Any] = {"name": name, "packages": backend_packages(name, version_of),
                               "inspected": False, "importable": None, "version": None,
                               "providers": [], "note": None}
        if name in skip:
            row["note"] = f"not imported: {skip[name]}"
        elif name in inspect:
            row["inspected"] = True
            try:
                version, providers, extra = backend_providers(name)
                row.update(importable=True, version=version, providers=providers, **extra)
            except Exception as exc:
                row.update(importable=False, note=" ".join(str(exc).split())[:300])
        elif row["packages"]:
            row["note"] = "not inspected (give a bundle that uses it, or --deep)"
        else:
            row["note"] = "not installed"
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- accelerators

def cuda_report(*, which: Callable[[str], str | None] = shutil.which,
                find_library: Callable[[str], str | None] = ctypes.util.find_library,
                version_path: str = REAL_PATHS.cuda_version,
                query_gpus: bool = True) -> dict[str, Any]:
    """CUDA presence without importing any framework: nvidia-smi, libcudart, the toolkit file."""
    smi = which("nvidia-smi")
    doc: dict[str, Any] = {"nvidia_smi": smi, "libcudart": find_library("cudart"),
                           "toolkit": read_cuda_version(version_path), "gpus": []}
    if smi and query_gpus:
        try:
            proc = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total",
                                   "--format=csv,noheader"], capture_output=True, text=True,
                                  timeout=15)
            if proc.returncode == 0:
                doc["gpus"] = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
            else:
                doc["error"] = (proc.stderr or proc.stdout).strip()[:200]
        except (OSError, subprocess.SubprocessError) as exc:
            doc["error"] = str(exc)[:200]
    doc["present"] = bool(smi or doc["libcudart"] or doc["toolkit"])
    return doc


def tensorrt_report(*, find_library: Callable[[str], str | None] = ctypes.util.find_library
                    ) -> dict[str, Any]:
    """TensorRT's library and Python package, found without importing them."""
    lib = find_library("nvinfer")
    try:
        spec = importlib.util.find_spec("tensorrt")
    except (ImportError, ValueError):
        spec = None
    version = installed_version("tensorrt") or installed_version("tensorrt-cu12") \
        or installed_version("tensorrt-libs")
    return {"libnvinfer": lib, "python": version or ("installed" if spec else None),
            "present": bool(lib or spec or version)}
