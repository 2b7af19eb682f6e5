"""``python -m runtime doctor``: what this device is, what is installed, and whether a bundle fits.

Every reader takes the file it reads as a parameter (default: the real path), so tests feed a
Raspberry Pi's or a Jetson's /proc and /etc files from a temp dir. Frameworks are imported only
when a backend is inspected, and never when a known-bad rule says importing it crashes.
"""
from __future__ import annotations

import ctypes.util
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .bundle import Bundle
from .errors import IntegrityError
from .select import SKIPPED, Decision, walk

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

# Distributions that provide each backend's framework (pip names), in the order tried.
BACKEND_DISTS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino",
                    "onnxruntime-directml", "onnxruntime-qnn"),
    "tflite": ("ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu"),
    "torchscript": ("torch",),
}

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


# --------------------------------------------------------------------------- versions

def installed_version(dist: str) -> str | None:
    """A distribution's installed version via importlib.metadata (no import), or None."""
    for name in dict.fromkeys((dist, dist.replace("-", "_"), dist.replace("_", "-"))):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:  # a broken dist-info must not stop the report
            return None
    return None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """Approximate PEP 440 ordering: release numbers, pre-releases before the release."""
    public = version.split("+", 1)[0].strip().lower()
    m = re.match(r"v?(\d+(?:\.\d+)*)(.*)", public)
    if not m:
        return (), 0, public
    release = tuple(int(x) for x in m.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    rest = m.group(2).lstrip(".-_")
    rank = -1 if rest.startswith(("a", "b", "c", "rc", "pre", "preview", "dev")) else \
        (1 if rest else 0)  # .postN / other suffixes after the release
    return release, rank, rest


def _release(version: str) -> tuple[int, ...]:
    """The release numbers as written (trailing zeros kept, for prefix matches)."""
    m = re.match(r"v?(\d+(?:\.\d+)*)", version.split("+", 1)[0].strip().lower())
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def version_matches(installed: str, op: str, wanted: str) -> bool:
    """Whether ``installed`` satisfies ``op wanted`` (==, !=, >=, <=, >, <, ~=, ===, ==X.*)."""
    if op == "===":
        return installed == wanted
    if op in ("==", "!=") and wanted.endswith(".*"):
        prefix = _release(wanted[:-2])
        have = _release(installed) + (0,) * len(prefix)
        hit = have[:len(prefix)] == prefix
        return hit if op == "==" else not hit
    if op in ("==", "!=") and "+" not in wanted:
        installed = installed.split("+", 1)[0]  # ==2.13.0 matches 2.13.0+cpu (PEP 440)
    have, want = version_key(installed), version_key(wanted)
    if op == "==":
        return have == want
    if op == "!=":
        return have != want
    if op == ">=":
        return have >= want
    if op == "<=":
        return have <= want
    if op == ">":
        return have > want
    if op == "<":
        return have < want
    if op == "~=":
        prefix = _release(wanted)[:-1] or _release(wanted)
        mine = _release(installed) + (0,) * len(prefix)
        return have >= want and mine[:len(prefix)] == prefix
    return False


_SPEC_RE = re.compile(r"(===|==|!=|~=|>=|<=|>|<)\s*([^\s,;]+)")
_MARKER_RE = re.compile(r"""^\s*(\w+)\s*(==|!=|<=|>=|<|>|in|not in)\s*["']([^"']*)["']\s*$""")


def _marker_env(machine: str) -> dict[str, str]:
    return {"platform_machine": machine, "python_version": "%d.%d" % sys.version_info[:2],
            "python_full_version": platform.python_version(), "sys_platform": sys.platform,
            "platform_system": platform.system(), "os_name": os.name,
            "implementation_name": sys.implementation.name}


def _marker_applies(marker: str, machine: str) -> bool | None:
    """Simple environment markers (clauses joined by and/or, no parentheses); None if unsure."""
    env = _marker_env(machine)
    if "(" in marker:
        return None
    result: bool | None = None
    for group in re.split(r"\s+or\s+", marker):
        value = True
        for clause in re.split(r"\s+and\s+", group):
            m = _MARKER_RE.match(clause)
            if not m or m.group(1) not in env:
                return None
            have, op, want = env[m.group(1)], m.group(2), m.group(3)
            if m.group(1).startswith("python"):
                ok = version_matches(have, op, want) if op not in ("in", "not in") else \
                    (have in want) == (op == "in")
            elif op in ("in", "not in"):
                ok = (have in want) == (op == "in")
            elif op in ("==", "!="):
                ok = (have == want) == (op == "==")
            else:
                return None
            value = value and ok
        result = bool(result) or value
    return result


@dataclass
class Requirement:
    """One requirements.txt line checked against this environment."""

    line: str
    name: str
    specs: list[tuple[str, str]]
    installed: str | None
    ok: bool
    fix: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["specs"] = ["".join(s) for s in self.specs]
        return doc


def check_requirements(text: str, *, machine: str | None = None,
                       version_of: Callable[[str], str | None] = installed_version
                       ) -> list[Requirement]:
    """Every requirement line (comments and pip options skipped) against installed versions,
    with the ``pip install`` that fixes a missing or mismatched pin."""
    machine = machine or platform.machine()
    out: list[Requirement] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        body, _, marker = line.partition(";")
        if marker.strip():
            applies = _marker_applies(marker.strip(), machine)
            if applies is False:
                continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)", body.strip())
        if not m:
            out.append(Requirement(line, body.strip(), [], None, False,
                                   note="cannot parse this line"))
            continue
        name, rest = m.group(1), m.group(3).strip()
        specs = [] if rest.startswith("@") else _SPEC_RE.findall(rest)
        have = version_of(name)
        target = body.strip() if specs and not rest.startswith("@") else name
        fix_cmd = "pip install " + shlex.quote(re.sub(r"\s+", "", target) if specs else name)
        if have is None:
            out.append(Requirement(line, name, specs, None, False, fix=fix_cmd,
                                   note="not installed"))
            continue
        bad = [op + v for op, v in specs if not version_matches(have, op, v)]
        if bad:
            out.append(Requirement(line, name, specs, have, False, fix=fix_cmd,
                                   note=f"installed {have} does not satisfy {', '.join(bad)}"))
        else:
            out.append(Requirement(line, name, specs, have, True))
    return out


