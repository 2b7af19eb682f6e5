"""What this device is, from files and the platform module only: CPU, memory, OS, board
(Raspberry Pi, Jetson with its L4T/JetPack release), and whether Python runs under emulation.

Every reader takes the file it reads as a parameter (default: the real path, see ``DevicePaths``),
so tests feed a Raspberry Pi's or a Jetson's /proc and /etc files from a temp dir. Nothing here
imports a framework, runs a program or loads a library.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- where things live


@dataclass(frozen=True)
class DevicePaths:
    """The files doctor reads; tests point them at fakes."""

    cpuinfo: str = "/proc/cpuinfo"
    meminfo: str = "/proc/meminfo"
    os_release: str = "/etc/os-release"
    device_tree_model: str = "/proc/device-tree/model"
    nv_tegra_release: str = "/etc/nv_tegra_release"
    cuda_version: str = "/usr/local/cuda/version.json"
    binfmt_misc: str = "/proc/sys/fs/binfmt_misc"


REAL_PATHS = DevicePaths()

# ARM "CPU implementer" 0x41 (Arm Ltd) part numbers, as the Linux kernel and lscpu name them.
ARM_PARTS: dict[str, str] = {
    "0xd02": "Cortex-A34", "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4f": "Neoverse-V2",
}
# NVIDIA's own cores (implementer 0x4e): Denver in TX2, Carmel in Xavier.
NVIDIA_PARTS: dict[str, str] = {"0x003": "Denver 2", "0x004": "Carmel"}
# ARMv8.0 cores: no dot-product (asimddp) and no LSE atomics; used when cpuinfo has no Features.
ARMV80_PARTS = frozenset({"Cortex-A34", "Cortex-A35", "Cortex-A53", "Cortex-A57", "Cortex-A72",
                          "Cortex-A73", "Denver 2"})

# L4T release -> JetPack release (NVIDIA's published pairs).
JETPACK: dict[str, str] = {
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6", "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1",
    "35.4.1": "5.1.2", "35.5.0": "5.1.3", "35.6.0": "5.1.4", "36.2.0": "6.0 DP", "36.3.0": "6.0",
    "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
}
_JETPACK_MAJOR = {"32": "4.x", "34": "5.0 DP", "35": "5.x", "36": "6.x", "38": "7.x"}


# --------------------------------------------------------------------------- file readers

def _read_text(path: str) -> str | None:
    """A small text file, or None when absent/unreadable (doctor never fails on a missing file)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None


@dataclass
class CpuInfo:
    """What /proc/cpuinfo says, reduced to what decisions need."""

    model: str | None = None
    cores: int | None = None
    hardware: str | None = None
    board_model: str | None = None  # the Pi kernel's "Model" line
    parts: list[str] = field(default_factory=list)  # ARM core names in order of appearance
    features: list[str] = field(default_factory=list)  # ARM Features / x86 flags (first core)
    x86_fields: bool = False  # vendor_id/flags lines: an x86 kernel wrote this file

    def has_feature(self, name: str) -> bool | None:
        """True/False from the Features line; for ARM cores without one, from the core table."""
        if self.features:
            return name in self.features
        if self.parts:
            return not any(p in ARMV80_PARTS for p in self.parts)
        return None

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc.pop("features")
        doc.pop("x86_fields")
        doc["dotprod"] = self.has_feature("asimddp") if self.parts else None
        doc["atomics"] = self.has_feature("atomics") if self.parts else None
        return doc


def read_cpuinfo(path: str = REAL_PATHS.cpuinfo) -> CpuInfo:
    """Parse /proc/cpuinfo: x86 "model name", or ARM "CPU implementer/part" mapped to core names."""
    info = CpuInfo()
    text = _read_text(path)
    if text is None:
        info.cores = os.cpu_count()
        return info
    processors = 0
    implementer = ""
    seen_parts: list[str] = []
    model_name: str | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            processors += 1
        elif key == "model name" and model_name is None:
            model_name = value
        elif key == "hardware":
            info.hardware = value
        elif key == "model" and not value.isdigit():  # x86 "model : 2" is a number
            info.board_model = value
        elif key == "cpu implementer":
            implementer = value.lower()
        elif key == "cpu part":
            part = value.lower()
            table = NVIDIA_PARTS if implementer == "0x4e" else ARM_PARTS
            name = table.get(part, f"ARM part {part}" + (f" (implementer {implementer})"
                                                         if implementer not in ("", "0x41") else ""))
            if name not in seen_parts:
                seen_parts.append(name)
        elif key in ("features", "flags") and not info.features:
            info.features = value.split()
            info.x86_fields = info.x86_fields or key == "flags"
        elif key == "vendor_id":
            info.x86_fields = True
    info.parts = seen_parts
    info.cores = processors or os.cpu_count()
    generic = model_name is None or model_name.lower().startswith("armv")
    if seen_parts and generic:
        info.model = " + ".join(seen_parts)
    else:
        info.model = model_name or info.hardware or info.board_model
    return info


def read_meminfo(path: str = REAL_PATHS.meminfo) -> dict[str, int | None]:
    """MemTotal and MemAvailable in bytes."""
    out: dict[str, int | None] = {"total_bytes": None, "available_bytes": None}
    for line in (_read_text(path) or "").splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if not parts or not parts[0].isdigit():
            continue
        scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
        if key == "MemTotal":
            out["total_bytes"] = int(parts[0]) * scale
        elif key == "MemAvailable":
            out["available_bytes"] = int(parts[0]) * scale
    return out


