"""Safe bundle updates for a running server: a new bundle arrives, is verified while the old one
keeps serving, replaces it in one assignment only when it passed, and is rolled back when it fails
on live traffic.

A bundle arrives through Triton's model repository extension
(``POST /v2/repository/models/NAME/load`` with the archive as a ``file:NAME.tar.gz`` parameter,
which ``tritonclient``'s ``load_model(name, files=...)`` sends; a bearer token from
``--update-token-file`` is required) or as a ``.tar.gz`` dropped into ``--watch DIR``. Either way it
is checked like the first bundle (hashes, the signature with ``--key``, golden parity and the
end-to-end check on this device) and must be the same model with the same signature, so clients
need no change. The first ``probation`` requests the new version answers are its health check: a
backend failure or a non-finite output rolls back to the previous version, and that request is
answered by the previous version, so no client sees the failure. Every step is logged (the
serve command prints it, ``updates.jsonl`` in the state folder keeps it, the model metadata shows
the last ones).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .server import Serving

Event = Literal["serving", "received", "refused", "swapped", "kept", "rolled_back"]
WATCH_INTERVAL = 1.0  # seconds between looks at --watch DIR
KEEP_IN_METADATA = 20  # the last update events the model metadata shows


class UpdateRefused(Exception):
    """An update the server does not take: the HTTP status and the reason the uploader gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class UpdateLog:
    """The update events: kept in memory (for the metadata), appended to ``updates.jsonl`` in the
    state folder, and passed to ``on_event`` (the serve command prints them)."""

    def __init__(self, state_dir: Path | None, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.state_dir, self.on_event = state_dir, on_event
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, event: Event, **fields: Any) -> dict[str, Any]:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, **fields}
        with self._lock:
            self.events.append(entry)
            if self.state_dir is not None:
                with (self.state_dir / "updates.jsonl").open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")
        if self.on_event is not None:
            self.on_event(entry)
        return entry

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events[-KEEP_IN_METADATA:])


def check_token(headers: dict[str, str], token: str | None) -> None:
    """The upload's ``Authorization: Bearer TOKEN`` against the server's token (constant time)."""
    if token is None:
        raise UpdateRefused(403, "updates over HTTP are off: start serve with --update-token-file FILE "
                                 "(or drop bundles into --watch DIR)")
    given = headers.get("authorization", "")
    if not given.lower().startswith("bearer "):
        raise UpdateRefused(401, "an update needs the header 'Authorization: Bearer TOKEN' (the token in the "
                                 "server's --update-token-file)")
    if not hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        raise UpdateRefused(403, "the update token is wrong")


def archive_from_load_request(body: bytes) -> tuple[str, bytes]:
    """The bundle archive of a repository ``load`` request: (its file name, its bytes)."""
    try:
        doc = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpdateRefused(400, f"the load request is not valid JSON ({exc})") from None
    params = doc.get("parameters") if isinstance(doc, dict) else None
    files = {k: v for k, v in (params or {}).items() if isinstance(k, str) and k.startswith("file:")}
    if len(files) != 1:
        raise UpdateRefused(400, "give the new bundle as one parameter 'file:NAME.tar.gz' holding the archive in "
                                 f"base64 (tritonclient: load_model(name, files={{'file:NAME.tar.gz': data}})); "
                                 f"got {len(files)} file parameter(s)")
    (name, data), = files.items()
    if not isinstance(data, str):
        raise UpdateRefused(400, f"parameter {name!r} must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UpdateRefused(400, f"parameter {name!r} is not valid base64") from None
    return name.removeprefix("file:"), raw


def store_archive(state_dir: Path, version: int, data: bytes) -> Path:
    """The received archive as ``versions/v{N}.tar.gz`` in the state folder (written whole, then renamed)."""
    folder = state_dir / "versions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"v{version}.tar.gz"
    tmp = folder / f".v{version}.tar.gz.part"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def mark_current(state_dir: Path, archive: Path | None) -> None:
    """``current.tar.gz``: the archive now served (serve it after a restart to keep an update);
    none when the bundle the server started with is served again (after a roll-back)."""
    if archive is None:
        (state_dir / "current.tar.gz").unlink(missing_ok=True)
        return
    tmp = state_dir / ".current.tar.gz.part"
    shutil.copyfile(archive, tmp)
    os.replace(tmp, state_dir / "current.tar.gz")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Watcher:
    """Looks at a folder every ``WATCH_INTERVAL`` seconds; a ``.tar.gz`` whose size held still
    between two looks is offered to the server, then moved to ``accepted/`` or ``refused/`` (with
    ``NAME.reason.txt``), so it is never taken twice."""

    def __init__(self, folder: Path, serving: Serving) -> None:
        self.folder, self.serving = folder, serving
        self._sizes: dict[str, int] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="watch-updates", daemon=True)

    def start(self) -> None:
        for sub in ("accepted", "refused"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            self.poll()

    def poll(self) -> None:
        sizes = {p.name: p.stat().st_size for p in sorted(self.folder.glob("*.tar.gz")) if p.is_file()}
        ready = [n for n, size in sizes.items() if self._sizes.get(n) == size]
        self._sizes = {n: s for n, s in sizes.items() if n not in ready}
        for name in ready:
            path = self.folder / name
            try:
                self.serving.update(path.read_bytes(), origin=f"watch:{name}")
                os.replace(path, self.folder / "accepted" / name)
            except UpdateRefused as exc:
                os.replace(path, self.folder / "refused" / name)
                (self.folder / "refused" / f"{name}.reason.txt").write_text(exc.message + "\n", encoding="utf-8")
            except OSError:  # gone or unreadable meanwhile: looked at again next time
                continue
