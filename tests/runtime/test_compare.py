"""runtime.compare on real numbers: the maths both host and device rely on."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.compare import (DEFAULT_TOLERANCES, OutputReport, ParityReport, Tolerance, compare,
                             compare_output, default_tolerance, format_parity_rows)
from runtime.errors import BundleFormatError

FP32 = DEFAULT_TOLERANCES["fp32"]
COS = Tolerance(min_cosine=0.99)


def test_fp32_within_atol_passes() -> None:
    ref = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    rep = compare_output("y", ref, ref + np.float32(5e-5), FP32)
    assert rep.passed, rep.failures
    assert rep.max_abs == pytest.approx(5e-5, rel=1e-2)


def test_fp32_beyond_atol_fails_and_counts_elements() -> None:
    ref = np.zeros((2, 3), dtype=np.float32) + 10
    cand = ref.copy()
    cand[0, 0] += 0.5  # 0.5 > 1e-4 + 1e-3 * 10
    rep = compare_output("y", ref, cand, FP32)
    assert not rep.passed
    assert any("1 element(s) exceed atol" in f for f in rep.failures)


def test_rtol_scales_with_reference() -> None:
    ref = np.array([1000.0, 1.0], dtype=np.float32)
    cand = ref + np.array([0.5, 0.0], dtype=np.float32)
    assert compare_output("y", ref, cand, Tolerance(atol=0.0, rtol=1e-3)).passed
    assert not compare_output("y", ref, cand, Tolerance(atol=0.0, rtol=1e-4)).passed


def test_shape_mismatch_fails() -> None:
    rep = compare_output("y", np.zeros((2, 3)), np.zeros((3, 2)), FP32)
    assert not rep.passed and "shape" in rep.failures[0]


def test_cosine_both_all_zero_passes() -> None:
    rep = compare_output("y", np.zeros(5, np.float32), np.zeros(5, np.float32), COS)
    assert rep.passed and rep.cosine is None
    assert "all zeros" in rep.notes[0]


@pytest.mark.parametrize("which", ["reference", "candidate"])
def test_cosine_one_all_zero_fails(which: str) -> None:
    zeros, ones = np.zeros(5, np.float32), np.ones(5, np.float32)
    ref, cand = (zeros, ones) if which == "reference" else (ones, zeros)
    rep = compare_output("y", ref, cand, COS)
    assert not rep.passed
    assert rep.failures == [f"{which} is all zeros, the other is not (cosine undefined)"]


def test_cosine_below_threshold_fails() -> None:
    ref = np.array([1.0, 0.0], np.float32)
    rep = compare_output("y", ref, np.array([1.0, 1.0], np.float32), COS)
    assert rep.cosine == pytest.approx(1 / np.sqrt(2))
    assert not rep.passed


def test_nan_at_same_positions_passes() -> None:
    ref = np.array([1.0, np.nan, 3.0, np.inf], np.float32)
    rep = compare_output("y", ref, ref.copy(), FP32)
    assert rep.passed, rep.failures
    assert rep.nonfinite == 2
    assert "match the reference" in rep.notes[0]


def test_nan_mismatch_fails() -> None:
    ref = np.array([1.0, np.nan, 3.0], np.float32)
    cand = np.array([np.nan, 2.0, 3.0], np.float32)
    rep = compare_output("y", ref, cand, FP32)
    assert not rep.passed
    assert "2 non-finite value(s) differ" in rep.failures[0]


def test_inf_sign_mismatch_fails() -> None:
    rep = compare_output("y", np.array([np.inf, 1.0]), np.array([-np.inf, 1.0]), FP32)
    assert not rep.passed


def test_integer_outputs_exact() -> None:
    ref = np.array([1, 2, 3, 4], np.int64)
    assert compare_output("label", ref, ref.copy(), FP32).passed
    rep = compare_output("label", ref, np.array([1, 2, 3, 5], np.int64), FP32)
    assert not rep.passed and rep.mismatch == pytest.approx(0.25)
    loose = Tolerance(max_mismatch=0.25)
    assert compare_output("label", ref, np.array([1, 2, 3, 5], np.int64), loose).passed


def test_top1_agreement() -> None:
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    cand = ref.copy()
    cand[0] = [0.4, 0.6]  # flips one of four rows
    tol = Tolerance(min_top1=0.8)
    rep = compare_output("logits", ref, cand, tol)
    assert rep.top1 == pytest.approx(0.75)
    assert not rep.passed and "top-1" in rep.failures[0]
    assert compare_output("logits", ref, cand, Tolerance(min_top1=0.75)).passed
    # scores=False switches the check off even for a (batch, classes) array
    assert compare_output("logits", ref, cand, tol, scores=False).top1 is None


def test_compare_missing_output_and_tolerance() -> None:
    ref = {"a": np.ones(3), "b": np.ones(3)}
    rep = compare(ref, {"a": np.ones(3)}, FP32)
    assert not rep.passed
    assert rep.outputs[1].failures == ["missing from candidate outputs"]
    with pytest.raises(BundleFormatError, match="no tolerance for output 'b'"):
        compare(ref, ref, {"a": FP32})


def test_tolerance_roundtrip_and_unknown_keys() -> None:
    tol = Tolerance(atol=1e-3, min_cosine=0.9)
    assert Tolerance.from_dict(tol.to_dict()) == tol
    with pytest.raises(BundleFormatError, match="unknown tolerance key"):
        Tolerance.from_dict({"atoll": 1})
    assert default_tolerance("int8").min_top1 == 0.95
    with pytest.raises(BundleFormatError):
        default_tolerance("fp8")


def test_report_roundtrip_and_table() -> None:
    ref = {"y": np.ones((2, 3), np.float32)}
    rep = compare(ref, {"y": ref["y"] * 2}, FP32)
    again = ParityReport.from_dict(rep.to_dict())
    assert again.passed is False and isinstance(again.outputs[0], OutputReport)
    table = format_parity_rows(rep.outputs)
    assert table.splitlines()[0].startswith("output")
    assert "FAIL" in table
