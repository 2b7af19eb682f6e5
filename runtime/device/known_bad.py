"""The table of known-bad combinations (a package version on an arch or CPU, or beside another
package) and the check that finds which of them hold on this device.

Each rule says why it fails, what to do instead, and where that is documented; a rule with
``crashes_import`` names the backend whose import would kill the process, so doctor never
imports it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .facts import CpuInfo, canon_arch
from .requirements import normalize_name, version_matches

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
    norm = {normalize_name(k): v for k, v in versions.items()}
    hits: list[dict[str, Any]] = []
    for rule in rules:
        have = norm.get(normalize_name(rule.package))
        if not _specs_hold(have, rule.versions):
            continue
        if rule.arch is not None and canon_arch(machine) != rule.arch:
            continue
        matched = f"{rule.package} {have}"
        if rule.cpu_lacks is not None:
            present = cpu.has_feature(rule.cpu_lacks)
            if present is not False:
                continue
            matched += f" on {cpu.model or 'this CPU'} (no {rule.cpu_lacks})"
        if rule.with_package is not None:
            other, specs = rule.with_package
            other_version = norm.get(normalize_name(other))
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
