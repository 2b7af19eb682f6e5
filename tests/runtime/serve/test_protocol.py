"""The Open Inference Protocol v2 bodies: JSON tensors and the binary tensor extension, both ways,
and every malformed request refused with a 400 and the reason."""
from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.serve.protocol import HEADER_LENGTH, RequestError, decode, encode, tensor_metadata
from runtime.signature import TensorSpec

INPUTS = [TensorSpec("x", "float32", ("batch", 4)), TensorSpec("ids", "int64", ("batch", 3))]
OUTPUTS = [TensorSpec("y", "float32", ("batch", 3)), TensorSpec("label", "int64", ("batch",))]
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 3
IDS = np.array([[1, 2, 3], [4, 5, 2**40]], np.int64)


def body(doc: dict[str, object], *blobs: bytes) -> tuple[bytes, str | None]:
    header = json.dumps(doc).encode()
    return (header + b"".join(blobs), str(len(header))) if blobs else (header, None)


def test_json_tensors_decode_to_the_arrays() -> None:
    raw, length = body({"id": "r1", "inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()},
        {"name": "ids", "shape": [2, 3], "datatype": "INT64", "data": IDS.tolist()}]})
    req = decode(raw, length, INPUTS, OUTPUTS)
    assert req.id == "r1" and req.outputs is None and not req.binary and not req.binary_default
    np.testing.assert_array_equal(req.feeds["x"], X)
    np.testing.assert_array_equal(req.feeds["ids"], IDS)  # 2**40 survives: no float detour
    assert req.feeds["x"].dtype == np.float32 and req.feeds["ids"].dtype == np.int64


def test_binary_tensors_decode_and_encode_byte_for_byte() -> None:
    raw, length = body({"inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": X.nbytes}},
        {"name": "ids", "shape": [2, 3], "datatype": "INT64", "parameters": {"binary_data_size": IDS.nbytes}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "y"}]},
        X.tobytes(), IDS.tobytes())
    req = decode(raw, length, INPUTS, OUTPUTS)
    np.testing.assert_array_equal(req.feeds["x"], X)
    np.testing.assert_array_equal(req.feeds["ids"], IDS)
    assert req.outputs == ["label", "y"] and req.binary == {"label"}
    y, label = np.ones((2, 3), np.float32) / 7, np.array([2, 0], np.int64)
    out, headers = encode("m", "1", req, {"y": y, "label": label}, ["y", "label"])
    size = int(headers[HEADER_LENGTH])
    doc = json.loads(out[:size])
    assert [o["name"] for o in doc["outputs"]] == ["label", "y"]  # as asked
    assert doc["outputs"][0] == {"name": "label", "datatype": "INT64", "shape": [2],
                                 "parameters": {"binary_data_size": 16}}
    assert np.frombuffer(out[size:], np.int64).tolist() == [2, 0]
    assert np.asarray(doc["outputs"][1]["data"], np.float32).tolist() == y.ravel().tolist()


def test_binary_data_output_applies_to_every_output() -> None:
    raw, length = body({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
                        "parameters": {"binary_data_output": True}})
    req = decode(raw, length, INPUTS[:1], OUTPUTS)
    out, headers = encode("m", "1", req, {"y": np.zeros((1, 3), np.float32), "label": np.zeros(1, np.int64)},
                          ["y", "label"])
    doc = json.loads(out[:int(headers[HEADER_LENGTH])])
    assert [o["parameters"]["binary_data_size"] for o in doc["outputs"]] == [12, 8]
    assert len(out) == int(headers[HEADER_LENGTH]) + 20


def test_metadata_marks_symbolic_axes() -> None:
    assert tensor_metadata(INPUTS[0]) == {"name": "x", "datatype": "FP32", "shape": [-1, 4]}


@pytest.mark.parametrize(("doc", "length", "blob", "says"), [
    ("{", None, b"", "not valid JSON"),
    ('{"inputs": 3}', None, b"", "an 'inputs' list"),
    ('{"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}', None, b"", "no input 'z'"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1]}]}', None, b"", "datatype 'FP99'"),
    ('{"inputs": [{"name": "x", "shape": [1, -4], "datatype": "FP32", "data": [1]}]}', None, b"",
     "non-negative integers"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]}', None, b"",
     "holds 2 values, shape [1, 4] needs 4"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]}', None, b"",
     "does not hold FP32 values"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}',
     "auto", b"\0" * 8, "binary_data_size 8 is not 4 x 4 bytes"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}',
     "auto", b"\0" * 8, "the body ends before its 16 binary bytes"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}', "auto", b"\0" * 4,
     "4 binary bytes after the last binary input"),
    ('{"inputs": []}', "999", b"", "Inference-Header-Content-Length is 999"),
    ('{"inputs": [], "outputs": [{"name": "nope"}]}', None, b"", "no output 'nope'"),
])
def test_malformed_requests_are_refused_with_the_reason(doc: str, length: str | None, blob: bytes, says: str) -> None:
    raw = doc.encode() + blob
    header = str(len(doc.encode())) if length == "auto" else length
    with pytest.raises(RequestError) as info:
        decode(raw, header, INPUTS, OUTPUTS)
    assert info.value.status == 400 and says in info.value.message, info.value.message