# --------------------------------------------------------------------------- known-bad table

@dataclass(frozen=True)
class KnownBad:
    """A combination that is known not to work, with why and what to do instead."""

    id: str
    package: str  # pip distribution the rule is about
    versions: tuple[tuple[str, str], ...]  # (op, version) all of which must hold
    reason: str
    fix: str
    source: str
    arch: str | None = None  # platform.machine() the rule applies to
    cpu_lacks: str | None = None  # ARM Features flag whose absence triggers the rule
    with_package: tuple[str, tuple[tuple[str, str], ...]] | None = None  # a second dist + specs
    crashes_import: str | None = None  # backend whose import would kill the process


KNOWN_BAD: tuple[KnownBad, ...] = (
    KnownBad(
        id="ort-1.21.0-armv8.0-sigill", package="onnxruntime", versions=(("==", "1.21.0"),),
        arch="aarch64", cpu_lacks="asimddp",
        reason='onnxruntime 1.21.0 aarch64 wheels crash with "Illegal instruction" on import on '
               "CPUs without dot-product instructions (Raspberry Pi 4's Cortex-A72, Cortex-A53)",
        fix="pip install onnxruntime==1.22.1 (or 1.20.1)",
        source="https://github.com/microsoft/onnxruntime/issues/23957",
        crashes_import="onnxruntime"),
    KnownBad(
        id="torch-2.4.0-no-lse-sigill", package="torch", versions=(("==", "2.4.0"),),
        arch="aarch64", cpu_lacks="atomics",
        reason='torch 2.4.0 aarch64 wheels crash with "Illegal instruction" on import on ARMv8.0 '
               "CPUs without LSE atomics (Raspberry Pi 4's Cortex-A72): its bundled Arm Compute "
               "Library uses ldaddal",
        fix="pip install torch==2.3.1 (the last release before the regression)",
        source="https://github.com/pytorch/pytorch/issues/132032",
        crashes_import="torchscript"),
    KnownBad(
        id="ort-lt-1.19-numpy2", package="onnxruntime", versions=(("<", "1.19.0"),),
        with_package=("numpy", ((">=", "2.0.0"),)),
        reason="onnxruntime before 1.19.0 was compiled against NumPy 1.x and fails to import "
               'with NumPy 2 ("A module that was compiled using NumPy 1.x cannot be run in '
               'NumPy 2.x")',
        fix="pip install 'numpy<2' (or onnxruntime>=1.19.0)",
        source="https://github.com/microsoft/onnxruntime/issues/21063"),
    KnownBad(
        id="tflite-runtime-numpy2", package="tflite-runtime", versions=(),
        with_package=("numpy", ((">=", "2.0.0"),)),
        reason="tflite-runtime (last release 2.14.0, 2023) is compiled against NumPy 1.x and "
               "fails to import with NumPy 2",
        fix="pip install ai-edge-litert (its successor), or pip install 'numpy<2'",
        source="https://pypi.org/project/tflite-runtime/"),
    KnownBad(
        id="ort-cpu-and-gpu-both", package="onnxruntime", versions=(),
        with_package=("onnxruntime-gpu", ()),
        reason="onnxruntime and onnxruntime-gpu side by side (installed, or one installed and the "
               "other pinned by requirements.txt): they share the onnxruntime module, whichever "
               "was installed last wins, often leaving only the CPU provider",
        fix="pip uninstall -y onnxruntime onnxruntime-gpu, then install only the one "
            "requirements.txt names",
        source="https://onnxruntime.ai/docs/install/"),
)


