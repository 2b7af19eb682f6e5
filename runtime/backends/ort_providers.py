"""Execution-provider options for onnxruntime: sane defaults the target's options override.

TensorRT builds an engine per (model, onnxruntime, TensorRT, GPU); its engine and timing caches
live in a folder keyed by all four, so a cache never goes stale when one of them changes.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"

CUDA_DEFAULTS: dict[str, Any] = {
    # grow the arena by what is asked, not by doubling: edge GPUs share memory with the CPU
    "arena_extend_strategy": "kSameAsRequested",
    # exhaustive cuDNN search costs seconds at start-up for little gain on small models
    "cudnn_conv_algo_search": "HEURISTIC",
}


def cache_root() -> Path:
    """$EDGEPACK_CACHE_DIR, else $XDG_CACHE_HOME/edgepack, else ~/.cache/edgepack."""
    if os.environ.get("EDGEPACK_CACHE_DIR"):
        return Path(os.environ["EDGEPACK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepack"


def tensorrt_version() -> str:
    """TensorRT's version from its Python package, else the major from libnvinfer's soname."""
    try:
        import tensorrt  # lazy: only on machines that have it
        return str(tensorrt.__version__)
    except Exception:
        import ctypes.util  # only with TensorRT: ctypes is not on the CPU cold-start path
        lib = ctypes.util.find_library("nvinfer") or ""
        match = re.search(r"\.so\.(\d+)", lib)
        return f"lib{match.group(1)}" if match else "unknown"


def gpu_name() -> str:
    """The GPU's name (nvidia-smi), or the Jetson module (device tree), or 'unknown'."""
    import shutil
    import subprocess  # only when a GPU name is asked for: not on the CPU cold-start path
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout.strip().splitlines()
            if out:
                return out[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        return "unknown"


def tensorrt_cache_dir(model_path: Path, ort_version: str, trt_version: str, gpu: str,
                       root: Path | None = None) -> Path:
    """The engine/timing cache folder for this model on this software and GPU."""
    import hashlib  # only with TensorRT, for a whole model: OpenSSL's speed pays here
    h = hashlib.sha256()
    with model_path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    key = hashlib.sha256(f"{h.hexdigest()}|ort {ort_version}|trt {trt_version}|gpu {gpu}".encode()).hexdigest()
    return (root or cache_root()) / "tensorrt" / key[:24]


def options_for_providers(providers: list[str], given: list[Mapping[str, Any]], *, model_path: Path,
                     precision: str | None, ort_version: str) -> list[dict[str, Any]]:
    """Options per provider: our defaults first, then whatever the target wrote on top."""
    out: list[dict[str, Any]] = []
    for provider, user in zip(providers, given, strict=False):
        opts: dict[str, Any] = {}
        if provider == TRT:
            cache = tensorrt_cache_dir(model_path, ort_version, tensorrt_version(), gpu_name())
            opts = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache),
                    "trt_fp16_enable": precision == "fp16"}
        elif provider == CUDA:
            opts = dict(CUDA_DEFAULTS)
        opts.update(user)
        out.append(opts)
    return out