def read_os_release(path: str = REAL_PATHS.os_release) -> str | None:
    """PRETTY_NAME from os-release (NAME VERSION_ID when it has none)."""
    values: dict[str, str] = {}
    for line in (_read_text(path) or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            try:
                parsed = shlex.split(value)
            except ValueError:
                parsed = [value]
            values[key.strip()] = parsed[0] if parsed else ""
    if values.get("PRETTY_NAME"):
        return values["PRETTY_NAME"]
    name = " ".join(v for v in (values.get("NAME"), values.get("VERSION_ID")) if v)
    return name or None


def read_device_tree_model(path: str = REAL_PATHS.device_tree_model) -> str | None:
    """The board name the firmware reports (NUL-terminated in the device tree)."""
    text = _read_text(path)
    if text is None:
        return None
    return text.replace("\x00", "").strip() or None


def read_nv_tegra_release(path: str = REAL_PATHS.nv_tegra_release) -> dict[str, str] | None:
    """L4T release from "# R36 (release), REVISION: 4.0, ..." and the matching JetPack."""
    text = _read_text(path)
    if not text:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return {"l4t": "unknown", "jetpack": "unknown", "raw": text.strip().splitlines()[0]}
    major, revision = m.group(1), m.group(2)
    parts = revision.split(".") + ["0"]
    l4t = f"{major}.{parts[0]}.{parts[1]}"
    doc = {"l4t": l4t, "jetpack": JETPACK.get(l4t) or _JETPACK_MAJOR.get(major, "unknown")}
    board = re.search(r"BOARD:\s*([^,\s]+)", text)
    if board:
        doc["board"] = board.group(1)
    return doc


def read_cuda_version(path: str = REAL_PATHS.cuda_version) -> str | None:
    """The CUDA toolkit version from /usr/local/cuda/version.json (JetPack and desktop installs)."""
    text = _read_text(path)
    if not text:
        return None
    try:
        return str(json.loads(text)["cuda"]["version"])
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- emulation

_QEMU_NAMES = {"aarch64": "aarch64", "arm64": "aarch64", "armv7l": "arm", "x86_64": "x86_64",
               "riscv64": "riscv64"}


def detect_emulation(env: Mapping[str, str] | None = None, machine: str | None = None,
                     binfmt_dir: str = REAL_PATHS.binfmt_misc,
                     cpu: CpuInfo | None = None) -> tuple[bool, str]:
    """Whether this Python runs under qemu-user, so its timings say nothing about the device.

    EDGEPACK_EMULATED=1/0 decides outright; otherwise QEMU_* variables, a binfmt_misc qemu
    handler for this very architecture, or an x86 /proc/cpuinfo under an ARM Python.
    """
    env = os.environ if env is None else env
    machine = machine or platform.machine()
    flag = env.get("EDGEPACK_EMULATED", "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True, "EDGEPACK_EMULATED=1"
    if flag in ("0", "false", "no"):
        return False, "EDGEPACK_EMULATED=0"
    for var in ("QEMU_CPU", "QEMU_LD_PREFIX", "QEMU_GUEST_BASE"):
        if env.get(var):
            return True, f"{var} is set (qemu-user)"
    if cpu is not None and cpu.x86_fields and machine.lower() in ("aarch64", "arm64", "armv7l"):
        return True, f"/proc/cpuinfo describes an x86 CPU but Python runs as {machine}"
    qemu = _QEMU_NAMES.get(machine.lower())
    handler = Path(binfmt_dir) / f"qemu-{qemu}" if qemu else None
    if handler is not None:
        text = _read_text(str(handler))
        if text and text.splitlines()[0].strip() == "enabled":
            return True, (f"binfmt_misc has an enabled qemu-{qemu} handler for this architecture "
                          f"(set EDGEPACK_EMULATED=0 if this is real hardware)")
    return False, "no sign of emulation"


# --------------------------------------------------------------------------- arch names

def canon_arch(machine: str | None) -> str:
    """``platform.machine()`` spellings folded: arm64 -> aarch64, amd64/x64 -> x86_64."""
    m = (machine or "").lower()
    return {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}.get(m, m)


# --------------------------------------------------------------------------- device facts

def device_facts(paths: DevicePaths = REAL_PATHS, *, machine: str | None = None,
                 env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Arch, CPU, memory, OS, Python, board and emulation: files only, nothing imported."""
    machine = machine or platform.machine()
    cpu = read_cpuinfo(paths.cpuinfo)
    dt_model = read_device_tree_model(paths.device_tree_model)
    tegra = read_nv_tegra_release(paths.nv_tegra_release)
    board_model = dt_model or cpu.board_model
    pi = board_model if board_model and board_model.startswith("Raspberry Pi") else None
    jetson: dict[str, Any] | None = None
    if tegra is not None or (dt_model and "jetson" in dt_model.lower()):
        jetson = {"module": dt_model, **(tegra or {"l4t": None, "jetpack": None})}
    emulated, why = detect_emulation(env, machine, paths.binfmt_misc, cpu)
    return {"arch": machine, "cpu": cpu.to_dict(), "memory": read_meminfo(paths.meminfo),
            "os": read_os_release(paths.os_release), "kernel": platform.release(),
            "python": platform.python_version(), "implementation": sys.implementation.name,
            "board": board_model, "raspberry_pi": pi, "jetson": jetson,
            "emulated": emulated, "emulation": why, "_cpu": cpu}
