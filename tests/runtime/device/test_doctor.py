"""`runtime.doctor`: fake /proc and /etc files for a Pi 4 and a Jetson; this machine for real."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.bundle import BUNDLE_FILE, open_bundle
from runtime.device.doctor import (
    DevicePaths,
    check_known_bad,
    check_requirements,
    detect_emulation,
    format_report,
    known_bad_table,
    read_cpuinfo,
    read_meminfo,
    read_nv_tegra_release,
    read_os_release,
    report,
    version_matches,
)

REPO = Path(__file__).resolve().parents[3]

PI4_CORE = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
            "CPU part\t: 0xd08\nCPU revision\t: 3\n\n")
PI4_TAIL = "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
ORIN_CORE = ("processor\t: {i}\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 "
             "sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat ilrcpc "
             "flagm paca pacg\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\n"
             "CPU part\t: 0xd42\nCPU revision\t: 1\n\n")
MEMINFO = "MemTotal:        3884096 kB\nMemFree:          120000 kB\nMemAvailable:    2954236 kB\n"
BOOKWORM = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
            'VERSION_ID="12"\n')
TEGRA = ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
         "DATE: Fri Sep 13 04:36:44 UTC 2024\n# KERNEL_VARIANT: oot\n")


def fake_device(root: Path, *, cpuinfo: str, model: str | None = None,
                tegra: str | None = None, os_release: str = BOOKWORM) -> DevicePaths:
    """A DevicePaths whose files exist only as far as the faked board has them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpuinfo").write_text(cpuinfo)
    (root / "meminfo").write_text(MEMINFO)
    (root / "os-release").write_text(os_release)
    if model is not None:
        (root / "model").write_bytes(model.encode() + b"\x00")
    if tegra is not None:
        (root / "nv_tegra_release").write_text(tegra)
    (root / "binfmt_misc").mkdir()
    return DevicePaths(cpuinfo=str(root / "cpuinfo"), meminfo=str(root / "meminfo"),
                       os_release=str(root / "os-release"),
                       device_tree_model=str(root / "model"),
                       nv_tegra_release=str(root / "nv_tegra_release"),
                       cuda_version=str(root / "cuda-version.json"),
                       binfmt_misc=str(root / "binfmt_misc"))


def pi4(tmp_path: Path) -> DevicePaths:
    return fake_device(tmp_path / "pi4", cpuinfo="".join(PI4_CORE.format(i=i) for i in range(4))
                       + PI4_TAIL, model="Raspberry Pi 4 Model B Rev 1.4")


def orin(tmp_path: Path) -> DevicePaths:
    return fake_device(tmp_path / "orin", cpuinfo="".join(ORIN_CORE.format(i=i) for i in range(6)),
                       model="NVIDIA Jetson Orin Nano Developer Kit", tegra=TEGRA,
                       os_release='PRETTY_NAME="Ubuntu 22.04.4 LTS"\n')


def match_this_device(root: Path, kit: types.ModuleType) -> Path:
    """Point a kit bundle's target at this machine's arch and Python."""
    doc = json.loads((root / BUNDLE_FILE).read_text())
    doc["target"].update(arch=platform.machine(), python=f"{sys.version_info[0]}.{sys.version_info[1]}")
    kit.write_bundle_json(root, doc)
    return root


# --------------------------------------------------------------------------- readers

def test_pi4_cpuinfo_and_board(tmp_path: Path) -> None:
    paths = pi4(tmp_path)
    cpu = read_cpuinfo(paths.cpuinfo)
    assert cpu.model == "Cortex-A72" and cpu.cores == 4 and cpu.hardware == "BCM2835"
    assert cpu.has_feature("asimddp") is False and cpu.has_feature("atomics") is False
    assert read_meminfo(paths.meminfo) == {"total_bytes": 3884096 * 1024,
                                           "available_bytes": 2954236 * 1024}
    assert read_os_release(paths.os_release) == "Debian GNU/Linux 12 (bookworm)"
    doc = report(paths=paths, machine="aarch64", env={}, query_gpus=False,
                 versions={"onnxruntime": "1.22.1", "numpy": "2.2.6", "ai-edge-litert": "2.3.0"})
    dev = doc["device"]
    assert dev["raspberry_pi"] == "Raspberry Pi 4 Model B Rev 1.4" and dev["jetson"] is None
    assert dev["cpu"]["dotprod"] is False and dev["emulated"] is False
    assert doc["ok"] is True and doc["known_bad"] == []
    text = format_report(doc)
    assert "Raspberry Pi 4 Model B Rev 1.4" in text and "Cortex-A72" in text
    assert "dotprod no, atomics no" in text


def test_arm_core_table_without_features(tmp_path: Path) -> None:
    """A cpuinfo without a Features line (or with a generic model name) still names the cores."""
    text = "processor : 0\nmodel name : ARMv8 Processor rev 4 (v8l)\nCPU implementer : 0x41\n" \
           "CPU part : 0xd03\n\nprocessor : 1\nCPU implementer : 0x41\nCPU part : 0xd0b\n"
    (tmp_path / "cpuinfo").write_text(text)
    cpu = read_cpuinfo(str(tmp_path / "cpuinfo"))
    assert cpu.model == "Cortex-A53 + Cortex-A76" and cpu.cores == 2
    assert cpu.has_feature("asimddp") is False  # the A53 has none


