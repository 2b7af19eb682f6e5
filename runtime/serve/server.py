"""The HTTP side of ``python -m runtime serve``: Open Inference Protocol v2 REST endpoints over the
standard library's threading HTTP server (no dependency to install on a Pi).

The server listens at once (``/v2/health/live``) and is ready (``/v2/health/ready``, infer) only
after the bundle verified in the background: its files' hashes (and signature, with ``--key``),
and golden parity of the loaded candidate on this device. A bundle that fails stays not ready,
and every infer gets 503 with the reason; the process keeps serving health and metadata.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from .. import __version__
from ..bundle import Bundle
from ..errors import FeedError
from .batching import Batcher, why_not_batched
from .metrics import Metrics
from .protocol import HEADER_LENGTH, RequestError, decode, encode, tensor_metadata

SERVER_NAME = "edgepack-runtime"
EXTENSIONS = ["binary_tensor_data"]
State = Literal["loading", "ready", "failed"]


def _bundle_name(path: str) -> str:
    """The model name clients use for a bundle given by path: its folder's (or archive's) name."""
    name = Path(path).resolve().name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        name = name.removesuffix(suffix)
    return name


class Serving:
    """The bundle being served and its state: loading, ready, or failed (with why)."""

    def __init__(self, bundle: Bundle | str, *, key: str | None = None, prefer: str | None = None,
                 name: str | None = None, max_batch: int = 1, max_delay: float = 0.002) -> None:
        """``bundle``: opened and checked already (the serve command refuses a bad one before it
        listens), or a path, opened and checked by ``load``. ``max_batch`` > 1 batches requests
        dynamically (``batching``), waiting at most ``max_delay`` seconds for a batch to fill."""
        self.bundle, self.key, self.prefer = bundle, key, prefer
        self.max_batch, self.max_delay = max_batch, max_delay
        self.batcher: Batcher | None = None
        self.batching: dict[str, Any] = {"enabled": False, "why": "--max-batch is 1"}
        self.metrics = Metrics()
        self.state: State = "loading"
        self.reason: str | None = None
        self.model: Any = None
        self.name = name or (bundle.name if not isinstance(bundle, str) else _bundle_name(bundle))
        self.verified: dict[str, Any] = {}
        self.ready = threading.Event()

    def load(self) -> None:
        """Open, check and verify the bundle (run in a background thread)."""
        from ..bundle import open_bundle
        from ..golden import load_golden
        from ..model import load
        try:
            bundle = self.bundle
            if isinstance(bundle, str):
                bundle = open_bundle(bundle, public_key=self.key)
                bundle.verify()
            model = load(bundle, prefer=self.prefer, verify_hashes=False)
            t0 = time.perf_counter()
            report = model.verify(load_golden(bundle))
            self.verified = {"candidate": model.candidate_spec.id, "providers": list(model.providers),
                             "golden_parity": "passed" if report.passed else "failed",
                             "seconds": round(time.perf_counter() - t0, 3), "signature_checked": self.key is not None}
            if not report.passed:
                failed = [f"{o.name}: {', '.join(o.failures)}" for o in report.outputs if not o.passed]
                raise RuntimeError(f"golden parity failed on this device ({'; '.join(failed)})")
            self.model = model
            if self.max_batch > 1:
                why = why_not_batched(model.inputs, model.outputs)
                if why is None:
                    self.batcher = Batcher(model.run, max_batch=self.max_batch, max_delay=self.max_delay,
                                           on_batch=self.metrics.batch)
                    self.batching = {"enabled": True, "max_batch": self.max_batch,
                                     "max_delay_ms": round(self.max_delay * 1000, 3)}
                else:
                    self.batching = {"enabled": False, "why": why}
            self.state = "ready"
            self.ready.set()
        except Exception as exc:  # any failure leaves the server live and not ready, with the reason
            self.state, self.reason = "failed", f"{type(exc).__name__}: {exc}"

    def infer(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """One request's outputs: through the batcher when batching, else a run of its own."""
        if self.batcher is not None:
            return self.batcher.submit(feeds)
        out: dict[str, Any] = self.model.run(feeds)
        self.metrics.batch(1, max((int(v.shape[0]) for v in feeds.values() if getattr(v, "ndim", 0)), default=1))
        return out

    def info(self) -> dict[str, str]:
        """What /metrics says is served."""
        if self.model is None:
            return {"state": self.state, "candidate": "", "providers": ""}
        return {"state": self.state, "candidate": self.model.candidate_spec.id,
                "providers": ",".join(self.model.providers), "batching": str(self.batching.get("enabled")).lower()}

    def metadata(self) -> dict[str, Any]:
        if self.model is None:
            return {"name": self.name, "versions": ["1"], "platform": "edgepack", "inputs": [], "outputs": [],
                    "parameters": {"state": self.state, "reason": self.reason}}
        spec = self.model.candidate_spec
        return {"name": self.name, "versions": ["1"], "platform": f"edgepack/{spec.backend}",
                "inputs": [tensor_metadata(s) for s in self.model.inputs],
                "outputs": [tensor_metadata(s) for s in self.model.outputs],
                "parameters": {"state": self.state, "candidate": spec.id, "verified": self.verified,
                               "dynamic_batching": self.batching}}


