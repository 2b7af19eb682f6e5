"""Targets: the shipped ones are valid and true to their devices; mistakes give clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import packager.config.targets
from packager.cli import main
from packager.config.targets import SHIPPED_TARGETS_DIR, available_targets, load_target
from packager.errors import TargetError

from ...conftest import REPO, write_yaml

SHIPPED = ("jetson-orin-nano", "rpi4", "rpi5", "x86-cpu", "x86-cuda")

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
    # the artifact says it is repaired by mixed precision; the shipped id stays the plain name
    assert rpi.candidates[0].variant == "tflite-int8-static-mixed-int8io"
    assert rpi.candidates[0].id == "tflite-int8-static-int8io"
    assert rpi.candidates[1].variant == "onnx-int8-static-pc"
    assert rpi.candidates[2].variant == "onnx-fp32"


def test_requirements_per_backend_must_cover_the_candidates(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("requirements: [numpy==2.2.6, onnxruntime==1.22.1]",
                                   "requirements: {common: [numpy==2.2.6], tflite: [ai-edge-litert==2.3.0]}"))
    assert "['onnxruntime']" in e.message and "add e.g. onnxruntime" in e.hint


def test_io_int8_only_for_full_int8_tflite(tmp_path: Path) -> None:
    e = err(tmp_path, BASE.replace("precision: fp32}", "precision: fp32, io: int8}"))
    assert "full-int8 TFLite" in e.message


def test_shipped_targets_are_package_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """They live inside the packager package (pyproject's package-data), not beside it, so a regular
    install has them too (tests/test_install.py installs one); found from any working folder."""
    assert SHIPPED_TARGETS_DIR == REPO / "packager" / "shipped_targets"
    assert tuple(sorted(p.stem for p in SHIPPED_TARGETS_DIR.glob("*.yaml"))) == SHIPPED
    import tomllib
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "shipped_targets/*.yaml" in data["tool"]["setuptools"]["package-data"]["packager"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEPACK_TARGETS_PATH", raising=False)
    assert {n: p.parent for n, p in available_targets().items()} == {n: SHIPPED_TARGETS_DIR for n in SHIPPED}


def test_own_targets_folder_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEPACK_TARGETS_PATH", raising=False)
    (tmp_path / "targets").mkdir()
    mine = write_yaml(tmp_path / "targets" / "rpi4.yaml", BASE.replace("name: dev", "name: rpi4"))
    found = available_targets()
    assert found["rpi4"].resolve() == mine.resolve() and found["x86-cpu"].parent == SHIPPED_TARGETS_DIR


@pytest.fixture
def no_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An install whose shipped targets are missing, run from a folder without ./targets."""
    missing = tmp_path / "site-packages" / "packager" / "shipped_targets"
    monkeypatch.setattr(packager.config.targets, "SHIPPED_TARGETS_DIR", missing)
    monkeypatch.delenv("EDGEPACK_TARGETS_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    return missing


def test_no_targets_is_an_error_not_an_empty_table(no_targets: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "no target YAML files found" in err
    assert f"looked in {tmp_path / 'targets'}, {no_targets}" in err  # where it looked, in order
    assert "hint: the shipped targets are missing from this install" in err and "reinstall edgepack" in err

    assert main(["targets", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"] == "target" and doc["message"] == "no target YAML files found"
    assert str(no_targets) in doc["where"] and "pip install" in doc["hint"]


def test_no_targets_names_the_cause_for_a_target_name(no_targets: Path) -> None:
    with pytest.raises(TargetError) as info:
        load_target("x86-cpu")
    e = info.value
    assert e.message == "unknown target 'x86-cpu': no target YAML files found"
    assert str(no_targets) in e.where and "reinstall edgepack" in e.hint and "path of a target YAML" in e.hint
    assert "known targets" not in e.hint  # never 'known targets: none'


def test_targets_path_variable_is_searched(no_targets: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    write_yaml(folder / "dev.yaml", BASE)
    monkeypatch.setenv("EDGEPACK_TARGETS_PATH", str(folder))
    assert main(["targets", "--json"]) == 0
    assert [t["name"] for t in json.loads(capsys.readouterr().out)["targets"]] == ["dev"]
