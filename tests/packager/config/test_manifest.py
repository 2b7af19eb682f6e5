"""Manifest validation: every kind of mistake gives a ManifestError naming file, field and fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from packager.config.manifest import load_manifest
from packager.errors import ManifestError

from ...conftest import REPO, write_yaml

GOOD = """\
name: m
source: {framework: torch, entry: model.py:build}
inputs:
  - {name: x, dtype: float32, shape: [batch, 3]}
outputs: [y]
calibration: {entry: data.py:samples, samples: 10}
targets: [x86-cpu]
"""


def load_text(tmp_path: Path, text: str):
    return load_manifest(write_yaml(tmp_path / "m.yaml", text))


def error_of(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_text(tmp_path, text)
    return info.value


def test_good_manifest_parses_with_defaults(tmp_path: Path) -> None:
    m = load_text(tmp_path, GOOD)
    assert m.name == "m" and m.inputs[0].shape == ("batch", 3)
    assert m.symbolic_batch() == "batch"
    assert m.golden_from_calibration and m.golden.samples == 32
    assert m.opset == 17 and m.exporter == "auto"
    assert m.tolerance_for("fp32", "y").atol == 1e-4



def test_inputs_are_the_runtimes_tensor_spec(tmp_path: Path) -> None:
    """One TensorSpec: a manifest input is the bundle's input as is; an output whose shape is
    left out stays a declaration (OutputSpec) until the build observes it."""
    from runtime.signature import TensorSpec
    m = load_text(tmp_path, GOOD)
    assert type(m.inputs[0]) is TensorSpec
    assert m.inputs[0] == TensorSpec("x", "float32", ("batch", 3))
    assert TensorSpec.from_dict(m.inputs[0].to_dict(), where="t") == m.inputs[0]
    assert (m.outputs[0].name, m.outputs[0].shape) == ("y", None)

def test_shipped_manifest_is_valid() -> None:
    m = load_manifest(REPO / "manifests" / "digits-cnn.yaml")
    assert m.targets == ("x86-cpu", "rpi4")
    assert m.evaluation is not None and m.calibration.entry


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, "name: m\ninputs: [a, b\n")
    assert "malformed YAML" in err.message
    assert err.where and "m.yaml:" in err.where and err.hint


def test_unknown_key_has_did_you_mean(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("outputs:", "outptus:"))
    assert "unknown key 'outptus'" in err.message and "did you mean 'outputs'" in err.message
    assert err.where.endswith("m.yaml: outptus")


def test_unknown_nested_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("samples: 10", "sample: 10"))
    assert "did you mean 'samples'" in err.message and err.where.endswith("calibration.sample")


def test_wrong_type(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("samples: 10", "samples: ten"))
    assert "expected an integer" in err.message and err.where.endswith("calibration.samples")


def test_missing_required_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("name: m\n", ""))
    assert "missing required field 'name'" in err.message and "add 'name:'" in err.hint


def test_bad_dtype_lists_choices(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("dtype: float32", "dtype: float"))
    assert "'float' is not one of" in err.message and err.where.endswith("inputs[0].dtype")


def test_bad_dimension(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("[batch, 3]", "[batch, -3]"))
    assert "dimension -3" in err.message and err.where.endswith("inputs[0].shape[1]")


def test_torch_source_needs_entry(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("entry: model.py:build", "path: model.onnx"))
    assert "needs 'entry'" in err.message


def test_entry_point_format(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("model.py:build", "model.py"))
    assert "entry point 'model.py'" in err.message


def test_no_data_at_all(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("calibration: {entry: data.py:samples, samples: 10}\n", ""))
    assert "no calibration or golden data" in err.message and "random: true" in err.hint


def test_two_data_sources(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("entry: data.py:samples,", "entry: data.py:samples, file: c.npz,"))
    assert "only one of" in err.message


def test_tolerance_override_applied_and_checked(tmp_path: Path) -> None:
    m = load_text(tmp_path, GOOD + "tolerances:\n  int8: {min_cosine: 0.9}\n")
    assert m.tolerance_for("int8", "y").min_cosine == 0.9
    assert m.tolerance_for("int8", "y").min_top1 == 0.95  # untouched default
    err = error_of(tmp_path, GOOD + "tolerances:\n  int8: {min_cosin: 0.9}\n")
    assert "did you mean 'min_cosine'" in err.message
    err = error_of(tmp_path, GOOD + "tolerances:\n  int4: {min_cosine: 0.9}\n")
    assert "unknown key 'int4'" in err.message


def test_per_output_tolerance(tmp_path: Path) -> None:
    text = GOOD.replace("outputs: [y]", "outputs:\n  - {name: y, tolerances: {fp32: {atol: 0.5}}}")
    assert load_text(tmp_path, text).tolerance_for("fp32", "y").atol == 0.5


def test_duplicate_input_names(tmp_path: Path) -> None:
    text = GOOD.replace("  - {name: x, dtype: float32, shape: [batch, 3]}",
                        "  - {name: x, dtype: float32, shape: [batch, 3]}\n"
                        "  - {name: x, dtype: float32, shape: [batch, 3]}")
    assert "appear more than once" in error_of(tmp_path, text).message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "nope.yaml")
    assert "not found" in info.value.message


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in error_of(tmp_path, "- a\n- b\n").message


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD + "targets: [rpi4]\n")
    assert "'targets' appears twice" in err.message and "m.yaml:" in err.where


def test_share_tolerances_are_at_most_one(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD + "tolerances:\n  fp32: {min_cosine: 2}\n")
    assert "between 0 and 1" in err.message and err.where.endswith("tolerances.fp32.min_cosine")