def _endpoint(path: str) -> str:
    """The metrics label of a request path."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:2] == ["v2", "health"] or parts[-1:] == ["ready"]:
        return "health"
    if parts[-1:] == ["infer"]:
        return "infer"
    if parts == ["metrics"]:
        return "metrics"
    return "metadata" if parts[:1] == ["v2"] else "other"


def make_server(serving: Serving, host: str, port: int, *, max_body: int) -> ThreadingHTTPServer:
    """The HTTP server for ``serving`` (not started); port 0 picks a free one."""

    class Handler(BaseHTTPRequestHandler):
        server_version = f"{SERVER_NAME}/{__version__}"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass  # one line per request on a Pi's console is noise; metrics come later

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> None:
            serving.metrics.request(_endpoint(self.path), status)
            self.send_response(status)
            self.send_header("Content-Type", content_type if body else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, doc: Any) -> None:
            self._send(status, json.dumps(doc).encode())

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": message})

        def _model_path(self, parts: list[str]) -> str | None:
            """The rest of a ``/v2/models/{name}[/versions/{v}]/...`` path, or None (a 404 was sent)."""
            if len(parts) < 3 or parts[2] != serving.name:
                self._error(404, f"no model {parts[2] if len(parts) > 2 else ''!r}: this server serves "
                                 f"{serving.name!r}")
                return None
            rest = parts[3:]
            if rest[:1] == ["versions"]:
                if rest[1:2] != ["1"]:
                    self._error(404, f"no version {rest[1] if len(rest) > 1 else ''!r} of {serving.name!r} "
                                     "(it has version 1)")
                    return None
                rest = rest[2:]
            return "/".join(rest)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            ready = serving.state == "ready"  # bodies as in KServe's spec; Triton's clients read the status
            if parts == ["v2", "health", "live"]:
                return self._json(200, {"live": True})
            if parts == ["v2", "health", "ready"]:
                return self._json(200 if ready else 503, {"ready": ready})
            if parts == ["v2"]:
                return self._json(200, {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})
            if parts == ["metrics"]:
                text = serving.metrics.text(serving.name, serving.info(), ready).encode()
                return self._send(200, text, content_type="text/plain; version=0.0.4; charset=utf-8")
            if parts[:2] == ["v2", "models"]:
                rest = self._model_path(parts)
                if rest is None:
                    return None
                if rest == "":
                    return self._json(200, serving.metadata())
                if rest == "ready":
                    return self._json(200 if ready else 503, {"name": serving.name, "ready": ready})
            return self._error(404, f"no such endpoint: GET {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._error(411, "a request body needs a Content-Length")
            if int(length) > max_body:
                self.close_connection = True
                return self._error(413, f"the body is {length} bytes, over this server's limit ({max_body}; "
                                        "--max-body-mb raises it)")
            body = self.rfile.read(int(length))
            if parts[:2] != ["v2", "models"]:
                return self._error(404, f"no such endpoint: POST {self.path}")
            rest = self._model_path(parts)
            if rest is None:
                return None
            if rest != "infer":
                return self._error(404, f"no such endpoint: POST {self.path}")
            if serving.state != "ready":
                return self._error(503, f"the model is not ready ({serving.state}"
                                        + (f": {serving.reason}" if serving.reason else "") + ")")
            model, started = serving.model, time.perf_counter()
            try:
                request = decode(body, self.headers.get(HEADER_LENGTH), model.inputs, model.outputs)
                results = serving.infer(request.feeds)
                out, headers = encode(serving.name, "1", request, results, [s.name for s in model.outputs])
            except RequestError as exc:
                return self._error(exc.status, exc.message)
            except FeedError as exc:  # names, shapes, dtypes the signature does not take
                return self._error(400, str(exc))
            content = "application/octet-stream" if HEADER_LENGTH in headers else "application/json"
            serving.metrics.latency_of(time.perf_counter() - started)
            return self._send(200, out, headers, content)

        do_HEAD = do_GET  # noqa: N815

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
