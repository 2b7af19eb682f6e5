"""A small client of the OCI distribution API (plain HTTP(S), standard library only): manifests
and blobs by digest, Basic or Bearer-token auth as the registry asks, downloads that resume with
a Range request and can be rate-limited, and monolithic blob uploads.

Every error is a ``RegistryError`` that says what the registry answered (or that it could not be
reached) and how to fix it: wrong credentials, a missing tag, a stopped registry.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RegistryError

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json")
CHUNK = 1 << 16
_REF = re.compile(r"^oci://(?P<host>[^/]+)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
                  r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$")


@dataclass(frozen=True)
class Reference:
    """``oci://HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]``."""

    host: str
    repo: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        m = _REF.match(text)
        if not m:
            raise RegistryError(f"{text!r} is not an OCI reference", where=text,
                                hint="write oci://HOST[:PORT]/REPO:TAG or oci://HOST/REPO@sha256:DIGEST "
                                     "(lower-case repository names)")
        tag, digest = m["tag"], m["digest"]
        return cls(m["host"], m["repo"], tag if tag or digest else "latest", digest)

    @property
    def target(self) -> str:
        """What the manifest is fetched by: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return f"oci://{self.host}/{self.repo}" + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")


@dataclass
class Credentials:
    """A username and password (Basic auth, or to fetch a Bearer token)."""

    username: str
    password: str = field(repr=False)


def credentials_from_env(host: str) -> Credentials | None:
    """``EDGEPACK_REGISTRY_USERNAME`` / ``_PASSWORD``, else docker's ``~/.docker/config.json`` auths."""
    user, password = os.environ.get("EDGEPACK_REGISTRY_USERNAME"), os.environ.get("EDGEPACK_REGISTRY_PASSWORD")
    if user and password is not None:
        return Credentials(user, password)
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auth = json.loads(config.read_text(encoding="utf-8"))["auths"][host]["auth"]
        name, _, secret = base64.b64decode(auth).decode().partition(":")
        return Credentials(name, secret)
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {realm, service, ...})."""
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


class Registry:
    """One registry host: connections, auth, and the distribution API calls."""

    def __init__(self, ref: Reference, *, credentials: Credentials | None = None, ca_file: str | None = None,
                 plain_http: bool = False, timeout: float = 60.0) -> None:
        self.ref, self.credentials, self.plain_http, self.timeout = ref, credentials, plain_http, timeout
        ca_file = ca_file or os.environ.get("EDGEPACK_REGISTRY_CA_FILE") or None  # a private CA, for every command
        self.context = ssl.create_default_context(cafile=ca_file) if not plain_http else None
        self._auth: str | None = None  # the Authorization header that worked
        self._conn: http.client.HTTPConnection | None = None
        self.body = b""  # the last answer's body (a request that was not streamed)
        self.pushed_headers: dict[str, str] = {}  # the last manifest PUT's answer headers

    # -- transport ---------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.plain_http:
                self._conn = http.client.HTTPConnection(self.ref.host, timeout=self.timeout)
            else:
                self._conn = http.client.HTTPSConnection(self.ref.host, timeout=self.timeout, context=self.context)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                ok: tuple[int, ...] = (200,), stream: bool = False) -> http.client.HTTPResponse:
        """A request with auth (answering one 401 challenge); the response, its body left for the
        caller to read when ``stream`` (else read here: ``body``), or a RegistryError naming the
        status and what to do."""
        for attempt in range(2):
            sent = dict(headers or {})
            if self._auth:
                sent["Authorization"] = self._auth
            try:
                conn = self._connection()
                conn.request(method, path, body=body, headers=sent)
                response = conn.getresponse()
            except ssl.SSLError as exc:
                self.close()
                raise RegistryError(f"TLS with {self.ref.host} failed: {exc.reason or exc}", where=str(self.ref),
                                    hint="give the registry's CA certificate with --ca-file (or "
                                         "$EDGEPACK_REGISTRY_CA_FILE)") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise RegistryError(f"cannot reach the registry {self.ref.host}: {exc}", where=str(self.ref),
                                    hint="check that the registry runs and the host and port are right; run the "
                                         "command again to resume") from None
            if response.status == 401 and attempt == 0:
                challenge = response.getheader("WWW-Authenticate", "")
                response.read()
                self._authenticate(challenge)
                continue
            if response.status in ok:
                if not stream:
                    self.body = response.read()
                return response
            detail = response.read()[:500].decode("utf-8", "replace")
            raise self._status_error(method, path, response.status, detail)
        raise AssertionError("unreachable")

    def _authenticate(self, challenge: str) -> None:
        scheme, params = _challenge(challenge)
        creds = self.credentials
        if creds is None:
            raise RegistryError(f"the registry {self.ref.host} asks for credentials", where=str(self.ref),
                                hint="set EDGEPACK_REGISTRY_USERNAME and EDGEPACK_REGISTRY_PASSWORD (or log in "
                                     "with docker, which writes ~/.docker/config.json)")
        basic = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        if scheme == "basic":
            self._auth = basic
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"the registry asks for {challenge!r}, which this client does not speak",
                                where=str(self.ref), hint="use a registry with Basic or Bearer token auth")
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        url = urllib.parse.urlsplit(params["realm"])
        conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        kwargs: dict[str, Any] = {"context": self.context} if url.scheme == "https" else {}
        conn = conn_cls(url.netloc, timeout=self.timeout, **kwargs)
        try:
            conn.request("GET", f"{url.path}?{urllib.parse.urlencode(query)}", headers={"Authorization": basic})
            answer = conn.getresponse()
            data = answer.read()
        except OSError as exc:
            raise RegistryError(f"cannot reach the token service {url.netloc}: {exc}", where=str(self.ref)) from None
        finally:
            conn.close()
        if answer.status != 200:
            raise RegistryError("the registry's token service refused the credentials", where=str(self.ref),
                                hint="check EDGEPACK_REGISTRY_USERNAME / EDGEPACK_REGISTRY_PASSWORD")
        doc = json.loads(data)
        self._auth = f"Bearer {doc.get('token') or doc.get('access_token')}"

    def _status_error(self, method: str, path: str, status: int, detail: str) -> RegistryError:
        where = str(self.ref)
        if status == 401:
            return RegistryError("the registry refused the credentials (401)", where=where,
                                 hint="check EDGEPACK_REGISTRY_USERNAME / EDGEPACK_REGISTRY_PASSWORD")
        if status == 403:
            return RegistryError("the registry denies this (403)", where=where,
                                 hint="the account needs pull (or push) rights on this repository")
        if status == 404:
            return RegistryError(f"not found in the registry: {method} {path} (404)", where=where,
                                 hint="check the repository and tag (or digest)")
        return RegistryError(f"{method} {path} answered {status}: {detail}", where=where)

    # -- the API -----------------------------------------------------------------------------------
    def _path(self, kind: str, ref: str) -> str:
        return f"/v2/{self.ref.repo}/{kind}/{ref}"

    def manifest(self) -> tuple[bytes, str]:
        """The manifest's bytes and digest (checked against the reference's digest when pinned)."""
        self.request("GET", self._path("manifests", self.ref.target), headers={"Accept": ", ".join(MANIFEST_TYPES)})
        data = self.body
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.ref.digest and digest != self.ref.digest:
            raise RegistryError(f"the manifest's digest is {digest}, not the {self.ref.digest} asked for",
                                where=str(self.ref), hint="the registry served other content: do not use it")
        return data, digest

    def manifest_at(self, ref: str, accept: str) -> tuple[bytes, dict[str, str]] | None:
        """The manifest (or index) stored under the tag or digest ``ref`` and the answer's headers;
        None when the registry has none there."""
        try:
            response = self.request("GET", self._path("manifests", ref), headers={"Accept": accept})
        except RegistryError as exc:
            if "(404)" in exc.message:
                return None
            raise
        return self.body, {k.lower(): v for k, v in response.getheaders()}

    def has_blob(self, digest: str) -> bool:
        try:
            self.request("HEAD", self._path("blobs", digest))
            return True
        except RegistryError as exc:
            if "(404)" in exc.message:
                return False
            raise

    def fetch_blob(self, digest: str, size: int, dest: Path, *, max_rate: float | None = None,
                   on_bytes: Callable[[int], None] | None = None) -> int:
        """Download blob ``digest`` into ``dest`` (its partial file ``dest.partial`` resumed with a
        Range request), check its digest, and rename it into place; the bytes transferred."""
        partial = dest.with_name(dest.name + ".partial")
        have = partial.stat().st_size if partial.exists() else 0
        if have > size:
            partial.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = self.request("GET", self._path("blobs", digest), headers=headers, ok=(200, 206), stream=True)
        if response.status == 200 and have:
            have = 0  # the registry ignored the Range: start over
        got, started = 0, time.monotonic()
        try:
            with partial.open("ab" if have else "wb") as fh:
                while chunk := response.read(CHUNK):
                    fh.write(chunk)
                    got += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                    if max_rate:  # a slow link: keep the average at max_rate bytes per second
                        ahead = got / max_rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RegistryError(f"the download of {digest[:19]} stopped after {have + got} of {size} bytes: {exc}",
                                where=str(self.ref), hint="run the pull again: it resumes where it stopped") from None
        if have + got < size:
            self.close()
            raise RegistryError(f"the download of {digest[:19]} stopped after {have + got} of {size} bytes",
                                where=str(self.ref), hint="run the pull again: it resumes where it stopped")
        actual = "sha256:" + _sha256_file(partial)
        if actual != digest:
            partial.unlink()
            raise RegistryError(f"blob {digest} does not match its digest (got {actual}): refused",
                                where=str(self.ref), hint="the registry's copy is damaged or was tampered with")
        os.replace(partial, dest)
        return got

    def push_blob(self, digest: str, data: bytes) -> bool:
        """Upload a blob unless the registry has it; whether it was uploaded."""
        if self.has_blob(digest):
            return False
        started = self.request("POST", f"/v2/{self.ref.repo}/blobs/uploads/", body=b"", ok=(202,))
        location = started.getheader("Location") or ""
        split = urllib.parse.urlsplit(location)
        query = urllib.parse.parse_qsl(split.query) + [("digest", digest)]
        self.request("PUT", f"{split.path}?{urllib.parse.urlencode(query)}", body=data,
                     headers={"Content-Type": "application/octet-stream"}, ok=(201,))
        return True

    def push_manifest(self, data: bytes, media_type: str, tag: str) -> str:
        """Store a manifest under ``tag`` (or its digest); its digest. ``self.pushed_headers``: the
        answer's headers (OCI-Subject says the registry indexed a referrer itself)."""
        response = self.request("PUT", self._path("manifests", tag), body=data,
                                headers={"Content-Type": media_type}, ok=(201,))
        self.pushed_headers = {k.lower(): v for k, v in response.getheaders()}
        return response.getheader("Docker-Content-Digest") or "sha256:" + hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
