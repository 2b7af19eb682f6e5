"""``python -m runtime serve`` as users run it: a real server process (the bundle's own runtime copy)
and real clients: the official ``tritonclient.http`` and the KServe SDK's v2 client (binary and
JSON tensors; the SDK from its own environment, scripts/side_env.py), curl, and plain HTTP for
what clients refuse to send. Every answer equals ``Model.run`` on the same input; a bundle
that fails golden parity on this device is never ready; bad requests get a 4xx and serving goes on."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from runtime import load

from ...conftest import side_env_python
from ..conftest import build_bundle

tritonclient_http = pytest.importorskip("tritonclient.http")  # in the dev extras; a failure under CI=true


class Server:
    """A ``python -m runtime serve`` process on a free port, run from inside the bundle."""

    def __init__(self, bundle: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "runtime", "serve", ".", "--port", "0", "--json", *args],
                                     cwd=bundle, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline())
        self.url, self.model, self.grpc = first["url"], first["model"], first.get("grpc")
        self.state = json.loads(self.proc.stdout.readline())  # the verdict, once the bundle verified

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, headers=headers or {}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("serve"), samples=8)


@pytest.fixture(scope="module")
def server(bundle: Path) -> Iterator[Server]:
    s = Server(bundle)
    yield s
    s.stop()


def test_ready_only_after_the_bundle_verified_here(server: Server) -> None:
    assert server.state["state"] == "ready", server.state
    assert server.state["verified"]["golden_parity"] == "passed"
    assert server.state["verified"]["candidate"] == "onnx-fp32"
    assert server.get("/v2/health/live") == (200, b'{"live": true}')  # KServe's bodies; Triton reads the status
    assert server.get("/v2/health/ready") == (200, b'{"ready": true}')
    assert json.loads(server.get(f"/v2/models/{server.model}/ready")[1]) == {"name": "tiny", "ready": True}
    status, meta = server.get(f"/v2/models/{server.model}")
    doc = json.loads(meta)
    assert status == 200 and doc["name"] == "tiny" and doc["platform"] == "edgepack/onnxruntime"  # bundle.json name
    assert doc["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert doc["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]},
                              {"name": "label", "datatype": "INT64", "shape": [-1]}]
    extensions = json.loads(server.get("/v2")[1])["extensions"]
    assert extensions == ["binary_tensor_data", "classification", "model_repository"]


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_gets_what_model_run_gives(server: Server, bundle: Path, binary: bool) -> None:
    client = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready(server.model)
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    tensor = tritonclient_http.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [tritonclient_http.InferRequestedOutput(n, binary_data=binary) for n in ("y", "label")]
    result = client.infer(server.model, [tensor], outputs=outputs, request_id="req-7")
    want = load(bundle).run({"x": x})
    np.testing.assert_array_equal(result.as_numpy("y"), want["y"])
    np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
    assert result.get_response()["id"] == "req-7"


def test_the_kserve_sdk_client_gets_what_model_run_gives(server: Server, bundle: Path, tmp_path: Path) -> None:
    python = side_env_python("kserve")
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    proc = subprocess.run([str(python), str(Path(__file__).with_name("kserve_client.py")), server.url, server.model,
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"live": True, "ready": True, "model_ready": True}
    got, want = np.load(tmp_path / "out.npz"), load(bundle).run({"x": x})
    for kind in ("json", "binary"):
        np.testing.assert_array_equal(got[f"{kind}:y"], want["y"])
        np.testing.assert_array_equal(got[f"{kind}:label"], want["label"])


def test_curl_gets_json_tensors(server: Server, bundle: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (apt-get install curl)")
    x = [[0.5, -1.0, 2.0, 0.25]]
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x}]})
    proc = subprocess.run(["curl", "-s", "-X", "POST", f"{server.url}/v2/models/{server.model}/infer", "-d", body],
                          capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout)
    want = load(bundle).run({"x": np.asarray(x, np.float32)})
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["y"]["shape"] == [1, 3] and outputs["y"]["datatype"] == "FP32"
    np.testing.assert_array_equal(np.asarray(outputs["y"]["data"], np.float32).reshape(1, 3), want["y"])
    assert outputs["label"]["data"] == want["label"].tolist()


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("/v2/models/{m}/infer", b"{not json", 400, "not valid JSON"),
    ("/v2/models/{m}/infer", b'{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", '
                             b'"data": [1, 2, 3, 4, 5]}]}', 400, "x"),
    ("/v2/models/{m}/infer", b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", '
                             b'"data": [1, 2, 3, 4]}]}', 400, "int64"),
    ("/v2/models/{m}/infer", b'{"inputs": []}', 400, "x"),
    ("/v2/models/other/infer", b'{"inputs": []}', 404, "no model 'other'"),
    ("/v2/models/{m}/versions/2/infer", b'{"inputs": []}', 404, "no version '2'"),
    ("/v2/models/{m}/explain", b"{}", 404, "no such endpoint"),
])
def test_bad_requests_get_a_4xx_with_the_reason_and_serving_goes_on(server: Server, path: str, body: bytes,
                                                                    status: int, says: str) -> None:
    got, answer = server.post(path.format(m=server.model), body)
    assert got == status and says in json.loads(answer)["error"], (got, answer)
    ok, _ = server.post(f"/v2/models/{server.model}/infer",
                        b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}')
    assert ok == 200


def test_an_oversized_body_is_refused_before_it_is_read(bundle: Path) -> None:
    small = Server(bundle, "--max-body-mb", "0.001")
    try:
        status, answer = small.post(f"/v2/models/{small.model}/infer", b" " * 4096)
        assert status == 413 and "over this server's limit (1048;" in json.loads(answer)["error"]
        assert small.get("/v2/health/ready")[0] == 200  # and it still serves
    finally:
        small.stop()


def test_a_bundle_that_fails_parity_here_is_never_ready(tmp_path: Path) -> None:
    bad = build_bundle(tmp_path, samples=8, perturb=0.5)  # golden outputs this device does not reproduce
    server = Server(bad)
    try:
        assert server.state["state"] == "failed" and "golden parity failed" in server.state["reason"]
        assert server.get("/v2/health/live")[0] == 200  # live, to say why
        assert server.get("/v2/health/ready") == (503, b'{"ready": false}')
        status, answer = server.post(f"/v2/models/{server.model}/infer", b'{"inputs": []}')
        assert status == 503 and "golden parity failed" in json.loads(answer)["error"]
        meta = json.loads(server.get(f"/v2/models/{server.model}")[1])
        assert meta["parameters"]["state"] == "failed"
    finally:
        server.stop()


def test_a_tampered_bundle_is_refused_at_start(tmp_path: Path) -> None:
    root = build_bundle(tmp_path, samples=8)
    (root / "models" / "tiny.fp32.onnx").write_bytes(b"planted")  # the file really was replaced
    proc = subprocess.run([sys.executable, "-m", "runtime", "serve", ".", "--port", "0"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2  # refused before it listens: it never served
    assert "tiny.fp32.onnx" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _metric(text: str, name: str) -> float:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ") or ln.startswith(name + "{")]
    return float(line.rsplit(" ", 1)[1])


def test_dynamic_batching_answers_each_request_as_model_run_would(bundle: Path) -> None:
    server = Server(bundle, "--max-batch", "8", "--max-delay-ms", "200")
    try:
        meta = json.loads(server.get(f"/v2/models/{server.model}")[1])
        assert meta["parameters"]["dynamic_batching"] == {"enabled": True, "max_batch": 8, "max_delay_ms": 200.0,
                                                          "batch_threads": 2}
        rng = np.random.default_rng(9)
        xs = [rng.standard_normal((1 + i % 2, 4)).astype(np.float32) for i in range(12)]
        answers: list[dict[str, object] | None] = [None] * len(xs)
        start = threading.Barrier(len(xs))

        def post(i: int) -> None:
            body = json.dumps({"inputs": [{"name": "x", "shape": list(xs[i].shape), "datatype": "FP32",
                                           "data": xs[i].ravel().tolist()}]}).encode()
            start.wait()
            status, answer = server.post(f"/v2/models/{server.model}/infer", body)
            assert status == 200, answer
            answers[i] = {o["name"]: o for o in json.loads(answer)["outputs"]}

        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        model = load(bundle)
        for x, answer in zip(xs, answers, strict=True):
            assert answer is not None
            want = model.run({"x": x})
            got = np.asarray(answer["y"]["data"], np.float32).reshape(answer["y"]["shape"])  # type: ignore[index]
            np.testing.assert_array_equal(got, want["y"])  # identical to an unbatched run
        metrics = server.get("/metrics")[1].decode()
        runs = _metric(metrics, "edgepack_batch_requests_count")
        assert runs < len(xs)  # requests really shared model runs
        assert _metric(metrics, "edgepack_batch_requests_sum") == len(xs)
        assert _metric(metrics, "edgepack_batch_samples_sum") == sum(len(x) for x in xs)
        assert _metric(metrics, 'edgepack_requests_total{endpoint="infer",code="200"}') == len(xs)
        assert _metric(metrics, "edgepack_infer_seconds_count") == len(xs)
        assert 'candidate="onnx-fp32"' in metrics and 'edgepack_model_ready{model="tiny"} 1' in metrics
    finally:
        server.stop()


def test_metrics_count_refusals_too(server: Server) -> None:
    before = server.get("/metrics")[1].decode()
    key = 'edgepack_requests_total{endpoint="infer",code="400"}'
    count = _metric(before, key) if key in before else 0.0
    server.post(f"/v2/models/{server.model}/infer", b"{")
    after = server.get("/metrics")[1].decode()
    assert _metric(after, key) == count + 1
    assert "# TYPE edgepack_infer_seconds histogram" in after


def test_grpc_with_the_kserve_sdk_gets_what_model_run_gives(bundle: Path, tmp_path: Path) -> None:
    """``--grpc-port``: the KServe SDK's InferenceGRPCClient (its own environment) sends typed and raw
    contents to the same bundle; every answer equals Model.run."""
    python = side_env_python("kserve")
    s = Server(bundle, "--grpc-port", "0")
    try:
        assert s.state["state"] == "ready"
        x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
        np.savez(tmp_path / "in.npz", x=x)
        proc = subprocess.run([str(python), str(Path(__file__).with_name("kserve_grpc_client.py")), s.grpc, s.model,
                               str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"live": True, "ready": True, "model_ready": True}
        with load(bundle, prefer="onnx-fp32") as model:
            want = model.run({"x": x})
        with np.load(tmp_path / "out.npz") as got:
            for kind in ("typed", "raw"):
                np.testing.assert_array_equal(got[f"{kind}:y"], want["y"])
                np.testing.assert_array_equal(got[f"{kind}:label"], want["label"])
    finally:
        s.stop()
