"""Safe bundle updates of a running ``python -m runtime serve``: uploaded with tritonclient's
``load_model`` (Triton's repository extension, bearer token) or dropped into ``--watch DIR``;
verified while the old version serves, swapped only when it passes, rolled back when it fails on
live traffic, every step logged. Each refusal is checked to have really happened: the version
served stays the old one and the log says why."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime import load

from ..conftest import B, W, build_bundle, make_archive
from .test_server import Server

tritonclient_http = pytest.importorskip("tritonclient.http")  # in the dev extras; a failure under CI=true
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "0123456789abcdef-update-token"
X = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)


def fragile_onnx() -> bytes:
    """The tiny model's exact outputs plus 0 * min(sqrt(x + 10)): the same on golden inputs, NaN for
    any input below -10, which only live traffic sends."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["r"]), helper.make_node("Add", ["x", "ten"], ["shifted"]),
         helper.make_node("Sqrt", ["shifted"], ["root"]),
         helper.make_node("ReduceMin", ["root"], ["low"], axes=[1], keepdims=1),
         helper.make_node("Mul", ["low", "zero"], ["nothing"]), helper.make_node("Add", ["r", "nothing"], ["y"]),
         helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0)],
        "fragile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b"),
                     numpy_helper.from_array(np.float32(10.0).reshape(()), "ten"),
                     numpy_helper.from_array(np.float32(0.0).reshape(()), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def archive(tmp: Path, name: str, **kwargs: Any) -> bytes:
    return make_archive(build_bundle(tmp / name, **kwargs)).read_bytes()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Path]]]:
    """A server on a v1 bundle with updates on (state dir, token file); extra serve options allowed."""
    servers: list[Server] = []

    def start(*extra: str, token: bool = True) -> tuple[Server, Path]:
        state = tmp_path / f"state{len(servers)}"
        (tmp_path / "token").write_text(TOKEN + "\n")
        args = ["--state-dir", str(state), "--probation", "3", *extra]
        if token:
            args += ["--update-token-file", str(tmp_path / "token")]
        server = Server(build_bundle(tmp_path / f"v1-{len(servers)}"), *args)
        assert server.state["state"] == "ready", server.state
        servers.append(server)
        return server, state

    yield start
    for s in servers:
        s.stop()


def client(server: Server) -> Any:
    return tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))


def infer(server: Server, x: np.ndarray) -> tuple[np.ndarray, str]:
    inp = tritonclient_http.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client(server).infer(server.model, [inp])
    return result.as_numpy("y"), result.get_response()["model_version"]


def meta(server: Server) -> dict[str, Any]:
    return json.loads(server.get(f"/v2/models/{server.model}")[1])["parameters"]


def events(state: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (state / "updates.jsonl").read_text().splitlines()]


def upload(server: Server, data: bytes, token: str | None = TOKEN) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    client(server).load_model(server.model, headers=headers, files={"file:tiny.tar.gz": data})


def test_upload_verifies_swaps_and_keeps_after_probation(served: Callable[..., tuple[Server, Path]],
                                                         tmp_path: Path) -> None:
    server, state = served()
    v2 = archive(tmp_path, "v2", samples=4)
    upload(server, v2)
    assert meta(server)["version"] == 2 and meta(server)["previous_version"] == 1
    assert (state / "current.tar.gz").read_bytes() == v2 and (state / "versions" / "v2.tar.gz").is_file()
    assert events(state) == ["serving", "received", "swapped"]
    with load(build_bundle(tmp_path / "ref")) as model:
        want = model.run({"x": X})["y"]
    for _ in range(3):  # the probation: 3 healthy answers, then v2 is kept
        y, version = infer(server, X)
        np.testing.assert_array_equal(y, want)
        assert version == "2"
    assert events(state)[-1] == "kept"
    index = client(server).get_model_repository_index()
    assert index == [{"name": "tiny", "version": "2", "state": "READY", "reason": ""}]


@pytest.mark.parametrize(("make", "status", "says"), [
    (lambda tmp: b"\x1f\x8b not really a gzip", 400, "update refused, still serving version 1"),
    (lambda tmp: archive(tmp, "bad", perturb=0.5), 422, "golden parity failed on this device"),
    (lambda tmp: archive(tmp, "other", outputs=("y",)), 409, "its signature differs"),
])
def test_a_bad_bundle_is_refused_and_the_old_one_serves_on(served: Callable[..., tuple[Server, Path]], tmp_path: Path,
                                                           make: Callable[[Path], bytes], status: int,
                                                           says: str) -> None:
    server, state = served()
    with pytest.raises(InferenceServerException) as info:
        upload(server, make(tmp_path))
    assert info.value.status() == str(status) and says in info.value.message(), info.value
    assert meta(server)["version"] == 1 and not (state / "current.tar.gz").exists()
    assert events(state) == ["serving", "received", "refused"]
    assert infer(server, X)[1] == "1"