def _specs_hold(version: str | None, specs: Iterable[tuple[str, str]]) -> bool:
    return version is not None and all(version_matches(version, op, v) for op, v in specs)


def check_known_bad(*, machine: str, cpu: CpuInfo,
                    versions: Mapping[str, str | None],
                    rules: Sequence[KnownBad] = KNOWN_BAD) -> list[dict[str, Any]]:
    """Rules that fire for these installed (or required) versions on this CPU and arch.

    ``versions`` maps normalized pip names to versions; the caller merges what is installed
    with what a bundle pins, so a bad pin is caught before it is installed.
    """
    norm = {_normalize(k): v for k, v in versions.items()}
    hits: list[dict[str, Any]] = []
    for rule in rules:
        have = norm.get(_normalize(rule.package))
        if not _specs_hold(have, rule.versions):
            continue
        if rule.arch is not None and _canon_arch(machine) != rule.arch:
            continue
        matched = f"{rule.package} {have}"
        if rule.cpu_lacks is not None:
            present = cpu.has_feature(rule.cpu_lacks)
            if present is not False:
                continue
            matched += f" on {cpu.model or 'this CPU'} (no {rule.cpu_lacks})"
        if rule.with_package is not None:
            other, specs = rule.with_package
            other_version = norm.get(_normalize(other))
            if not _specs_hold(other_version, specs):
                continue
            matched += f" with {other} {other_version}"
        hits.append({"id": rule.id, "matched": matched, "reason": rule.reason, "fix": rule.fix,
                     "source": rule.source, "crashes_import": rule.crashes_import})
    return hits


def known_bad_table(rules: Sequence[KnownBad] = KNOWN_BAD) -> list[dict[str, Any]]:
    """The whole table, for --json consumers and the docs."""
    return [{"id": r.id, "package": r.package,
             "versions": ",".join(op + v for op, v in r.versions) or "any",
             "arch": r.arch, "cpu_lacks": r.cpu_lacks,
             "with": (r.with_package[0] + ",".join(op + v for op, v in r.with_package[1]))
             if r.with_package else None, "reason": r.reason, "fix": r.fix, "source": r.source}
            for r in rules]


def _canon_arch(machine: str | None) -> str:
    m = (machine or "").lower()
    return {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}.get(m, m)


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