def test_jetson_l4t_and_jetpack(tmp_path: Path) -> None:
    paths = orin(tmp_path)
    assert read_nv_tegra_release(paths.nv_tegra_release) == {
        "l4t": "36.4.0", "jetpack": "6.1", "board": "generic"}
    doc = report(paths=paths, machine="aarch64", env={}, query_gpus=False,
                 versions={"onnxruntime": "1.21.0", "numpy": "1.26.4"})
    dev = doc["device"]
    assert dev["cpu"]["model"] == "Cortex-A78AE" and dev["cpu"]["cores"] == 6
    assert dev["jetson"] == {"module": "NVIDIA Jetson Orin Nano Developer Kit", "l4t": "36.4.0",
                             "jetpack": "6.1", "board": "generic"}
    assert dev["raspberry_pi"] is None and dev["os"] == "Ubuntu 22.04.4 LTS"
    # the A78AE has dot-product instructions: onnxruntime 1.21.0 is fine here
    assert doc["known_bad"] == [] and doc["ok"] is True
    assert "JetPack 6.1" in format_report(doc)
    (tmp_path / "unknown").write_text("# R35 (release), REVISION: 9.9, GCID: 1\n")
    assert read_nv_tegra_release(str(tmp_path / "unknown"))["jetpack"] == "5.x"


def test_this_machine_for_real() -> None:
    doc = report()
    dev = doc["device"]
    assert dev["arch"] == platform.machine() and dev["python"] == platform.python_version()
    assert dev["cpu"]["model"] and dev["cpu"]["cores"] >= 1
    ort = next(b for b in doc["backends"] if b["name"] == "onnxruntime")
    assert ort["importable"] is True and "CPUExecutionProvider" in ort["providers"]
    torch = next(b for b in doc["backends"] if b["name"] == "torchscript")
    assert torch["inspected"] is False  # torch is imported only when asked
    assert set(doc["accelerators"]) == {"cuda", "tensorrt"}
    json.dumps(doc)  # one JSON-ready document
    assert doc["ok"] is True, doc["problems"]


