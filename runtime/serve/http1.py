"""A small HTTP/1.1 server for the serve command: keep-alive connections, Content-Length bodies,
one thread per connection, one write per answer.

Why not ``http.server``: it parses every request's headers with the ``email`` package and writes
headers and body apart, which cost more per request than a small model's inference (issue 15's
goal is 0.3 ms over ``Model.run``). What an inference server needs of HTTP is small: a request
line, headers, a body of Content-Length bytes; anything else (chunked bodies, a malformed line,
too many or too long headers, a slow client) is answered with a 4xx, or the connection is closed.
"""
from __future__ import annotations

import socketserver
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from io import BufferedIOBase

MAX_LINE = 65536
MAX_HEADERS = 100


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # close the connection after it (a refused body is left unread)


class BadRequest(Exception):
    """The request cannot be read: the status to answer with and why (the connection then closes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


Route = Callable[[Request], Response]
# the body is read only after this accepts the request line and headers (None), else its answer
Admit = Callable[[str, str, dict[str, str]], Response | None]


def read_request(rfile: BufferedIOBase, admit: Admit) -> Request | Response | None:
    """The next request on the connection, an early answer (``admit`` refused it), or None at EOF."""
    line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest(414, "the request line is too long")
    try:
        method, path, version = line.decode("latin-1").rstrip("\r\n").split(" ")
    except ValueError:
        raise BadRequest(400, f"malformed request line {line[:80]!r}") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(505, f"{version} is not HTTP/1.x")
    headers: dict[str, str] = {}
    while True:
        raw = rfile.readline(MAX_LINE + 1)
        if not raw:
            raise BadRequest(400, "the connection closed inside the headers")
        if raw in (b"\r\n", b"\n"):
            break
        if len(raw) > MAX_LINE or len(headers) >= MAX_HEADERS:
            raise BadRequest(431, "too many or too long headers")
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest(400, f"malformed header line {raw[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest(411, "chunked bodies are not accepted: send a Content-Length")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise BadRequest(400, f"Content-Length {length!r} is not a byte count")
    early = admit(method, path, headers)
    if early is not None:
        return early
    body = rfile.read(int(length)) if int(length) else b""
    if len(body) != int(length):
        raise BadRequest(400, "the connection closed inside the body")
    return Request(method, path, headers, body)


def response_bytes(response: Response, server: str, head_only: bool = False) -> bytes:
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {response.status} {reason}", f"Server: {server}",
             f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}",
             *(f"{k}: {v}" for k, v in response.headers.items())]
    if response.close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else response.body)


class Server(socketserver.ThreadingTCPServer):
    """Serves ``route`` on (host, port); each connection in a daemon thread, requests in turn."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's listen backlog is 5: clients that connect together beyond it (a camera fleet
    # after a restart, 16 benchmark clients) had their connections reset. The kernel caps this at
    # net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], route: Route, admit: Admit, *, name: str,
                 idle_timeout: float = 60.0) -> None:
        self.route, self.admit, self.name, self.idle_timeout = route, admit, name, idle_timeout
        super().__init__(address, _Connection)


class _Connection(socketserver.StreamRequestHandler):
    server: Server
    disable_nagle_algorithm = True  # an answer is one write: send it now

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)  # a slow or silent client is dropped

    def handle(self) -> None:
        while True:
            try:
                got = read_request(self.rfile, self.server.admit)
            except BadRequest as exc:
                self._write(Response(exc.status, f'{{"error": "{_escape(exc.message)}"}}'.encode(), close=True))
                return
            except (TimeoutError, ConnectionError, OSError):
                return
            if got is None:
                return
            if isinstance(got, Response):  # refused before its body was read: the connection cannot go on
                self._write(Response(got.status, got.body, got.content_type, got.headers, close=True))
                return
            response = self.server.route(got)
            close = response.close or got.headers.get("connection", "").lower() == "close"
            if not self._write(response, head_only=got.method == "HEAD", close=close):
                return
            if close:
                return

    def _write(self, response: Response, *, head_only: bool = False, close: bool = False) -> bool:
        if close and not response.close:
            response = Response(response.status, response.body, response.content_type, response.headers, True)
        try:
            self.wfile.write(response_bytes(response, self.server.name, head_only))
            return True
        except OSError:
            return False


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