# --------------------------------------------------------------------------- backends

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

        extra = {"device": ort.get_device()} if hasattr(ort, "get_device") else {}
        return getattr(ort, "__version__", None), list(ort.get_available_providers()), extra
    if name == "tflite":
        from .backends.tflite import XNNPACK, _import_interpreter

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
    from .backends import get_backend

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


# --------------------------------------------------------------------------- the report

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


def _bundle_section(bundle: Bundle, *, machine: str, cpu: CpuInfo,
                    version_of: Callable[[str], str | None],
                    skip_backends: Mapping[str, str], problems: list[str],
                    fixes: list[str]) -> dict[str, Any]:
    """Target match, requirements, and which candidates load here."""
    target = bundle.target
    checks: list[dict[str, Any]] = []
    want_arch = target.get("arch")
    if want_arch:
        ok = _canon_arch(str(want_arch)) == _canon_arch(machine)
        checks.append({"check": "arch", "want": want_arch, "have": machine, "ok": ok,
                       "fix": None if ok else f"use a bundle built for {machine} (this one is "
                                              f"for {want_arch})"})
    want_py = target.get("python")
    if want_py:
        have_py = "%d.%d" % sys.version_info[:2]
        ok = str(want_py) == have_py
        checks.append({"check": "python", "want": str(want_py), "have": have_py, "ok": ok,
                       "fix": None if ok else f"run the bundle with Python {want_py} (python"
                                              f"{want_py} -m venv ...); its pins are for it"})
    for c in checks:
        if not c["ok"]:
            problems.append(f"{c['check']}: the bundle's target wants {c['want']}, this device "
                            f"has {c['have']}")
            fixes.append(c["fix"])
    req_path = bundle.root / "requirements.txt"
    reqs: list[Requirement] = []
    if req_path.is_file():
        reqs = check_requirements(req_path.read_text(encoding="utf-8", errors="replace"),
                                  machine=machine, version_of=version_of)
        for r in reqs:
            if not r.ok:
                problems.append(f"requirement {r.line}: {r.note}")
                if r.fix:
                    fixes.append(r.fix)
    integrity: str | None = None
    try:
        bundle.verify()
    except IntegrityError as exc:
        integrity = str(exc)
        problems.append(f"bundle files: {exc.message}")
        fixes.append(exc.hint or "re-copy the bundle")
    decisions: list[Decision] = []
    selected: str | None = None
    if integrity is None:  # never load artifacts from a bundle that fails its hash check
        crashing = [c for c in bundle.candidates if c.backend in skip_backends]
        safe = dataclasses.replace(bundle, candidates=tuple(
            c for c in bundle.candidates if c.backend not in skip_backends))
        found: dict[str, Decision] = {}
        if safe.candidates:
            chosen, decs = walk(safe, probe_all=True)
            if chosen is not None:
                selected = chosen[1].id
                chosen[0].close()
            found = {d.candidate: d for d in decs}
        for c in crashing:
            found[c.id] = Decision(c.id, SKIPPED, f"not tried: {skip_backends[c.backend]}",
                                   c.backend, c.precision, list(c.providers))
        decisions = [found[c.id] for c in bundle.candidates]
        if selected is None:
            problems.append("no candidate of the bundle loads on this device")
    from .tune import lookup_tuned  # here: tune imports this module

    tuning = lookup_tuned(bundle).to_dict() if integrity is None else None
    return {"path": str(bundle.archive or bundle.root), "name": bundle.name,
            "target": {k: target.get(k) for k in ("name", "arch", "python", "description")},
            "checks": checks, "requirements": [r.to_dict() for r in reqs],
            "integrity": integrity or "ok", "candidates": [d.to_dict() for d in decisions],
            "selected": selected, "tuning": tuning}


