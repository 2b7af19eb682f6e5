"""``python -m runtime serve`` against ``Model.run``: what serving a bundle over HTTP costs per
request, and what dynamic batching buys under concurrent clients.

Parts (``--only``):

- ``overhead``: the digits CNN (its x86-cpu bundle, onnx-fp32), batch 1, one client: a real
  server process (the bundle's own runtime, ``--prefer onnx-fp32``) and one persistent HTTP/1.1
  connection posting binary tensors (the request encoded once and the answer read by its
  Content-Length, as a C client or geventhttpclient does), against ``Model.run`` on the same input
  in this process; Python's ``http.client`` on its own connection is timed in the same rounds
  (what that client adds). Rounds alternate (the order flips every round); the figure is the
  median over rounds of (request round trip - Model.run). Goal: <= 0.3 ms.
- ``batching``: MobileNetV2 (224x224, fp32 ONNX), 16 client threads each posting single images
  for a fixed time, against a server without batching and one with ``--max-batch 16
  --max-delay-ms 5`` (and the default 2 batch threads); throughput (answers per second) and
  per-request p50 / p99, each answer checked against ``Model.run`` on its image. Goal: batched >=
  1.5x unbatched. Beside it, the in-process ceiling (``Model.run`` per sample, 16 threads of single
  samples against 2 threads of batches of 16, no HTTP): on a 2-core CPU a MobileNetV2 batch saves
  no work, so no server reaches the goal there. The same measurement on a weight-bound MLP
  (manifests/wide-mlp.yaml: 50 MB of weights read once per batch instead of once per sample)
  shows what the batcher gives where a batch does save work.
- ``swap``: a bundle update under load. The digits CNN's x86-cpu bundle is served (updates on);
  16 client threads post golden images for 10 minutes (``--quick``: 20 s); half-way, the
  digits-cnn-rpi4 archive (another candidate: TFLite int8) is uploaded as Triton's repository
  ``load`` does, verified while the first version serves, and swapped in. Every answer names the
  version that gave it and is checked, bit for bit, against ``Model.run`` of that version's
  candidate on the same image. Goal: no request lost (every one answered 200), no wrong answer, and
  the new version serving after the swap.
"""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

DIGITS = common.REPO / "manifests" / "digits-cnn.yaml"
MOBILENET = common.HERE / "manifests" / "mobilenetv2.yaml"
WIDE_MLP = common.HERE / "manifests" / "wide-mlp.yaml"
PARTS = ("overhead", "batching", "swap")
TOKEN = "benchmark-update-token-0123456789"


class Server:
    """A ``python -m runtime serve`` process of ``bundle``, ready."""

    def __init__(self, bundle: Path, *args: str) -> None:
        self.proc = subprocess.Popen([common.PY, "-m", "runtime", "serve", ".", "--port", "0", "--json", *args],
                                     cwd=bundle, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline())
        self.host, port = first["url"].removeprefix("http://").rsplit(":", 1)
        self.port, self.model = int(port), first["model"]
        verdict = json.loads(self.proc.stdout.readline())
        if verdict["state"] != "ready":
            raise RuntimeError(f"the server did not become ready: {verdict['reason']}")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def binary_body(name: str, x: np.ndarray, outputs: list[str]) -> tuple[bytes, dict[str, str]]:
    """An infer request with ``x`` as binary tensor data and binary outputs."""
    header = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs]}).encode()
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                  "Content-Type": "application/octet-stream"}


def post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {data[:300]!r}")
    return data


def binary_output(data: bytes) -> np.ndarray:
    """The one float32 binary output of an answer (its JSON header says where the bytes start)."""
    header_end = data.index(b"}") + 1
    while True:  # the JSON header is the shortest prefix that parses
        try:
            json.loads(data[:header_end])
            break
        except (json.JSONDecodeError, UnicodeDecodeError):
            header_end = data.index(b"}", header_end) + 1
    return np.frombuffer(data[header_end:], np.float32)


