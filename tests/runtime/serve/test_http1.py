"""The serve command's HTTP/1.1 layer on real sockets: keep-alive, one answer per request in
order, HEAD, HTTP/1.0 closing, and what it refuses (malformed lines, chunked bodies, a body over
the limit before it is read) with the status and the connection closed."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from runtime.serve.http1 import Request, Response, Server


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    seen: list[Request] = []

    def route(request: Request) -> Response:
        seen.append(request)
        return Response(200, request.method.encode() + b" " + request.path.encode() + b" " + request.body,
                        "text/plain", {"X-Count": str(len(seen))})

    def admit(method: str, path: str, headers: dict[str, str]) -> Response | None:
        return Response(413, b"too big") if int(headers.get("content-length", "0")) > 10 else None

    server = Server(("127.0.0.1", 0), route, admit, name="test/1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[0], server.server_address[1]
    server.shutdown()
    server.server_close()


def exchange(address: tuple[str, int], raw: bytes) -> bytes:
    """Send ``raw``, read until the server closes the connection."""
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_keep_alive_answers_each_request_in_turn(address: tuple[str, int]) -> None:
    raw = (b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
           b"GET /b HTTP/1.1\r\n\r\n"
           b"HEAD /c HTTP/1.1\r\nConnection: close\r\n\r\n")
    got = exchange(address, raw)
    answers = got.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3
    assert answers[0].startswith(b"200 OK") and answers[0].endswith(b"POST /a abc") and b"X-Count: 1" in answers[0]
    assert answers[1].endswith(b"GET /b ") and b"X-Count: 2" in answers[1]
    assert b"Content-Length: 8" in answers[2] and answers[2].endswith(b"\r\n\r\n")  # HEAD: headers only
    assert b"Connection: close" in answers[2]


def test_http_1_0_closes_after_its_answer(address: tuple[str, int]) -> None:
    got = exchange(address, b"GET /x HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n")
    assert got.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in got and b"/never" not in got


@pytest.mark.parametrize(("raw", "status", "says"), [
    (b"NONSENSE\r\n\r\n", b"400", b"malformed request line"),
    (b"GET /x HTTP/2.0\r\n\r\n", b"505", b"is not HTTP/1.x"),
    (b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", b"400", b"malformed header line"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", b"411", b"Content-Length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400", b"is not a byte count"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", b"400", b"closed inside the body"),
])
def test_what_cannot_be_read_is_refused_and_the_connection_closed(address: tuple[str, int], raw: bytes,
                                                                  status: bytes, says: bytes) -> None:
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(raw)
        if raw.endswith(b"abc") and b"Content-Length: 9" in raw:
            s.shutdown(socket.SHUT_WR)  # the client gives up inside its body
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    assert got.startswith(b"HTTP/1.1 " + status) and says in got and b"Connection: close" in got, got


def test_a_body_over_the_limit_is_refused_before_it_is_read(address: tuple[str, int]) -> None:
    got = exchange(address, b"POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n")  # the body is never sent
    assert got.startswith(b"HTTP/1.1 413") and got.endswith(b"too big") and b"Connection: close" in got


def test_clients_that_connect_together_are_all_answered() -> None:
    """64 clients connect and send while the server is not yet accepting (as after a restart, or a
    busy accept thread): the listen backlog holds them all. socketserver's default of 5 lost some
    (connections reset or never accepted) before http1.Server raised it."""
    server = Server(("127.0.0.1", 0), lambda r: Response(200, r.body), lambda m, p, h: None, name="test/1")
    address = server.server_address[:2]
    clients = 64
    answers: list[bytes | str] = [b""] * clients
    sent = threading.Semaphore(0)

    def client(i: int) -> None:
        try:
            with socket.create_connection(address, timeout=20) as s:
                body = str(i).encode() * 20000
                s.sendall(b"POST /x HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                sent.release()
                got = b""
                while chunk := s.recv(65536):
                    got += chunk
                answers[i] = got
        except OSError as exc:
            answers[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for _ in range(clients):  # every client connected and sent its request before any is accepted
        if not sent.acquire(timeout=5):
            break
    accept = threading.Thread(target=server.serve_forever, daemon=True)
    accept.start()
    for t in threads:
        t.join(timeout=60)
    server.shutdown()
    server.server_close()
    failed = {i: a for i, a in enumerate(answers) if not (isinstance(a, bytes) and a.endswith(str(i).encode() * 20000))}
    assert not failed, f"{len(failed)} of {clients} clients got no answer: {list(failed.values())[:3]}"
