"""Which device a tuned choice belongs to: the facts a latency ranking depends on.

Read only when a tuned file exists (``tuned.lookup_tuned``) or while tuning: it reads
``/proc/cpuinfo`` and the installed backends' versions, and (``providers``) imports them.
"""
from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..bundle import BUNDLE_FILE, Bundle, sha256_file
from ..device.facts import REAL_PATHS, DevicePaths, detect_emulation, read_cpuinfo
from ..device.inventory import backend_packages, backend_providers


def bundle_json_sha256(bundle: Bundle) -> str:
    return sha256_file(bundle.root / BUNDLE_FILE)


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def device_fingerprint(backends: Iterable[str], *, paths: DevicePaths = REAL_PATHS,
                       providers: bool = True,
                       env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a latency ranking depends on: arch, CPU, usable cores, Python, numpy, the
    backends' package versions and (``providers``) what each backend can run on.

    Without ``providers`` nothing is imported, so a device that differs anyway is told so cheaply.
    """
    cpu = read_cpuinfo(paths.cpuinfo)
    names = sorted(set(backends))
    fp: dict[str, Any] = {
        "arch": platform.machine(), "cpu": cpu.model, "cpus": _usable_cpus(),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}", "numpy": np.__version__,
        "emulated": detect_emulation(env, None, paths.binfmt_misc, cpu)[0],
        "packages": {name: backend_packages(name) for name in names}}
    if providers:
        fp["providers"] = {name: providers_of(name) for name in names}
    return fp


def providers_of(name: str) -> list[str]:
    try:
        return backend_providers(name)[1]
    except Exception as exc:  # not importable: that is a fact about the device too
        return [f"unavailable: {type(exc).__name__}"]


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Readable differences between two fingerprints ("python: 3.10 -> 3.11")."""
    out = []
    for key in sorted(set(recorded) | set(now)):
        a, b = recorded.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out