def encoded(server: Server, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 request, encoded once."""
    head = f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: {len(body)}\r\n"
    return (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body


class RawClient:
    """A keep-alive connection that sends pre-encoded requests and reads each answer by its
    Content-Length: what a C client (or geventhttpclient, under tritonclient) does per request."""

    def __init__(self, server: Server, path: str, body: bytes, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = encoded(server, path, body, headers)

    def call(self) -> bytes:
        return self.send(self.request)

    def send(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection inside an answer")
            rest += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode() + ": " + rest[:200].decode(errors="replace"))
        return rest

    def close(self) -> None:
        self.sock.close()


def overhead(quick: bool) -> dict[str, Any]:
    from runtime import load
    common.ensure_digits_weights()
    bundle = common.bundle(DIGITS, "x86-cpu")
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    rounds, calls = (5, 200) if quick else (15, 1000)
    server = Server(bundle, "--prefer", "onnx-fp32")
    try:
        model = load(bundle, prefer="onnx-fp32")
        body, headers = binary_body("image", x, [s.name for s in model.outputs])
        path = f"/v2/models/{server.model}/infer"
        raw = RawClient(server, path, body, headers)
        conn = server.connection()
        sides: dict[str, Any] = {"serve": raw.call, "run": lambda: model.run({"image": x}),
                                 "http.client": lambda: post(conn, path, body, headers)}
        for call in sides.values():  # warm
            for _ in range(50):
                call()
        ms: dict[str, list[float]] = {k: [] for k in sides}
        for r in range(rounds):
            for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                samples = []
                call = sides[side]
                for _ in range(calls):
                    t = time.perf_counter()
                    call()
                    samples.append(time.perf_counter() - t)
                ms[side].append(common.median(samples) * 1e3)
        raw.close()
        conn.close()
        check = answer_equals_run(server, model, "image", x)
    finally:
        server.stop()
    serve_ms, run_ms, client_ms = ms["serve"], ms["run"], ms["http.client"]
    extra = [s - r for s, r in zip(serve_ms, run_ms, strict=True)]
    over = common.median(extra)
    return common.row("serve overhead per request (digits CNN, onnx-fp32, batch 1, one client, binary tensors)",
                      "≤ 0.3 ms over Model.run", f"{common.median(run_ms):.3f} ms (Model.run)",
                      f"{common.median(serve_ms):.3f} ms (+{over:.3f} ms)", over <= 0.3, key="serve_overhead",
                      rounds=rounds, calls=calls, serve_ms=serve_ms, run_ms=run_ms, http_client_ms=client_ms,
                      overhead_ms=over, overhead_p10=common.quantile(extra, 0.1),
                      overhead_p90=common.quantile(extra, 0.9), answer_equals_run=check)


def answer_equals_run(server: Server, model: Any, name: str, x: np.ndarray) -> bool:
    """One JSON request's answer against Model.run on the same input."""
    conn = server.connection()
    body = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()
    doc = json.loads(post(conn, f"/v2/models/{server.model}/infer", body, {"Content-Type": "application/json"}))
    conn.close()
    want = model.run({name: x})
    return all(np.array_equal(np.asarray(o["data"], want[o["name"]].dtype).reshape(o["shape"]), want[o["name"]])
               for o in doc["outputs"])


def load_run(server: Server, name: str, images: np.ndarray, want: np.ndarray, clients: int, seconds: float
             ) -> dict[str, Any]:
    """``clients`` threads, each with its own connection, posting single samples for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    wrong = [0] * clients
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(i: int) -> None:
        conn = server.connection()
        path = f"/v2/models/{server.model}/infer"
        bodies = [binary_body(name, images[k:k + 1], ["logits"]) for k in range(len(images))]
        start.wait()
        k = i
        while time.perf_counter() < stop_at[0]:
            body, headers = bodies[k % len(images)]
            t = time.perf_counter()
            try:
                data = post(conn, path, body, headers)
            except Exception as exc:  # counted, not fatal: the figure says how many failed
                errors.append(f"{type(exc).__name__}: {exc}")
                conn = server.connection()
                continue
            latencies[i].append(time.perf_counter() - t)
            got = binary_output(data)
            if got.shape != want[k % len(images)].shape or not np.array_equal(got, want[k % len(images)]):
                wrong[i] += 1
            k += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = [x for lane in latencies for x in lane]
    return {"answers": len(flat), "seconds": elapsed, "per_second": len(flat) / elapsed,
            "p50_ms": common.quantile(flat, 0.5) * 1e3, "p99_ms": common.quantile(flat, 0.99) * 1e3,
            "wrong": sum(wrong), "errors": len(errors), "first_error": errors[0] if errors else None}


def batching(quick: bool) -> list[dict[str, Any]]:
    """The goal's model, MobileNetV2, and a weight-bound MLP (where a CPU batch saves work)."""
    rng = np.random.default_rng(1)
    seconds = 5.0 if quick else 20.0
    return [batching_row("MobileNetV2 fp32 ONNX", MOBILENET, "../targets/bench-fp32.yaml", "image",
                         rng.random((8, 224, 224, 3)).astype(np.float32), seconds, key="serve_batching"),
            batching_row("weight-bound MLP (1024-2048-2048-2048-1000, 50 MB fp32) ONNX", WIDE_MLP,
                         "../targets/bench-onnx-fp32.yaml", "x", rng.random((8, 1024)).astype(np.float32),
                         seconds, key="serve_batching_mlp")]


def batching_row(title: str, manifest: Path, target: str, name: str, samples: np.ndarray, seconds: float, *,
                 key: str) -> dict[str, Any]:
    from runtime import load
    bundle = common.bundle(manifest, target)
    model = load(bundle, prefer="onnx-fp32")
    want = np.stack([model.run({name: samples[k:k + 1]})["logits"].ravel() for k in range(len(samples))])
    ceiling = in_process(model, name, samples)
    model.close()
    runs: dict[str, dict[str, Any]] = {}
    for label, args in (("unbatched", ()), ("batched", ("--max-batch", "16", "--max-delay-ms", "5"))):
        server = Server(bundle, "--prefer", "onnx-fp32", *args)
        try:
            runs[label] = load_run(server, name, samples, want, clients=16, seconds=seconds)
        finally:
            server.stop()
    plain, batched = runs["unbatched"], runs["batched"]
    ratio = batched["per_second"] / plain["per_second"]
    ok = ratio >= 1.5 and plain["wrong"] == batched["wrong"] == 0 and plain["errors"] == batched["errors"] == 0
    return common.row(f"dynamic batching, {title}, 16 concurrent clients, one sample per request",
                      "≥ 1.5× unbatched throughput",
                      f"{plain['per_second']:.1f}/s unbatched (p50 {plain['p50_ms']:.0f} ms, "
                      f"p99 {plain['p99_ms']:.0f} ms)",
                      f"{batched['per_second']:.1f}/s ({ratio:.2f}×; p50 {batched['p50_ms']:.0f} ms, "
                      f"p99 {batched['p99_ms']:.0f} ms; {batched['wrong']} wrong answers); in-process ceiling "
                      f"{ceiling['ratio']:.2f}×", ok,
                      key=key, ratio=ratio, runs=runs, seconds=seconds, ceiling=ceiling)


def in_process(model: Any, name: str, samples: np.ndarray, rounds: int = 5) -> dict[str, Any]:
    """What batching can save on this CPU with no HTTP at all: ms per sample for 16 threads each
    running single samples through ``model.run`` at once (what an unbatched server does) against 2
    threads each running batches of 16 (what ``--max-batch 16`` with 2 batch threads does);
    the median over alternating rounds."""
    singles = [samples[k % len(samples)][None] for k in range(16)]
    batch = np.stack([samples[k % len(samples)] for k in range(16)])

    def ms_per_sample(feeds: list[np.ndarray], calls: int) -> float:
        go = threading.Barrier(len(feeds) + 1)

        def work(x: np.ndarray) -> None:
            go.wait()
            for _ in range(calls):
                model.run({name: x})

        workers = [threading.Thread(target=work, args=(x,)) for x in feeds]
        for w in workers:
            w.start()
        go.wait()
        t = time.perf_counter()
        for w in workers:
            w.join()
        return (time.perf_counter() - t) * 1e3 / (calls * sum(len(x) for x in feeds))

    ms_per_sample(singles, 1), ms_per_sample([batch, batch], 1)  # warm-up, both shapes
    single, batched = [], []
    for _ in range(rounds):
        single.append(ms_per_sample(singles, 4))
        batched.append(ms_per_sample([batch, batch], 2))
    s, b = common.quantile(single, 0.5), common.quantile(batched, 0.5)
    return {"single_ms_per_sample": s, "batched_ms_per_sample": b, "ratio": s / b,
            "single_rounds_ms": single, "batched_rounds_ms": batched}


def versioned_answer(data: bytes) -> tuple[str, np.ndarray]:
    """(model_version, the one float32 binary output) of an answer."""
    out = binary_output(data)
    header = data[:len(data) - out.nbytes]
    return json.loads(header)["model_version"], out


def swap(quick: bool) -> dict[str, Any]:
    import base64

    from runtime import load
    from runtime.golden import load_golden
    common.ensure_digits_weights()
    v1, v2 = common.bundle(DIGITS, "x86-cpu"), common.bundle(DIGITS, "rpi4")
    archive = v2.parent / f"{v2.name}.tar.gz"
    images = load_golden(load(v1).bundle).inputs["image"]
    want: dict[str, np.ndarray] = {}
    candidates: dict[str, str] = {}
    for version, bundle in (("1", v1), ("2", v2)):  # what each version's own candidate answers, image by image
        with load(bundle) as model:
            candidates[version] = model.candidate_spec.id
            want[version] = np.stack([model.run({"image": images[k:k + 1]})["logits"].ravel()
                                      for k in range(len(images))])
    seconds = 20.0 if quick else 600.0
    state = common.work_dir() / "serve-swap-state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "token").write_text(TOKEN)
    server = Server(v1, "--state-dir", str(state / f"run-{time.time_ns()}"), "--update-token-file",
                    str(state / "token"), "--probation", "200")
    counts = {"answers": 0, "lost": 0, "wrong": 0, "after_swap_v1": 0}
    by_version: dict[str, int] = {}
    latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    phase = ["before"]
    lock = threading.Lock()
    errors: list[str] = []
    start = threading.Barrier(17)
    stop_at = [0.0]

    def client(i: int) -> None:
        path = f"/v2/models/{server.model}/infer"
        requests = [encoded(server, path, *binary_body("image", images[k:k + 1], ["logits"]))
                    for k in range(len(images))]
        conn = RawClient(server, path, b"", {})
        start.wait()
        k = i
        while time.perf_counter() < stop_at[0]:
            sent_in = phase[0]  # a request sent once the swap returned must be answered by v2
            t = time.perf_counter()
            try:
                version, got = versioned_answer(conn.send(requests[k % len(images)]))
            except Exception as exc:  # a lost request: counted, and the client goes on
                with lock:
                    counts["lost"] += 1
                    errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = RawClient(server, path, b"", {})
                continue
            took = time.perf_counter() - t
            with lock:
                counts["answers"] += 1
                by_version[version] = by_version.get(version, 0) + 1
                latencies[sent_in].append(took)
                if version not in want or not np.array_equal(got, want[version][k % len(images)]):
                    counts["wrong"] += 1
                if sent_in == "after" and version == "1":
                    counts["after_swap_v1"] += 1
            k += 16
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    try:
        for t in threads:
            t.start()
        stop_at[0] = time.perf_counter() + seconds
        start.wait()
        time.sleep(seconds / 2)
        phase[0] = "during"
        body = json.dumps({"parameters": {f"file:{archive.name}": base64.b64encode(archive.read_bytes()).decode()}})
        t_swap = time.perf_counter()
        conn = server.connection()
        done = json.loads(post(conn, f"/v2/repository/models/{server.model}/load", body.encode(),
                               {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}))
        conn.close()
        swap_seconds = time.perf_counter() - t_swap
        phase[0] = "after"
        for t in threads:
            t.join()
    finally:
        server.stop()
    ok = counts["lost"] == 0 and counts["wrong"] == 0 and by_version.get("2", 0) > 0 and counts["after_swap_v1"] == 0
    p = {k: (common.quantile(v, 0.5) * 1e3, common.quantile(v, 0.99) * 1e3) if v else (None, None)
         for k, v in latencies.items()}
    return common.row(f"bundle swap under load: digits CNN, 16 clients for {seconds / 60:.3g} min, v1 "
                      f"({candidates['1']}) -> v2 ({candidates['2']}) uploaded half-way",
                      "no request lost, no wrong answer",
                      f"{counts['answers']} answers: v1 {by_version.get('1', 0)}, v2 {by_version.get('2', 0)}",
                      f"{counts['lost']} lost, {counts['wrong']} wrong; swap verified in {swap_seconds:.2f} s "
                      f"while serving (p99 {p['before'][1]:.1f} ms before, {p['after'][1]:.1f} ms after)", ok,
                      key="serve_swap", seconds=seconds, counts=counts, by_version=by_version,
                      candidates=candidates, swap_seconds=swap_seconds, swapped=done,
                      p50_p99_ms=p, first_error=errors[0] if errors else None)


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    args = p.parse_args()
    parts = {"overhead": lambda q: [overhead(q)], "batching": batching, "swap": lambda q: [swap(q)]}
    rows = [row for part in (args.only or PARTS) for row in parts[part](args.quick)]
    common.emit(args, "serve", rows, method="see benchmarks/serve.py: a real server process per setting; "
                                            "clients in this process over persistent HTTP/1.1 connections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
