"""runtime.iocast: converting feeds/results between the signature's dtypes and an artifact's,
range-checked (a value that would wrap, overflow or lose its fraction is an error, never a change)."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.bundle_json import Candidate, io_map_fields
from runtime.errors import BackendError, BundleFormatError, FeedError
from runtime.iocast import IoCasts, cast_checked


def test_int64_ids_narrow_to_int32_exactly() -> None:
    ids = np.array([[0, 5, 2**31 - 1, -(2**31)]], dtype=np.int64)
    got = cast_checked(ids, np.dtype(np.int32), "input 'ids'")
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.astype(np.int64), ids)


def test_int64_beyond_int32_is_refused_not_wrapped() -> None:
    ids = np.array([1, 2**31, 2**40, -(2**31) - 1], dtype=np.int64)
    with pytest.raises(FeedError) as info:
        cast_checked(ids, np.dtype(np.int32), "input 'ids'")
    text = str(info.value)
    assert "input 'ids'" in text and "3 value(s) lie outside" in text
    assert "[-2147483648, 2147483647]" in text and f"max {2**40}" in text
    assert info.value.hint and "int32" in info.value.hint


def test_bool_float16_and_float_to_int() -> None:
    assert cast_checked(np.array([0, 1, 1]), np.dtype(np.bool_), "m").tolist() == [False, True, True]
    with pytest.raises(FeedError, match="1 value"):
        cast_checked(np.array([0, 2, 1]), np.dtype(np.bool_), "m")
    half = cast_checked(np.array([1.5, -65504.0], np.float32), np.dtype(np.float16), "x")
    assert half.dtype == np.float16 and half.tolist() == [1.5, -65504.0]
    with pytest.raises(FeedError, match="exceed its largest value 65504"):
        cast_checked(np.array([1.0, 70000.0], np.float32), np.dtype(np.float16), "x")
    # infinities stay infinities: not an overflow made by the conversion
    assert np.isinf(cast_checked(np.array([np.inf], np.float32), np.dtype(np.float16), "x")[0])
    with pytest.raises(FeedError, match="not whole numbers"):
        cast_checked(np.array([1.0, 2.5]), np.dtype(np.int32), "x")
    with pytest.raises(FeedError, match="beyond which"):
        cast_checked(np.array([2**25], np.int64), np.dtype(np.float32), "x")
    same = np.zeros(3, np.float32)
    assert cast_checked(same, np.dtype(np.float32), "x") is same


def test_io_casts_skip_quantized_io_and_convert_results_back() -> None:
    sig = ({"ids": "int64", "image": "float32"}, {"label": "int64", "scores": "float32"})
    art = ({"ids": "int32", "image": "int8"}, {"label": "int32", "scores": "int8"})
    casts = IoCasts.of(sig, art)
    assert casts is not None
    assert casts.inputs == (("ids", np.dtype(np.int32)),)  # image: quantized by the backend
    assert casts.outputs == (("label", np.dtype(np.int64)),)
    feeds = casts.feeds({"ids": np.array([[3, 4]]), "image": np.zeros((1, 2), np.float32)})
    assert feeds["ids"].dtype == np.int32 and feeds["image"].dtype == np.float32
    assert casts.results({"label": np.array([1], np.int32)})["label"].dtype == np.int64
    with pytest.raises(BackendError, match="output 'label'"):
        IoCasts.of(({}, {"label": "int32"}), ({}, {"label": "int64"})).results(  # type: ignore[union-attr]
            {"label": np.array([2**33])})
    assert IoCasts.of(sig, ({"ids": "int64"}, {})) is None
    assert casts.describe() == ["input 'ids' converted to int32 for the artifact",
                                "output 'label' converted to int64 from the artifact's"]


def test_io_map_dtypes_round_trip_and_are_validated() -> None:
    io_map = {"inputs": {"ids": "args_0"}, "outputs": {}, "input_dtypes": {"ids": "int32"},
              "output_dtypes": {"label": "int32"}}
    cand = Candidate(id="c", file="m.tflite", format="tflite", backend="tflite", precision="fp32",
                     providers=(), provider_options=(), threads=1, tolerance={},
                     **io_map_fields(io_map, where="c"))
    assert cand.io_input_dtypes == {"ids": "int32"} and cand.to_dict()["io_map"] == io_map
    back = Candidate.from_dict(cand.to_dict(), where="c", default_threads=None)
    assert back.io_output_dtypes == {"label": "int32"}
    with pytest.raises(BundleFormatError, match="input_dtypes"):
        io_map_fields({"inputs": {}, "input_dtypes": {"ids": "complex64"}}, where="c")
    with pytest.raises(BundleFormatError, match="optionally"):
        io_map_fields({"inputs": {}, "layouts": {}}, where="c")
