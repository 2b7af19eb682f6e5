"""Fuzz what the runtime reads from others: feeds given to ``Model.run`` (every backend) and
bundle.json documents. Any input either works or raises our error type (FeedError for feeds,
RuntimeBundleError for bundles); a TypeError, KeyError, IndexError... is a bug that would reach a
device user as a traceback."""
from __future__ import annotations

import copy
import json
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from runtime.bundle import BUNDLE_FILE, Bundle, open_bundle, read_bundle
from runtime.errors import BundleFormatError, FeedError, RuntimeBundleError
from runtime.model import Model, load

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

# --------------------------------------------------------------------------- feeds

DTYPES = st.sampled_from([
    "float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64", "uint64",
    "bool", "complex64", ">f4", "<f4", "U3", "S2", "O", "M8[s]", "m8[ms]", "V4",
    [("a", "<f4"), ("b", "<i4")]])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def any_array(draw: st.DrawFn) -> np.ndarray:
    """Random dtype/shape/content, including NaN/inf, object and structured arrays, odd strides,
    read-only memory."""
    dtype = np.dtype(draw(DTYPES))
    shape = draw(SHAPES)
    if dtype.kind == "O":
        arr = np.empty(shape, dtype=object)
        arr[...] = draw(st.sampled_from([None, 1, "x", 1.5]))
    elif dtype.kind == "V" and dtype.fields is None:  # raw bytes: hypothesis has no strategy
        arr = np.zeros(shape, dtype)
    elif dtype.kind in "fc":
        arr = draw(hnp.arrays(dtype, shape, elements=st.floats(width=32, allow_nan=True,
                                                               allow_infinity=True)
                              if dtype.kind == "f" and dtype.itemsize >= 4 else None))
    else:
        arr = draw(hnp.arrays(dtype, shape))
    if arr.ndim and draw(st.booleans()):
        arr = arr[::-1]  # negative strides
    if draw(st.booleans()):
        arr.flags.writeable = False
    return arr


@st.composite
def plausible_x(draw: st.DrawFn) -> np.ndarray:
    """Mostly-right feeds for x (float32[batch, 4]), so many examples reach the backend."""
    batch = draw(st.integers(0, 6))
    width = draw(st.sampled_from([4, 4, 4, 3, 5]))
    dtype = draw(st.sampled_from(["float32", "float32", "float32", "float64", ">f4"]))
    arr = draw(hnp.arrays(np.dtype(dtype), (batch, width),
                          elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
    if draw(st.booleans()) and arr.ndim == 2 and arr.shape[1] > 1:
        arr = np.asarray(arr.T.copy().T)  # Fortran order
    return arr


NON_ARRAYS = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=4),
                       st.lists(st.floats(allow_nan=False), max_size=4),
                       st.lists(st.lists(st.floats(width=32), min_size=4, max_size=4),
                                max_size=3),
                       st.builds(object), st.just(np.float32(1.0)), st.just(memoryview(b"abcd")))
VALUES = st.one_of(plausible_x(), any_array(), NON_ARRAYS)
KEYS = st.one_of(st.sampled_from(["x", "x", "X", "y", "label", "", "x "]), st.integers(),
                 st.text(max_size=3), st.tuples(st.integers()), st.none())
FEEDS = st.one_of(st.dictionaries(KEYS, VALUES, max_size=3),
                  st.fixed_dictionaries({"x": VALUES}),
                  VALUES, st.lists(VALUES, max_size=2), st.tuples(st.just("x"), VALUES))


def _model(kind: str, root: Path, kit: types.ModuleType) -> Model:
    if kind == "onnxruntime":
        return load(kit.build_bundle(root))
    if kind == "tflite":
        pytest.importorskip("ai_edge_litert")
        pytest.importorskip("tensorflow")
        return load(kit.build_bundle(
            root, artifacts={"models/tiny.fp32.tflite": kit.make_tflite("fp32")},
            onnx_model=False, candidates=[kit.candidate(
                "tfl", "models/tiny.fp32.tflite", backend="tflite",
                io_map=kit.TFLITE_IO_MAP["fp32"])]))
    pytest.importorskip("torch")
    return load(kit.build_bundle(
        root, artifacts={"models/tiny.fp32.pt": kit.make_torchscript("fp32")},
        onnx_model=False, candidates=[kit.candidate("ts", "models/tiny.fp32.pt",
                                                    backend="torchscript")]))