def report(bundle: Bundle | None = None, *, paths: DevicePaths = REAL_PATHS,
           machine: str | None = None, deep: bool = False,
           versions: Mapping[str, str | None] | None = None,
           env: Mapping[str, str] | None = None, query_gpus: bool = True) -> dict[str, Any]:
    """The whole doctor report as one JSON-ready document; ``ok`` false when there is
    something to fix. ``versions`` overrides installed versions (tests fake a Pi's packages)."""
    from .backends import backend_names

    facts = device_facts(paths, machine=machine, env=env)
    cpu: CpuInfo = facts.pop("_cpu")
    machine = facts["arch"]

    def version_of(dist: str) -> str | None:
        if versions is not None:
            return next((v for k, v in versions.items() if _normalize(k) == _normalize(dist)),
                        None)
        return installed_version(dist)

    names = backend_names()
    watched = {d for dists in BACKEND_DISTS.values() for d in dists}
    watched |= {r.package for r in KNOWN_BAD}
    watched |= {r.with_package[0] for r in KNOWN_BAD if r.with_package}
    watched.add("numpy")
    have = {d: version_of(d) for d in sorted(watched)}
    problems: list[str] = []
    fixes: list[str] = []
    hits = check_known_bad(machine=machine, cpu=cpu, versions=have)
    # A bundle's pins count too: a pin that would crash here is caught before pip installs it.
    pinned_hits: list[dict[str, Any]] = []
    if bundle is not None and (bundle.root / "requirements.txt").is_file():
        pins = {r.name: v for r in check_requirements(
            (bundle.root / "requirements.txt").read_text(encoding="utf-8", errors="replace"),
            machine=machine, version_of=lambda _n: None)
            for op, v in r.specs if op in ("==", "===")}
        merged = {**have, **pins}
        seen = {h["id"] for h in hits}
        pinned_hits = [dict(h, pinned=True) for h in check_known_bad(
            machine=machine, cpu=cpu, versions=merged) if h["id"] not in seen]
    for h in hits + pinned_hits:
        where = "requirements.txt pins " if h.get("pinned") else ""
        problems.append(f"known bad: {where}{h['matched']}: {h['reason']}")
        fixes.append(h["fix"])
    skip = {h["crashes_import"]: f"known bad ({h['id']}): importing it would crash"
            for h in hits if h.get("crashes_import")}
    inspect = set(names) if deep else {"onnxruntime", "tflite"}
    if bundle is not None:
        inspect |= {c.backend for c in bundle.candidates}
    doc: dict[str, Any] = {
        "ok": True, "device": facts,
        "accelerators": {"cuda": cuda_report(version_path=paths.cuda_version,
                                             query_gpus=query_gpus),
                         "tensorrt": tensorrt_report()},
        "backends": inspect_backends(names, inspect=inspect, skip=skip, version_of=version_of),
        "packages": {k: v for k, v in have.items() if v is not None},
        "known_bad": hits + pinned_hits, "bundle": None}
    if bundle is not None:
        doc["bundle"] = _bundle_section(bundle, machine=machine, cpu=cpu, version_of=version_of,
                                        skip_backends=skip, problems=problems, fixes=fixes)
    doc["problems"] = problems
    doc["fixes"] = list(dict.fromkeys(f for f in fixes if f))
    doc["ok"] = not problems
    return doc


# --------------------------------------------------------------------------- human output

def _rows(pairs: Sequence[tuple[str, Any]], indent: str = "  ") -> list[str]:
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {'-' if v is None or v == '' else v}" for k, v in pairs]


def _gib(n: int | None) -> str | None:
    return None if n is None else f"{n / (1 << 30):.1f} GiB"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    return [(indent + "  ".join([str(r[i]).ljust(widths[i]) for i in range(len(widths))]
                                + [str(r[-1])])).rstrip() for r in [header, *rows]]


