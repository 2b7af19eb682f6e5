"""Targets: the shipped ones are valid and true to their devices; mistakes give clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from packager.errors import TargetError
from packager.targets import available_targets, load_target

from ..conftest import write_yaml

BASE = """\
name: dev
arch: aarch64
python: "3.11"
threads: 4
candidates:
  - {format: onnx, precision: fp32}
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
"""


def test_shipped_targets_all_load() -> None:
    found = available_targets()
    for name in ("x86-cpu", "rpi4", "rpi5", "jetson-orin-nano"):
        assert name in found
        t = load_target(name)
        assert t.name == name and t.candidates and t.requirements
        pins = t.requirements_for({c.backend for c in t.candidates})
        assert pins and all(r.count("==") == 1 for r in pins), "device requirements are pinned"
        assert {c.backend for c in t.candidates} <= set(t.backend_requirements)


def test_device_facts() -> None:
    pi = load_target("rpi4")
    first = pi.candidates[0]
    assert pi.arch == "aarch64" and (first.format, first.precision, first.io) == ("tflite", "int8", "int8")
    assert first.providers == ("XNNPACK",)
    assert all(c.providers == ("CPUExecutionProvider",) for c in pi.candidates if c.format == "onnx")
    assert pi.requirements_for({"onnxruntime"}) == ["numpy==2.2.6", "onnxruntime==1.22.1"]
    assert "ai-edge-litert==2.3.0" in pi.requirements_for({"tflite"})
    jetson = load_target("jetson-orin-nano")
    assert jetson.python == "3.10"
    assert jetson.candidates[0].providers[0] == "TensorrtExecutionProvider"
    assert jetson.candidates[0].precision == "fp16"
    assert jetson.candidates[-1].providers == ("CPUExecutionProvider",)


def test_unknown_target_did_you_mean() -> None:
    with pytest.raises(TargetError) as info:
        load_target("rpi-4")
    assert "did you mean 'rpi4'" in info.value.message and "known targets" in info.value.hint


def test_target_by_path(tmp_path: Path) -> None:
    t = load_target(str(write_yaml(tmp_path / "dev.yaml", BASE)))
    assert t.name == "dev" and t.candidates[0].id == "onnx-fp32"


def err(tmp_path: Path, text: str) -> TargetError:
    with pytest.raises(TargetError) as info:
        load_target(str(write_yaml(tmp_path / "dev.yaml", text)))
    return info.value


def test_typo_in_target_key(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("threads:", "thraeds:"))
    assert "did you mean 'threads'" in e.message and e.where.endswith("dev.yaml: thraeds")


def test_unquoted_python_version(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace('"3.11"', "3.10"))
    assert "quoted" in e.message and 'python: "3.11"' in e.hint


def test_int8_needs_quantization(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("precision: fp32", "precision: int8"))
    assert "quantization" in e.message and e.where.endswith("candidates[0].quantization")


def test_provider_typo(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("precision: fp32}", "precision: fp32, providers: [CUDA]}"))
    assert "did you mean 'CUDAExecutionProvider'" in e.message


def test_duplicate_candidate_ids(tmp_path: Path) -> None:
    text = BASE.replace("  - {format: onnx, precision: fp32}",
                        "  - {format: onnx, precision: fp32}\n  - {format: onnx, precision: fp32}")
    assert "more than once" in err(tmp_path, text).message


def test_bad_format(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("format: onnx", "format: onxx"))
    assert "did you mean 'onnx'" in e.message


def test_provider_options_count(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("precision: fp32}", "precision: fp32, provider_options: [{}, {}]}"))
    assert "2 provider_options for 1 providers" in e.message


def test_variant_naming() -> None:
    rpi = load_target("rpi4")
    assert rpi.candidates[0].variant == "tflite-int8-static-int8io"
    assert rpi.candidates[1].variant == "onnx-int8-static-pc"
    assert rpi.candidates[2].variant == "onnx-fp32"


def test_requirements_per_backend_must_cover_the_candidates(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("requirements: [numpy==2.2.6, onnxruntime==1.22.1]",
                                   "requirements: {common: [numpy==2.2.6], tflite: [ai-edge-litert==2.3.0]}"))
    assert "['onnxruntime']" in e.message and "add e.g. onnxruntime" in e.hint


def test_io_int8_only_for_full_int8_tflite(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("precision: fp32}", "precision: fp32, io: int8}"))
    assert "full-int8 TFLite" in e.message
