"""Calibration/golden data: real samples loaded and checked against the signature."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from packager.config.manifest import load_manifest
from packager.errors import DataError
from packager.inputs.data import golden_samples, load_samples


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


def test_npz_file(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    x = np.ones((10, 1, 4, 4), np.float32)
    _npz(tmp_path / "cal.npz", x=x)
    m = load_manifest(tiny_project(calibration={"file": "cal.npz"}))
    assert len(load_samples(m.calibration, m, "calibration")) == 10


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
