"""Calibration/golden data: real samples loaded and checked against the signature."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from packager.config.manifest import load_manifest
from packager.errors import DataError
from packager.inputs.data import MIN_HELD_OUT_CALIBRATION, calibration_without_golden, golden_samples, load_samples


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_entry_point_samples_are_limited_and_batched(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project(calibration={"entry": "tiny.py:samples", "samples": 40}))
    s = load_samples(m.calibration, m, "calibration")
    assert s.batched and len(s) == 40 and s.arrays["x"].shape == (40, 1, 4, 4)
    assert [len(b["x"]) for b in s.batches(16)] == [16, 16, 8]


def test_golden_is_a_seeded_draw_from_real_calibration_data(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project())
    cal = load_samples(m.calibration, m, "calibration")
    g1, g2 = golden_samples(m, cal), golden_samples(m, cal)
    assert len(g1) == 16 and np.array_equal(g1.arrays["x"], g2.arrays["x"])
    rows = {r.tobytes() for r in cal.arrays["x"]}
    assert all(r.tobytes() in rows for r in g1.arrays["x"]), "golden rows come from calibration data"
    assert "drawn from calibration" in g1.source and not g1.random


def test_int8_calibration_leaves_the_golden_samples_out(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project())
    cal = load_samples(m.calibration, m, "calibration")
    golden = golden_samples(m, cal)
    held, warning = calibration_without_golden(m, cal)
    assert held is not None and warning is None
    assert len(held) == len(cal) - len(golden) == 48
    rows = {r.tobytes() for r in cal.arrays["x"]}
    golden_rows = {r.tobytes() for r in golden.arrays["x"]}
    held_rows = {r.tobytes() for r in held.arrays["x"]}
    assert not golden_rows & held_rows and golden_rows | held_rows == rows  # disjoint, and nothing lost
    assert "without the 16 golden samples" in held.source and "kept out of int8 calibration" in golden.source


def test_too_few_calibration_samples_for_both_keep_them_all_and_say_so(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project(calibration={"entry": "tiny.py:samples", "samples": 24}))
    cal = load_samples(m.calibration, m, "calibration")
    held, warning = calibration_without_golden(m, cal)
    assert held is cal and warning is not None
    assert f"fewer than {MIN_HELD_OUT_CALIBRATION} would be left" in warning
    assert f"calibration.samples >= {16 + MIN_HELD_OUT_CALIBRATION}" in warning


def test_npz_file(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    x = np.ones((10, 1, 4, 4), np.float32)
    _npz(tmp_path / "cal.npz", x=x)
    m = load_manifest(tiny_project(calibration={"file": "cal.npz"}))
    assert len(load_samples(m.calibration, m, "calibration")) == 10



FIXED_ONE = [{"name": "x", "dtype": "float32", "shape": [1, 1, 4, 4]}]  # a batch of one, fixed


def test_npz_of_n_samples_for_a_fixed_batch_of_one(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    """[N, 1, 4, 4] (what people have) for the input [1, 1, 4, 4] is N samples, and says so; the
    stacked [N, 1, 1, 4, 4] still reads as before, without a note."""
    x = np.random.default_rng(0).random((10, 1, 4, 4)).astype(np.float32)
    _npz(tmp_path / "cal.npz", x=x)
    m = load_manifest(tiny_project(inputs=FIXED_ONE, calibration={"file": "cal.npz"}))
    s = load_samples(m.calibration, m, "calibration")
    assert not s.batched and len(s) == 10 and s.arrays["x"].shape == (10, 1, 1, 4, 4)
    assert np.array_equal(s.arrays["x"][3, 0], x[3])
    assert s.notes == ("cal.npz: input 'x' [10, 1, 4, 4] read as 10 samples of [1, 1, 4, 4] "
                       "(the signature fixes a batch of one)",)
    assert "axis 0 read as samples" in s.source
    assert [b["x"].shape for b in s.batches(4)][:2] == [(1, 1, 4, 4), (1, 1, 4, 4)]
    _npz(tmp_path / "cal.npz", x=x[:, None])
    stacked = load_samples(m.calibration, m, "calibration")
    assert np.array_equal(stacked.arrays["x"], s.arrays["x"]) and stacked.notes == ()
    _npz(tmp_path / "cal.npz", x=np.ones((10, 1, 4, 5), np.float32))  # other dims are still checked
    with pytest.raises(DataError, match="has 5 at axis 4"):
        load_samples(m.calibration, m, "calibration")


def test_entry_items_of_n_samples_for_a_fixed_batch_of_one(tiny_project: Callable[..., Path]) -> None:
    """tiny.py:samples yields x [64, 1, 4, 4]: for the input [1, 1, 4, 4] that is 64 samples."""
    m = load_manifest(tiny_project(inputs=FIXED_ONE, calibration={"entry": "tiny.py:samples", "samples": 40}))
    s = load_samples(m.calibration, m, "calibration")
    assert not s.batched and len(s) == 40 and s.arrays["x"].shape == (40, 1, 1, 4, 4)
    assert s.notes and "read as that many samples of batch one" in s.notes[0]
    g = golden_samples(m, s)
    assert len(g) == 16 and g.notes == ()  # drawn rows: the calibration note already told

@pytest.mark.parametrize("arrays, expected", [
    ({"x": np.ones((4, 1, 4, 4), np.float64)}, "dtype float64"),
    ({"x": np.ones((4, 1, 4, 5), np.float32)}, "has 5 at axis 3"),
    ({"x": np.ones((4, 4, 4), np.float32)}, "has shape [4, 4, 4]"),
    ({"y": np.ones((4, 1, 4, 4), np.float32)}, "unexpected input 'y'"),
    ({"x": np.full((4, 1, 4, 4), np.nan, np.float32)}, "NaN/Inf"),
])
def test_npz_mismatches(tiny_project: Callable[..., Path], tmp_path: Path, arrays: dict, expected: str) -> None:
    _npz(tmp_path / "cal.npz", **arrays)
    m = load_manifest(tiny_project(calibration={"file": "cal.npz"}))
    with pytest.raises(DataError) as info:
        load_samples(m.calibration, m, "calibration")
    assert expected in info.value.message and "calibration.file" in info.value.where


def test_npz_with_pickle_is_refused(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import zipfile
    with zipfile.ZipFile(tmp_path / "cal.npz", "w") as zf:
        zf.write(tmp_path / "obj.npy", "x.npy")
    m = load_manifest(tiny_project(calibration={"file": "cal.npz"}))
    with pytest.raises(DataError) as info:
        load_samples(m.calibration, m, "calibration")
    assert "pickled" in info.value.hint


def test_missing_npz(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project(calibration={"file": "nope.npz"}))
    with pytest.raises(DataError, match="not found"):
        load_samples(m.calibration, m, "calibration")


def test_entry_point_that_raises(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def samples():\n    raise RuntimeError('disk on fire')\n")
    m = load_manifest(tiny_project(calibration={"entry": "bad.py:samples"}))
    with pytest.raises(DataError) as info:
        load_samples(m.calibration, m, "calibration")
    assert "disk on fire" in info.value.message


def test_entry_point_missing_function(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project(calibration={"entry": "tiny.py:nope"}))
    with pytest.raises(DataError) as info:
        load_samples(m.calibration, m, "calibration")
    assert "no function 'nope'" in info.value.message and "samples" in info.value.hint


def test_entry_point_missing_file(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project(calibration={"entry": "missing.py:samples"}))
    with pytest.raises(DataError, match="not found"):
        load_samples(m.calibration, m, "calibration")


def test_random_only_when_asked(tiny_project: Callable[..., Path]) -> None:
    m = load_manifest(tiny_project(calibration={"random": True, "samples": 8}))
    s = load_samples(m.calibration, m, "calibration")
    assert s.random and len(s) == 8 and "random" in s.source