def test_updates_need_the_token(served: Callable[..., tuple[Server, Path]], tmp_path: Path) -> None:
    server, state = served()
    data = archive(tmp_path, "v2")
    for token, status, says in ((None, "401", "Authorization: Bearer"), ("wrong-token", "403", "token is wrong")):
        with pytest.raises(InferenceServerException) as info:
            upload(server, data, token)
        assert info.value.status() == status and says in info.value.message()
    assert events(state) == ["serving"]  # refused before anything was received
    closed, _ = served(token=False)
    with pytest.raises(InferenceServerException) as info:
        upload(closed, data)
    assert info.value.status() == "403" and "--update-token-file" in info.value.message()


def test_an_unsigned_bundle_is_refused_when_serving_with_a_key(served: Callable[..., tuple[Server, Path]],
                                                               tmp_path: Path) -> None:
    from packager.bundle.signing import generate_keypair, load_private_key, sign
    private, public = generate_keypair(tmp_path / "keys")
    v1 = build_bundle(tmp_path / "signed")
    (v1 / "bundle.sig").write_text(json.dumps(sign((v1 / "bundle.json").read_bytes(), load_private_key(private))))
    (tmp_path / "tok").write_text(TOKEN)
    server = Server(v1, "--key", str(public), "--state-dir", str(tmp_path / "st"),
                    "--update-token-file", str(tmp_path / "tok"))
    try:
        assert server.state["state"] == "ready", server.state
        with pytest.raises(InferenceServerException) as info:
            upload(server, archive(tmp_path, "unsigned"))
        assert info.value.status() == "400" and "bundle is not signed (no bundle.sig)" in info.value.message()
        assert meta(server)["version"] == 1
    finally:
        server.stop()


def test_a_version_failing_on_live_traffic_rolls_back_and_no_request_sees_it(
        served: Callable[..., tuple[Server, Path]], tmp_path: Path) -> None:
    server, state = served()
    fragile = archive(tmp_path, "fragile", onnx_model=False, artifacts={"models/tiny.fp32.onnx": fragile_onnx()})
    upload(server, fragile)  # it passes golden parity: its golden inputs are all above -10
    assert meta(server)["version"] == 2
    odd = X.copy()
    odd[0, 0] = -20.0  # live traffic the golden data never had: v2 answers NaN
    y, version = infer(server, odd)
    with load(build_bundle(tmp_path / "ref")) as model:
        np.testing.assert_array_equal(y, model.run({"x": odd})["y"])  # answered by v1, finite
    assert version == "1" and np.isfinite(y).all()
    assert events(state)[-1] == "rolled_back" and meta(server)["version"] == 1
    last = meta(server)["updates"][-1]
    assert last["version"] == 2 and last["to"] == 1 and "non-finite" in last["reason"]
    assert not (state / "current.tar.gz").exists()  # a restart serves the bundle it started with


def test_a_watched_folder_takes_good_bundles_and_refuses_bad_ones(served: Callable[..., tuple[Server, Path]],
                                                                  tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    server, state = served("--watch", str(drop), token=False)
    (drop / "v2.tar.gz").write_bytes(archive(tmp_path, "v2", samples=4))
    (drop / "broken.tar.gz").write_bytes(b"not an archive")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ((drop / "accepted" / "v2.tar.gz").exists()
                                               and (drop / "refused" / "broken.tar.gz").exists()):
        time.sleep(0.2)
    assert (drop / "accepted" / "v2.tar.gz").exists() and not (drop / "v2.tar.gz").exists()
    reason = (drop / "refused" / "broken.tar.gz.reason.txt").read_text()
    assert "update refused" in reason
    assert meta(server)["version"] in (2, 3)  # the broken one took a number too, and was refused
    assert sorted(events(state)[1:]) == sorted(["received", "swapped", "received", "refused"])
    assert infer(server, X)[1] == str(meta(server)["version"])


@pytest.mark.parametrize(("token", "extra", "says"), [
    (TOKEN, (), "add --state-dir DIR"),
    ("short", ("--state-dir", "../st"), "at least 16 are needed"),
    (TOKEN, ("--state-dir", "st"), "would write into the bundle folder"),
])
def test_update_options_are_checked_before_listening(tmp_path: Path, token: str, extra: tuple[str, ...],
                                                     says: str) -> None:
    import subprocess
    import sys
    bundle = build_bundle(tmp_path / "b")
    (tmp_path / "token").write_text(token)
    proc = subprocess.run([sys.executable, "-m", "runtime", "serve", ".", "--port", "0", "--update-token-file",
                           str(tmp_path / "token"), *extra], cwd=bundle, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
