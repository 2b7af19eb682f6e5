"""The serving state and the Open Inference Protocol v2 REST endpoints of ``python -m runtime
serve``, over ``http1`` (a small HTTP/1.1 server on the standard library: nothing to install on a Pi).

The server listens at once (``/v2/health/live``) and is ready (``/v2/health/ready``, infer) only
after the bundle verified in the background: its files' hashes (and signature, with ``--key``),
and golden parity of the loaded candidate on this device. A bundle that fails stays not ready,
and every infer gets 503 with the reason; the process keeps serving health and metadata.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from .. import __version__
from ..bundle import Bundle
from ..errors import FeedError
from .batching import Batcher, why_not_batched
from .http1 import Request, Response, Server
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


class Router:
    """The Open Inference Protocol's endpoints for one ``Serving``: a request in, a response out."""

    def __init__(self, serving: Serving, max_body: int) -> None:
        self.serving, self.max_body = serving, max_body

    def admit(self, method: str, path: str, headers: dict[str, str]) -> Response | None:
        """Refuse a body over the limit before it is read (413), or one without a length (411)."""
        if method != "POST":
            return None
        length = headers.get("content-length")
        if length is None or not length.isdigit():
            return self._count(path, _error(411, "a request body needs a Content-Length"))
        if int(length) > self.max_body:
            return self._count(path, _error(413, f"the body is {length} bytes, over this server's limit "
                                                 f"({self.max_body}; --max-body-mb raises it)"))
        return None

    def route(self, request: Request) -> Response:
        parts = [p for p in request.path.split("?")[0].split("/") if p]
        if request.method in ("GET", "HEAD"):
            response = self._get(parts, request.path)
        elif request.method == "POST":
            response = self._post(parts, request)
        else:
            response = _error(405, f"{request.method} is not served (GET, HEAD, POST are)")
        return self._count(request.path, response)

    def _count(self, path: str, response: Response) -> Response:
        self.serving.metrics.request(_endpoint(path), response.status)
        return response

    def _model_path(self, parts: list[str]) -> str | Response:
        """The rest of a ``/v2/models/{name}[/versions/{v}]/...`` path, or a 404."""
        name = self.serving.name
        if len(parts) < 3 or parts[2] != name:
            return _error(404, f"no model {parts[2] if len(parts) > 2 else ''!r}: this server serves {name!r}")
        rest = parts[3:]
        if rest[:1] == ["versions"]:
            if rest[1:2] != ["1"]:
                return _error(404, f"no version {rest[1] if len(rest) > 1 else ''!r} of {name!r} (it has version 1)")
            rest = rest[2:]
        return "/".join(rest)

    def _get(self, parts: list[str], path: str) -> Response:
        serving = self.serving
        ready = serving.state == "ready"  # bodies as in KServe's spec; Triton's clients read the status
        if parts == ["v2", "health", "live"]:
            return _json(200, {"live": True})
        if parts == ["v2", "health", "ready"]:
            return _json(200 if ready else 503, {"ready": ready})
        if parts == ["v2"]:
            return _json(200, {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})
        if parts == ["metrics"]:
            return Response(200, serving.metrics.text(serving.name, serving.info(), ready).encode(),
                            "text/plain; version=0.0.4; charset=utf-8")
        if parts[:2] == ["v2", "models"]:
            rest = self._model_path(parts)
            if isinstance(rest, Response):
                return rest
            if rest == "":
                return _json(200, serving.metadata())
            if rest == "ready":
                return _json(200 if ready else 503, {"name": serving.name, "ready": ready})
        return _error(404, f"no such endpoint: GET {path}")

    def _post(self, parts: list[str], request: Request) -> Response:
        serving = self.serving
        rest = self._model_path(parts) if parts[:2] == ["v2", "models"] else None
        if isinstance(rest, Response):
            return rest
        if rest != "infer":
            return _error(404, f"no such endpoint: POST {request.path}")
        if serving.state != "ready":
            return _error(503, f"the model is not ready ({serving.state}"
                               + (f": {serving.reason}" if serving.reason else "") + ")")
        model, started = serving.model, time.perf_counter()
        try:
            decoded = decode(request.body, request.headers.get(HEADER_LENGTH.lower()), model.inputs, model.outputs)
            results = serving.infer(decoded.feeds)
            out, headers = encode(serving.name, "1", decoded, results, [s.name for s in model.outputs])
        except RequestError as exc:
            return _error(exc.status, exc.message)
        except FeedError as exc:  # names, shapes, dtypes the signature does not take
            return _error(400, str(exc))
        serving.metrics.latency_of(time.perf_counter() - started)
        return Response(200, out, "application/octet-stream" if headers else "application/json", headers)


def _json(status: int, doc: Any) -> Response:
    return Response(status, json.dumps(doc).encode())


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def make_server(serving: Serving, host: str, port: int, *, max_body: int) -> Server:
    """The HTTP server for ``serving`` (not started); port 0 picks a free one."""
    router = Router(serving, max_body)
    return Server((host, port), router.route, router.admit, name=f"{SERVER_NAME}/{__version__}")