def format_report(doc: Mapping[str, Any]) -> str:
    """Sections with aligned rows, for a person at the device's terminal."""
    dev, cpu = doc["device"], doc["device"]["cpu"]
    lines = ["device:"]
    mem = dev["memory"]
    pairs: list[tuple[str, Any]] = [
        ("arch", dev["arch"]), ("cpu", cpu["model"]), ("cores", cpu["cores"]),
        ("memory", (f"{_gib(mem['total_bytes'])} total, {_gib(mem['available_bytes'])} available"
                    if mem["total_bytes"] else None)),
        ("os", dev["os"]), ("kernel", dev["kernel"]), ("python", dev["python"])]
    if dev["raspberry_pi"]:
        pairs.append(("raspberry pi", dev["raspberry_pi"]))
    elif dev["board"]:
        pairs.append(("board", dev["board"]))
    if dev["jetson"]:
        j = dev["jetson"]
        pairs.append(("jetson", f"{j.get('module') or 'Jetson'}, L4T {j.get('l4t') or '?'}, "
                                f"JetPack {j.get('jetpack') or '?'}"))
    if cpu.get("dotprod") is not None:
        pairs.append(("arm features", f"dotprod {'yes' if cpu['dotprod'] else 'no'}, "
                                      f"atomics {'yes' if cpu['atomics'] else 'no'}"))
    pairs.append(("emulated", "YES: " + dev["emulation"] if dev["emulated"] else "no"))
    lines += _rows(pairs)
    cuda, trt = doc["accelerators"]["cuda"], doc["accelerators"]["tensorrt"]
    lines.append("accelerators:")
    cuda_text = "no" if not cuda["present"] else ", ".join(
        x for x in (f"nvidia-smi {cuda['nvidia_smi']}" if cuda["nvidia_smi"] else "",
                    f"libcudart {cuda['libcudart']}" if cuda["libcudart"] else "",
                    f"toolkit {cuda['toolkit']}" if cuda["toolkit"] else "") if x)
    acc = [("cuda", cuda_text)] + [("gpu", g) for g in cuda["gpus"]]
    acc.append(("tensorrt", "no" if not trt["present"] else ", ".join(
        x for x in (f"libnvinfer {trt['libnvinfer']}" if trt["libnvinfer"] else "",
                    f"python {trt['python']}" if trt["python"] else "") if x)))
    lines += _rows(acc)
    lines.append("backends:")
    rows = []
    for b in doc["backends"]:
        pkgs = ", ".join(f"{k} {v}" for k, v in b["packages"].items()) or "-"
        if b["inspected"] and b["importable"]:
            what = ", ".join(b["providers"]) or "-"
            if b.get("cuda_devices"):
                what += f" ({', '.join(b['cuda_devices'])})"
        else:
            what = b["note"] or "-"
        rows.append((b["name"], pkgs, what))
    lines += _table(("backend", "installed", "providers / devices"), rows)
    if doc["known_bad"]:
        lines.append("known bad combinations found:")
        for h in doc["known_bad"]:
            lines.append(f"  {h['id']}: {h['matched']}")
            lines.append(f"    {h['reason']}")
            lines.append(f"    fix: {h['fix']}  ({h['source']})")
    b = doc["bundle"]
    if b is not None:
        lines.append(f"bundle: {b['name']} ({b['path']}), target {b['target'].get('name') or '-'}")
        for c in b["checks"]:
            lines.append(f"  {c['check']:<8} want {c['want']}, have {c['have']}: "
                         f"{'ok' if c['ok'] else 'MISMATCH'}")
        if b["requirements"]:
            lines.append("  requirements.txt:")
            lines += _table(("requirement", "installed", "status"), [
                (r["line"], r["installed"] or "-", "ok" if r["ok"] else r["note"] or "problem")
                for r in b["requirements"]], indent="    ")
        lines.append(f"  files: {'ok' if b['integrity'] == 'ok' else 'DO NOT MATCH bundle.json'}")
        if b["candidates"]:
            lines.append("  candidates here:")
            lines += _table(("candidate", "status", "reason"), [
                (d["candidate"], d["status"] + (" (degraded)" if d["degraded"] else ""),
                 d["reason"]) for d in b["candidates"]], indent="    ")
        if b["tuning"]:
            lines.append(f"  tuning: {b['tuning']['text']}")
    if doc["problems"]:
        lines.append("problems:")
        lines += [f"  - {p}" for p in doc["problems"]]
        lines.append("fixes:")
        lines += [f"  {f}" for f in doc["fixes"]]
    else:
        lines.append("no problems found" + (": this device matches the bundle"
                                             if b is not None else ""))
    return "\n".join(lines)
