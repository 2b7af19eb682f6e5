"""The gRPC service of ``serve --grpc-port``: messages built in code are the published proto's (a
request made with them parses in the KServe SDK's generated classes is checked in test_server), and
a live server answers good and bad calls with the status and reason a client shows."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from runtime import load
from runtime.serve.grpc_proto import messages
from runtime.serve.grpc_server import decode_request
from runtime.serve.protocol import RequestError
from runtime.signature import TensorSpec

from ..conftest import build_bundle
from .test_server import Server

M = messages()
INPUTS = [TensorSpec("x", "float32", ("batch", 4))]


def request(x: np.ndarray, *, raw: bool, model: str = "tiny") -> Any:
    req = M["ModelInferRequest"](model_name=model, id="r1")
    item = req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    if raw:
        req.raw_input_contents.append(x.astype("<f4").tobytes())
    else:
        item.contents.fp32_contents.extend(x.ravel().tolist())
    return req


def test_decode_typed_raw_and_bytes() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    for raw in (True, False):
        feeds, data = decode_request(request(x, raw=raw), INPUTS, {})
        np.testing.assert_array_equal(feeds["x"], x)
        assert data == {}
    req = M["ModelInferRequest"](model_name="tiny")
    req.inputs.add(name="text", datatype="BYTES", shape=[2])
    req.raw_input_contents.append(b"".join(len(t).to_bytes(4, "little") + t for t in (b"hello", b"hi there")))
    assert decode_request(req, INPUTS, {"text": "text"})[1] == {"text": [b"hello", b"hi there"]}


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda r: setattr(r.inputs[0], "name", "nope"), "has no input 'nope'"),
    (lambda r: r.inputs[0].shape.append(2), "raw bytes are not 16 x 4"),
    (lambda r: setattr(r.inputs[0], "datatype", "FP8"), "datatype 'FP8' is not one of"),
    (lambda r: r.raw_input_contents.append(b"x"), "raw_input_contents holds 2 entries for 1 inputs"),
])
def test_bad_requests_say_why(mutate: Any, says: str) -> None:
    req = request(np.zeros((2, 4), np.float32), raw=True)
    mutate(req)
    with pytest.raises(RequestError, match=says):
        decode_request(req, INPUTS, {})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    bundle = build_bundle(tmp_path_factory.mktemp("grpc"))
    server = Server(bundle, "--grpc-port", "0")
    yield server, bundle
    server.stop()


def call(server: Server, method: str, req: Any) -> Any:
    with grpc.insecure_channel(server.grpc) as channel:
        stub = channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                                   request_serializer=type(req).SerializeToString,
                                   response_deserializer=M[f"{method}Response"].FromString)
        return stub(req, timeout=30)


def test_a_live_server_answers_like_model_run_and_refuses_with_the_status(served: tuple[Server, Path]) -> None:
    server, bundle = served
    assert call(server, "ServerReady", M["ServerReadyRequest"]()).ready
    meta = call(server, "ModelMetadata", M["ModelMetadataRequest"](name="tiny"))
    assert [t.name for t in meta.inputs] == ["x"] and list(meta.inputs[0].shape) == [-1, 4]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    answer = call(server, "ModelInfer", request(x, raw=False))
    assert answer.model_version == "1" and answer.id == "r1" and [o.name for o in answer.outputs] == ["y", "label"]
    with load(bundle, prefer="onnx-fp32") as model:
        want = model.run({"x": x})
    np.testing.assert_array_equal(np.frombuffer(answer.raw_output_contents[0], "<f4").reshape(3, 3), want["y"])
    np.testing.assert_array_equal(np.frombuffer(answer.raw_output_contents[1], "<i8"), want["label"])
    with pytest.raises(grpc.RpcError) as info:
        call(server, "ModelInfer", request(x, raw=True, model="other"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "this server serves 'tiny'" in info.value.details()
    bad = request(x, raw=True)
    bad.inputs[0].datatype = "INT64"
    with pytest.raises(grpc.RpcError) as info:
        call(server, "ModelInfer", bad)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "raw bytes are not" in info.value.details()
    assert call(server, "ServerLive", M["ServerLiveRequest"]()).live  # serving goes on