@pytest.fixture(scope="module", params=["onnxruntime", "tflite", "torchscript"])
def fuzz_model(request: pytest.FixtureRequest, kit: types.ModuleType,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    model = _model(request.param, tmp_path_factory.mktemp(f"fuzz-{request.param}"), kit)
    with model:
        yield model


@FUZZ
@given(feeds=FEEDS)
def test_model_run_returns_outputs_or_raises_feed_error(fuzz_model: Model, feeds: Any) -> None:
    try:
        out = fuzz_model.run(feeds)
    except FeedError as exc:
        assert exc.message and exc.code == "bad-feed"
        return
    # It ran: the feed really was a float32[batch, 4] array under "x", and the outputs are whole.
    x = feeds["x"]
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape[1:] == (4,)
    assert set(out) == {"y", "label"}
    assert out["y"].shape == (x.shape[0], 3) and out["label"].shape == (x.shape[0],)
    finite = np.isfinite(x).all(axis=1)
    want = np.maximum(x[finite].astype(np.float64) @ _W() + _B(), 0)
    np.testing.assert_allclose(out["y"][finite], want, rtol=1e-4, atol=1e-4)


def _W() -> np.ndarray:
    from .conftest import W
    return W.astype(np.float64)


def _B() -> np.ndarray:
    from .conftest import B
    return B.astype(np.float64)


def test_empty_batch_is_a_feed_error_or_runs(fuzz_model: Model) -> None:
    """A batch of zero is where backends differ most; pinned down here, not left to luck."""
    try:
        out = fuzz_model.run({"x": np.zeros((0, 4), np.float32)})
    except FeedError as exc:
        assert "empty" in exc.message
    else:
        assert out["y"].shape == (0, 3)


# --------------------------------------------------------------------------- bundle.json

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2**70), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
# values that mean something to the parser, so mutations reach deep checks
MEANINGFUL = st.one_of(JSON, st.sampled_from([
    "", ".", "..", "/etc/passwd", "../x", "models/tiny.fp32.onnx", "onnxruntime", "tflite",
    "torchscript", "float32", "int8", "O", "batch", -1, 0, 1, 2, 1.5, True, [], {}, [[]], [{}],
    {"name": "x"}, {"atol": "1"}, {"inputs": {}, "outputs": {}}, ["CPUExecutionProvider"],
    "CPUExecutionProvider", [None], {"y": {}}, {"y": 3}, 2**64])).map(copy.deepcopy)
# (deep copies: a mutation must never edit the strategy's own constants)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys / indexes) into a JSON document."""
    found = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += _paths(v, prefix + (i,))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """The bundle's real bundle.json with 1-4 mutations: drop, replace, rename or add a key."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.integers(0, 9)) == 0:
                doc = draw(MEANINGFUL)
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        op = draw(st.sampled_from(["drop", "replace", "replace", "rename", "add"]))
        if op == "drop":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(MEANINGFUL)
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = parent.pop(last)
        elif op == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.text(max_size=8))] = draw(MEANINGFUL)
        elif op == "add" and isinstance(parent[last], list):
            parent[last].append(draw(MEANINGFUL))
    return doc


@pytest.fixture(scope="module")
def fuzz_bundle(kit: types.ModuleType, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Path, dict[str, Any]]:
    root = kit.build_bundle(tmp_path_factory.mktemp("fuzz-bundle"), candidates=[
        kit.candidate("onnx-fp32"), kit.candidate("tfl", "models/tiny.fp32.onnx",
                                                  backend="tflite"),
        kit.candidate("ts", "models/tiny.fp32.onnx", backend="torchscript")])
    return root, json.loads((root / BUNDLE_FILE).read_text())




@FUZZ
@given(data=st.data())
def test_mutated_bundle_json_loads_or_raises_our_error(fuzz_bundle: tuple[Path, dict],
                                                       data: st.DataObject) -> None:
    """Parse, hash-check and select on a real bundle dir whose bundle.json is mutated."""
    root, base = fuzz_bundle
    doc = data.draw(mutated(base))
    try:
        bundle = Bundle.from_dict(doc, root)
    except BundleFormatError as exc:
        assert exc.message
        return
    try:
        bundle.verify()
        with load(bundle, verify_hashes=False, tuned=False) as model:
            assert model.candidate["id"] in [c.id for c in bundle.candidates]
    except RuntimeBundleError as exc:
        assert exc.message


@FUZZ
@given(doc=JSON)
def test_random_json_documents_raise_format_error(fuzz_bundle: tuple[Path, dict],
                                                  doc: Any) -> None:
    with pytest.raises(BundleFormatError):
        Bundle.from_dict(doc, fuzz_bundle[0])


@FUZZ
@given(payload=st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    JSON.map(lambda d: json.dumps(d).encode()),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3).map(lambda n: b'{"schema_version": ' + b"9" * (5000 * n) + b"}")))
def test_random_bundle_json_files_raise_format_error(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / BUNDLE_FILE).write_bytes(payload)
        try:
            read_bundle(tmp)
        except BundleFormatError as exc:
            assert exc.message
        else:  # pragma: no cover - random bytes are never a valid bundle
            pytest.fail(f"accepted {payload[:60]!r}")


@FUZZ
@given(data=st.data())
def test_mutated_bundle_json_file_through_open_bundle(fuzz_bundle: tuple[Path, dict],
                                                      data: st.DataObject) -> None:
    """The same through the file: JSON text (NaN, huge ints included) read from disk."""
    _, base = fuzz_bundle
    doc = data.draw(mutated(base))
    text = json.dumps(doc, allow_nan=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / BUNDLE_FILE).write_text(text)
        try:
            open_bundle(tmp).verify()
        except RuntimeBundleError as exc:
            assert exc.message
