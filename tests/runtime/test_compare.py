"""runtime.compare on real numbers: the maths both host and device rely on."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.compare import (
    DEFAULT_TOLERANCES,
    HISTOGRAM_DECADES,
    OutputReport,
    ParityReport,
    Tolerance,
    compare,
    compare_output,
    default_tolerance,
    error_histogram,
    format_parity_rows,
)
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


# --------------------------------------------------------------------------- error histogram

def test_error_histogram_counts_on_known_errors() -> None:
    ref = np.zeros(6, np.float64)
    cand = np.array([0.0, 1e-3, -1e-3, 5e-3, 1e-2, 0.3])
    hist = compare_output("y", ref, cand, COS).error_histogram
    # errors 0, 1e-3, 1e-3, 5e-3, 1e-2, 0.3: decades 1e-3 .. 1e0, 20 bins of 0.15 decade
    assert hist["scale"] == "log10"
    assert hist["zeros"] == 1 and hist["total"] == 6
    assert len(hist["edges"]) == 21 and len(hist["counts"]) == 20
    assert hist["edges"][0] == 1e-3 and hist["edges"][-1] == 1.0
    assert hist["edges"][5] == pytest.approx(10 ** -2.25, rel=1e-3)
    expected = [0] * 20
    expected[0] = 2   # 1e-3 twice (left edge of the first bin)
    expected[4] = 1   # 5e-3: log10 = -2.30 -> (0.699 / 0.15) = bin 4
    expected[6] = 1   # 1e-2: log10 = -2 -> (1 / 0.15) = bin 6
    expected[16] = 1  # 0.3: log10 = -0.523 -> (2.477 / 0.15) = bin 16
    assert hist["counts"] == expected
    assert sum(hist["counts"]) + hist["zeros"] == hist["total"]


def test_error_histogram_exact_match_is_all_zeros() -> None:
    ref = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    rep = compare_output("y", ref, ref.copy(), FP32)
    assert rep.error_histogram == {"scale": "log10", "edges": [], "counts": [], "zeros": 12,
                                   "total": 12}


def test_error_histogram_single_decade_and_nonfinite_skipped() -> None:
    ref = np.array([1.0, np.nan, 2.0, np.inf], np.float64)
    cand = np.array([1.0 + 2e-5, np.nan, 2.0, np.inf])
    hist = compare_output("y", ref, cand, FP32).error_histogram
    # only the two finite elements count: one exact, one 2e-5 (decade 1e-5 .. 1e-4)
    assert hist["total"] == 2 and hist["zeros"] == 1
    assert hist["edges"][0] == 1e-5 and hist["edges"][-1] == 1e-4
    assert hist["counts"][6] == 1 and sum(hist["counts"]) == 1  # log10(2) / 0.05 = 6.02


def test_error_histogram_span_is_capped_and_tiny_errors_join_the_first_bin() -> None:
    hist = error_histogram(np.array([1e-40, 1e-20, 1.0]))
    assert hist["edges"][0] == float(f"{10.0 ** -HISTOGRAM_DECADES:.4g}") and hist["edges"][-1] == 1.0
    assert hist["counts"][0] == 2 and hist["counts"][-1] == 1


def test_error_histogram_integer_outputs() -> None:
    ref = np.array([1, 2, 3, 4], np.int64)
    hist = compare_output("label", ref, np.array([1, 2, 3, 14], np.int64), FP32).error_histogram
    assert hist["zeros"] == 3 and hist["total"] == 4
    assert hist["edges"][0] == 10.0 and hist["edges"][-1] == 100.0
    assert hist["counts"][0] == 1


def test_error_histogram_absent_when_shapes_differ_and_survives_roundtrip() -> None:
    assert compare_output("y", np.zeros((2, 3)), np.zeros((3, 2)), FP32).error_histogram is None
    ref = {"y": np.ones((2, 3), np.float32)}
    rep = compare(ref, {"y": ref["y"] * 2}, FP32)
    doc = rep.to_dict()
    hist = doc["outputs"][0]["error_histogram"]
    assert hist["counts"][0] == 6 and hist["edges"][:1] == [1.0]  # all six errors are exactly 1
    assert ParityReport.from_dict(doc).outputs[0].error_histogram == hist
