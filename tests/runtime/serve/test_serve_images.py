"""Serving a bundle that pre-processes images: encoded images in as BYTES (tritonclient's binary
tensors, base64 strings over JSON with curl), top-k labels out through Triton's classification
extension, every answer equal to pre-processing + ``Model.run`` here; readiness waits for the
end-to-end golden check."""
from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from packager.pipeline import build
from runtime import load
from runtime.bundle import open_bundle
from runtime.prepost import Processor

from ...conftest import image_manifest
from .test_server import Server

tritonclient_http = pytest.importorskip("tritonclient.http")  # in the dev extras; a failure under CI=true
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    from ...conftest import TINY_MODEL, tiny_manifest
    folder = tmp_path_factory.mktemp("serve-images")
    (folder / "tiny.py").write_text(TINY_MODEL)
    project: Callable[..., Path] = lambda **o: tiny_manifest(folder, **o)  # noqa: E731
    manifest = image_manifest(project, folder)(targets=["x86-cpu"])
    assert build(manifest, folder / "out").ok
    return folder / "out" / "tiny-x86-cpu", sorted((folder / "imgs").glob("*.png"))


@pytest.fixture(scope="module")
def server(images_bundle: tuple[Path, list[Path]]) -> Iterator[Server]:
    s = Server(images_bundle[0], "--prefer", "onnx-fp32")
    yield s
    s.stop()


def expected(bundle: Path, pngs: list[Path], k: int) -> tuple[np.ndarray, list[list[bytes]]]:
    """Pre-processing + Model.run here, and the classification strings Triton's extension defines."""
    opened = open_bundle(bundle)
    processor = Processor(opened)
    feeds = processor.feeds({"x": [p.read_bytes() for p in pngs]})
    with load(opened, prefer="onnx-fp32") as model:
        scores = model.run(feeds)["scores"]
    ranked = processor.top_k("scores", scores, k)
    return scores, [[f"{r.score:f}:{r.index}:{r.label}".encode() for r in row] for row in ranked]


def test_ready_after_the_end_to_end_check(server: Server) -> None:
    assert server.state["state"] == "ready", server.state
    assert server.state["verified"]["end_to_end"] == "passed"
    meta = json.loads(server.get(f"/v2/models/{server.model}")[1])
    assert meta["parameters"]["processing"]["outputs"]["scores"]["top_k"] == 2
    assert "classification" in json.loads(server.get("/v2")[1])["extensions"]


def test_tritonclient_sends_png_bytes_and_gets_labels(server: Server, images_bundle: tuple[Path, list[Path]]) -> None:
    bundle, pngs = images_bundle
    client = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
    image = tritonclient_http.InferInput("x", [3], "BYTES")
    image.set_data_from_numpy(np.array([p.read_bytes() for p in pngs[:3]], dtype=object), binary_data=True)
    result = client.infer(server.model, [image], outputs=[
        tritonclient_http.InferRequestedOutput("scores", binary_data=True, class_count=3)])
    scores, classes = expected(bundle, pngs[:3], 3)
    assert result.as_numpy("scores").tolist() == classes
    plain = client.infer(server.model, [image])  # no classification asked: the model's own scores
    np.testing.assert_array_equal(plain.as_numpy("scores"), scores)


def test_curl_sends_base64_json(server: Server, images_bundle: tuple[Path, list[Path]]) -> None:
    bundle, pngs = images_bundle
    body = json.dumps({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1],
                                   "data": [base64.b64encode(pngs[5].read_bytes()).decode()]}],
                       "outputs": [{"name": "scores", "parameters": {"classification": 2}}]})
    proc = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
                           body, f"{server.url}/v2/models/{server.model}/infer"],
                          capture_output=True, text=True, timeout=60, check=True)
    out = json.loads(proc.stdout)["outputs"][0]
    _, classes = expected(bundle, pngs[5:6], 2)
    assert out["datatype"] == "BYTES" and out["shape"] == [1, 2]
    assert out["data"] == [c.decode() for c in classes[0]]


@pytest.mark.parametrize(("item", "outputs", "says"), [
    ({"datatype": "BYTES", "shape": [1], "data": ["not base64!"]}, None, "not base64"),
    ({"datatype": "BYTES", "shape": [1], "data": [base64.b64encode(b"hello").decode()]}, None,
     "not an image format Pillow reads"),
    ({"datatype": "BYTES", "shape": [2], "data": [base64.b64encode(b"x").decode()]}, None, "1 image(s) for shape [2]"),
    ({"datatype": "FP32", "shape": [1, 1, 4, 4], "data": [0.5] * 16}, [{"name": "scores",
                                                                     "parameters": {"classification": 0}}],
     "classification must be a class count >= 1"),
])
def test_bad_image_requests_get_a_400_with_the_reason(server: Server, item: dict[str, object],
                                                      outputs: list[dict[str, object]] | None, says: str) -> None:
    body: dict[str, object] = {"inputs": [{"name": "x", **item}]}
    if outputs is not None:
        body["outputs"] = outputs
    status, text = server.post(f"/v2/models/{server.model}/infer", json.dumps(body).encode())
    assert status == 400 and says in json.loads(text)["error"], text
    assert server.get("/v2/health/ready")[0] == 200  # serving goes on
