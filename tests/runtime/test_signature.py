"""Feed validation: every bad feed is a FeedError naming the input, nothing else escapes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from runtime.errors import BundleFormatError, FeedError
from runtime.signature import FeedValidator, Signature, TensorSpec, validate_feeds

INPUTS = (TensorSpec("image", "float32", ("batch", 3, 4)),
          TensorSpec("mask", "int64", ("batch", 4)))


def feeds(batch: int = 2, **override: object) -> dict:
    base = {"image": np.zeros((batch, 3, 4), np.float32), "mask": np.zeros((batch, 4), np.int64)}
    base.update(override)
    return base


def test_good_feeds_pass() -> None:
    validate_feeds(feeds(), INPUTS)
    validate_feeds(feeds(batch=0), INPUTS)


def test_missing_input() -> None:
    f = feeds()
    del f["mask"]
    with pytest.raises(FeedError, match="missing input") as info:
        validate_feeds(f, INPUTS)
    assert info.value.where == "mask"


def test_unexpected_input_did_you_mean() -> None:
    f = feeds()
    f["imag"] = f.pop("image")
    with pytest.raises(FeedError, match="unexpected input") as info:
        validate_feeds(f, INPUTS)
    assert info.value.where == "imag" and "did you mean 'image'" in (info.value.hint or "")


def test_dtype_is_exact_with_cast_hint() -> None:
    with pytest.raises(FeedError, match="float64 does not match float32") as info:
        validate_feeds(feeds(image=np.zeros((2, 3, 4))), INPUTS)
    assert info.value.where == "image" and "astype(np.float32)" in (info.value.hint or "")


def test_not_an_array() -> None:
    with pytest.raises(FeedError, match="expected a numpy array") as info:
        validate_feeds(feeds(mask=[[0, 0, 0, 0]]), INPUTS)
    assert info.value.where == "mask"
    with pytest.raises(FeedError, match="feeds must be a dict"):
        validate_feeds([np.zeros(3)], INPUTS)


def test_rank_and_fixed_dims() -> None:
    with pytest.raises(FeedError, match="rank 2") as info:
        validate_feeds(feeds(image=np.zeros((3, 4), np.float32)), INPUTS)
    assert info.value.where == "image"
    with pytest.raises(FeedError, match="axis 2 has size 5, expected 4"):
        validate_feeds(feeds(image=np.zeros((2, 3, 5), np.float32)), INPUTS)


def test_symbolic_dims_consistent_across_inputs() -> None:
    with pytest.raises(FeedError, match="'batch'") as info:
        validate_feeds(feeds(mask=np.zeros((3, 4), np.int64)), INPUTS)
    assert info.value.where == "mask"


def test_symbolic_dim_repeated_within_one_input() -> None:
    square = (TensorSpec("m", "float32", ("n", "n")),)
    validate_feeds({"m": np.zeros((3, 3), np.float32)}, square)
    with pytest.raises(FeedError, match="'n'"):
        validate_feeds({"m": np.zeros((3, 2), np.float32)}, square)


def test_signature_from_dict_errors() -> None:
    ok = {"inputs": [{"name": "x", "dtype": "float32", "shape": ["b", 2]}],
          "outputs": [{"name": "y", "dtype": "float32", "shape": ["b"], "scores": True}]}
    sig = Signature.from_dict(ok, where="sig")
    assert sig.outputs[0].scores is True and sig.to_dict() == ok
    for bad in ({"inputs": [], "outputs": ok["outputs"]},
                {"inputs": [{"name": "x", "dtype": "nope", "shape": [1]}], "outputs": ok["outputs"]},
                {"inputs": [{"name": "x", "dtype": "float32", "shape": [1.5]}],
                 "outputs": ok["outputs"]},
                {"inputs": ok["inputs"] * 2, "outputs": ok["outputs"]}):
        with pytest.raises(BundleFormatError):
            Signature.from_dict(bad, where="sig")


dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_])
arrays = hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                          max_side=5))
values = st.one_of(arrays, st.none(), st.integers(), st.text(max_size=3),
                   st.lists(st.floats(allow_nan=False), max_size=3))
names = st.sampled_from(["image", "mask", "imag", "x", ""])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.dictionaries(names, values, max_size=4), values))
def test_arbitrary_feeds_validate_or_raise_feed_error(candidate: object) -> None:
    check = FeedValidator(INPUTS)
    try:
        check(candidate)
    except FeedError as exc:
        assert exc.message
        return
    # Validated: then it really matches the signature.
    assert isinstance(candidate, dict) and set(candidate) == {"image", "mask"}
    assert candidate["image"].dtype == np.float32 and candidate["image"].shape[1:] == (3, 4)
    assert candidate["image"].shape[0] == candidate["mask"].shape[0]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 4), st.integers(0, 4), st.integers(2, 5))
def test_generated_shapes(b1: int, b2: int, w: int) -> None:
    f = feeds(image=np.zeros((b1, 3, w), np.float32), mask=np.zeros((b2, 4), np.int64))
    if b1 == b2 and w == 4:
        validate_feeds(f, INPUTS)
    else:
        with pytest.raises(FeedError):
            validate_feeds(f, INPUTS)


def test_any_mapping_is_accepted() -> None:
    from types import MappingProxyType
    validate_feeds(MappingProxyType(feeds()), INPUTS)


def test_unexpected_key_reported_before_missing_and_before_bad_arrays() -> None:
    """With as many keys as inputs, a wrong name is still reported first (not a later check)."""
    f = {"image": np.zeros((2, 3, 4), np.float64), "maks": np.zeros((2, 4), np.int64)}
    with pytest.raises(FeedError, match="unexpected input") as info:
        validate_feeds(f, INPUTS)
    assert info.value.where == "maks"


def test_fixed_shape_mismatch_names_the_axis() -> None:
    fixed = (TensorSpec("x", "float32", (1, 3, 4)),)
    validate_feeds({"x": np.zeros((1, 3, 4), np.float32)}, fixed)
    with pytest.raises(FeedError, match=r"axis 1 has size 2, expected 3 \(shape \[1, 2, 4\]"):
        validate_feeds({"x": np.zeros((1, 2, 4), np.float32)}, fixed)


def test_symbol_used_once_is_free_and_repeated_symbol_is_checked() -> None:
    specs = (TensorSpec("a", "float32", ("n", 2)), TensorSpec("b", "float32", ("m", "n")))
    validate_feeds({"a": np.zeros((3, 2), np.float32), "b": np.zeros((7, 3), np.float32)}, specs)
    with pytest.raises(FeedError, match=r"axis 1 \('n'\) has size 4 but 'a' axis 0 has 'n' = 3"):
        validate_feeds({"a": np.zeros((3, 2), np.float32), "b": np.zeros((7, 4), np.float32)},
                       specs)
