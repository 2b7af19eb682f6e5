"""The Open Inference Protocol v2 REST endpoints of ``python -m runtime serve`` over ``http1`` (a
small HTTP/1.1 server on the standard library: nothing to install on a Pi), for one ``Serving``.

Health, server and model metadata, infer (JSON and binary tensors, encoded images, Triton's
classification extension), ``/metrics``, and Triton's model repository extension for updates
(``POST /v2/repository/index``, ``POST /v2/repository/models/NAME/load``). Until the first bundle
verified, every infer gets 503 with the reason; the process keeps serving health and metadata.
"""
from __future__ import annotations

import json
import time
from typing import Any

from .. import __version__
from ..errors import FeedError
from .http1 import Request, Response, Server
from .protocol import HEADER_LENGTH, RequestError, decode, encode, tensor_metadata
from .serving import Serving
from .updates import UpdateRefused, archive_from_load_request, check_token

SERVER_NAME = "edgepack-runtime"
EXTENSIONS = ["binary_tensor_data", "classification", "model_repository"]


def metadata(serving: Serving) -> dict[str, Any]:
    """The model metadata: the signature of the version served, and how it verified and got there."""
    loaded = serving.current
    if loaded is None:
        return {"name": serving.name, "versions": [], "platform": "edgepack", "inputs": [], "outputs": [],
                "parameters": {"state": serving.state, "reason": serving.reason, "updates": serving.log.recent()}}
    spec = loaded.model.candidate_spec
    return {"name": serving.name, "versions": [str(loaded.version)], "platform": f"edgepack/{spec.backend}",
            "inputs": [tensor_metadata(s) for s in loaded.model.inputs],
            "outputs": [tensor_metadata(s) for s in loaded.model.outputs],
            "parameters": {"state": serving.state, "candidate": spec.id, "version": loaded.version,
                           "verified": loaded.verified, "dynamic_batching": loaded.batching,
                           "processing": loaded.processor.spec.to_dict() if loaded.processor.spec else None,
                           "previous_version": serving.previous.version if serving.previous else None,
                           "updates": serving.log.recent()}}


def _endpoint(path: str) -> str:
    """The metrics label of a request path."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:2] == ["v2", "health"] or parts[-1:] == ["ready"]:
        return "health"
    if parts[-1:] == ["infer"]:
        return "infer"
    if parts[:2] == ["v2", "repository"]:
        return "repository"
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
            served = str(self.serving.current.version) if self.serving.current else "1"
            if rest[1:2] != [served]:
                return _error(404, f"no version {rest[1] if len(rest) > 1 else ''!r} of {name!r} (it serves "
                                   f"version {served})")
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
                return _json(200, metadata(serving))
            if rest == "ready":
                return _json(200 if ready else 503, {"name": serving.name, "ready": ready})
        return _error(404, f"no such endpoint: GET {path}")

    def _post(self, parts: list[str], request: Request) -> Response:
        serving = self.serving
        if parts[:2] == ["v2", "repository"]:
            return self._repository(parts, request)
        rest = self._model_path(parts) if parts[:2] == ["v2", "models"] else None
        if isinstance(rest, Response):
            return rest
        if rest != "infer":
            return _error(404, f"no such endpoint: POST {request.path}")
        if serving.state != "ready":
            return _error(503, f"the model is not ready ({serving.state}"
                               + (f": {serving.reason}" if serving.reason else "") + ")")
        loaded, started = serving.current, time.perf_counter()
        assert loaded is not None
        model = loaded.model
        try:
            decoded = decode(request.body, request.headers.get(HEADER_LENGTH.lower()), model.inputs, model.outputs,
                             loaded.raw_inputs)
            loaded, results = serving.infer(decoded.feeds, decoded.raw, decoded.classification)
            out, headers = encode(serving.name, str(loaded.version), decoded, results,
                                  [s.name for s in loaded.model.outputs])
        except RequestError as exc:
            return _error(exc.status, exc.message)
        except FeedError as exc:  # names, shapes, dtypes the signature does not take; undecodable images
            return _error(400, str(exc))
        except Exception as exc:  # the backend failed: the client gets the reason, the server goes on
            return _error(500, f"inference failed: {type(exc).__name__}: {exc}")
        serving.metrics.latency_of(time.perf_counter() - started)
        return Response(200, out, "application/octet-stream" if headers else "application/json", headers)

    def _repository(self, parts: list[str], request: Request) -> Response:
        """Triton's model repository extension: the index, and ``load`` of a new bundle (an update)."""
        serving = self.serving
        if parts == ["v2", "repository", "index"]:
            return _json(200, serving.index())
        if len(parts) == 5 and parts[2] == "models" and parts[4] in ("load", "unload"):
            if parts[3] != serving.name:
                return _error(404, f"no model {parts[3]!r}: this server serves {serving.name!r}")
            if parts[4] == "unload":
                return _error(400, "unload is not served: a running server always serves one verified bundle")
            try:
                check_token(request.headers, serving.token)
                name, archive = archive_from_load_request(request.body)
                done = serving.update(archive, origin=f"upload:{name}")
            except UpdateRefused as exc:
                return _error(exc.status, exc.message)
            return _json(200, done)
        return _error(404, f"no such endpoint: POST {request.path}")


def _json(status: int, doc: Any) -> Response:
    return Response(status, json.dumps(doc).encode())


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def make_server(serving: Serving, host: str, port: int, *, max_body: int) -> Server:
    """The HTTP server for ``serving`` (not started); port 0 picks a free one."""
    router = Router(serving, max_body)
    return Server((host, port), router.route, router.admit, name=f"{SERVER_NAME}/{__version__}")