def test_doctor_imports_no_torch_unless_asked() -> None:
    code = ("import sys; from runtime.device.doctor import report; report(query_gpus=False); "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --------------------------------------------------------------------------- known bad

def test_known_bad_ort_1_21_on_pi4_is_never_imported(tmp_path: Path) -> None:
    doc = report(paths=pi4(tmp_path), machine="aarch64", env={}, query_gpus=False,
                 versions={"onnxruntime": "1.21.0", "numpy": "2.2.6"})
    assert doc["ok"] is False
    hit = next(h for h in doc["known_bad"] if h["id"] == "ort-1.21.0-armv8.0-sigill")
    assert "Illegal instruction" in hit["reason"] and "Cortex-A72" in hit["matched"]
    assert "onnxruntime==1.22.1" in hit["fix"]
    ort = next(b for b in doc["backends"] if b["name"] == "onnxruntime")
    assert ort["importable"] is None and ort["note"].startswith("not imported: known bad")
    assert any("onnxruntime==1.22.1" in f for f in doc["fixes"])


def test_known_bad_rules_on_faked_combinations(tmp_path: Path) -> None:
    cpu = read_cpuinfo(pi4(tmp_path).cpuinfo)
    def ids(versions, machine="aarch64"):
        return [
            h["id"] for h in check_known_bad(machine=machine, cpu=cpu, versions=versions)]
    assert ids({"torch": "2.4.0"}) == ["torch-2.4.0-no-lse-sigill"]
    assert ids({"torch": "2.4.0"}, machine="x86_64") == []
    assert ids({"torch": "2.3.1"}) == []
    assert ids({"onnxruntime": "1.18.1", "numpy": "2.0.1"}) == ["ort-lt-1.19-numpy2"]
    assert ids({"onnxruntime": "1.18.1", "numpy": "1.26.4"}) == []
    assert ids({"tflite_runtime": "2.14.0", "numpy": "2.2.6"}) == ["tflite-runtime-numpy2"]
    assert ids({"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.0"}) == ["ort-cpu-and-gpu-both"]
    assert {r["id"] for r in known_bad_table()} >= {"ort-1.21.0-armv8.0-sigill"}


def test_pinned_known_bad_is_caught_before_install(tmp_path: Path,
                                                   bundle_factory: Callable[..., Path]) -> None:
    root = bundle_factory(requirements="numpy==2.2.6\nonnxruntime==1.21.0\n")
    doc = report(open_bundle(root), paths=pi4(tmp_path), machine="aarch64", env={},
                 query_gpus=False, versions={"onnxruntime": "1.22.1", "numpy": "2.2.6"})
    hit = next(h for h in doc["known_bad"] if h["id"] == "ort-1.21.0-armv8.0-sigill")
    assert hit["pinned"] is True
    assert any("requirements.txt pins onnxruntime 1.21.0" in p for p in doc["problems"])


# --------------------------------------------------------------------------- bundles

def test_requirements_lines_and_fixes() -> None:
    installed = {"numpy": "2.2.6", "onnxruntime": "1.20.0", "torch": "2.5.0+cpu"}
    text = ("# Device requirements for target rpi4\n\n--extra-index-url https://example\n"
            "numpy==2.2.6\nonnxruntime==1.22.1  # pinned for the A72\ntorch==2.5.0\n"
            "ai-edge-litert==2.3.0\nnumpy>=1.24,<3\n"
            "onnxruntime-gpu==1.20.0; platform_machine == 'not-this'\n")
    rows = check_requirements(text, machine="x86_64", version_of=installed.get)
    by = {r.line: r for r in rows}
    assert len(rows) == 5
    assert by["numpy==2.2.6"].ok and by["torch==2.5.0"].ok and by["numpy>=1.24,<3"].ok
    ort = by["onnxruntime==1.22.1"]
    assert not ort.ok and ort.installed == "1.20.0" and ort.fix == "pip install onnxruntime==1.22.1"
    lite = by["ai-edge-litert==2.3.0"]
    assert lite.note == "not installed" and lite.fix == "pip install ai-edge-litert==2.3.0"


def test_version_matching() -> None:
    assert version_matches("2.13.0+cpu", "==", "2.13.0")
    assert version_matches("1.0.5", "==", "1.0.*") and not version_matches("1.1", "==", "1.0.*")
    assert version_matches("1.4.5", "~=", "1.4.0") and not version_matches("1.5", "~=", "1.4.0")
    assert version_matches("2.0.0rc1", "<", "2.0.0") and version_matches("1.22", ">=", "1.22.0")


def test_bundle_match_and_mismatch(bundle_factory: Callable[..., Path],
                                   kit: types.ModuleType) -> None:
    root = match_this_device(bundle_factory(), kit)
    doc = report(open_bundle(root), query_gpus=False)
    assert doc["ok"] is True, doc["problems"]
    b = doc["bundle"]
    assert b["selected"] == "onnx-fp32" and all(c["ok"] for c in b["checks"])
    assert b["tuning"]["status"] == "no-file"
    # same bundle on an aarch64 device: the arch does not match
    doc = report(open_bundle(root), machine="aarch64", query_gpus=False)
    assert doc["ok"] is False and any(p.startswith("arch:") for p in doc["problems"])
    # a pin this environment does not satisfy: the fix says what to install
    root = match_this_device(bundle_factory(requirements="numpy\nonnxruntime==1.0.1\n"), kit)
    doc = report(open_bundle(root), query_gpus=False)
    assert doc["ok"] is False
    assert "pip install onnxruntime==1.0.1" in doc["fixes"]


def test_tampered_bundle_is_reported_not_loaded(bundle_factory: Callable[..., Path],
                                                kit: types.ModuleType) -> None:
    root = match_this_device(bundle_factory(), kit)
    (root / "models" / "evil.onnx").write_bytes(b"x")
    doc = report(open_bundle(root), query_gpus=False)
    assert doc["ok"] is False and doc["bundle"]["candidates"] == []
    assert "unexpected: models/evil.onnx" in doc["bundle"]["integrity"]


# --------------------------------------------------------------------------- emulation

def test_emulation_detection(tmp_path: Path) -> None:
    binfmt = tmp_path / "binfmt"
    binfmt.mkdir()
    assert detect_emulation({}, "aarch64", str(binfmt)) == (False, "no sign of emulation")
    assert detect_emulation({"EDGEPACK_EMULATED": "1"}, "x86_64", str(binfmt))[0] is True
    assert detect_emulation({"QEMU_CPU": "cortex-a72"}, "aarch64", str(binfmt))[0] is True
    assert detect_emulation({"QEMU_CPU": "x", "EDGEPACK_EMULATED": "0"}, "aarch64",
                            str(binfmt))[0] is False
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt\n")
    assert detect_emulation({}, "aarch64", str(binfmt))[0] is True
    assert detect_emulation({}, "x86_64", str(binfmt))[0] is False
    (tmp_path / "x86").write_text("processor : 0\nvendor_id : AuthenticAMD\nflags : fpu sse\n")
    cpu = read_cpuinfo(str(tmp_path / "x86"))
    ok, why = detect_emulation({}, "aarch64", str(tmp_path / "none"), cpu)
    assert ok and "x86" in why


@pytest.mark.parametrize("machine", ["aarch64"])
def test_report_shows_emulation(tmp_path: Path, machine: str) -> None:
    doc = report(paths=pi4(tmp_path), machine=machine, env={"QEMU_CPU": "cortex-a72"},
                 query_gpus=False, versions={"numpy": "2.2.6"})
    assert doc["device"]["emulated"] is True
    assert "YES: QEMU_CPU is set (qemu-user)" in format_report(doc)
