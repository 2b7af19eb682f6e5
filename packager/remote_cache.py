"""The build cache shared through an OCI registry (``edgepack build --cache-from/--cache-to
oci://HOST/REPO``), as BuildKit and Bazel share theirs through remote stores.

Each entry is an OCI artifact tagged with its key (a sha256: a valid tag): its metadata is the
config blob (with the sha256 of every blob, as the local cache records them), each blob a layer.
A remote hit is checked twice before it is used (every blob against its layer digest while it
downloads, and against the digest the metadata records), so a poisoned or damaged entry is
refused, said so in the build summary, and rebuilt. A registry that cannot be reached or refuses
a write is never a build failure: the build goes on with its local cache, and says why.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.errors import RegistryError
from runtime.oci.layout import TITLE
from runtime.oci.registry import Credentials, Reference, Registry, credentials_from_env

if TYPE_CHECKING:
    from .cache import Entry

ARTIFACT = "application/vnd.edgepack.build-cache.v1"
META = "application/vnd.edgepack.build-cache.meta.v1+json"
BLOB = "application/vnd.edgepack.build-cache.blob.v1"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()


@dataclass
class RemoteCache:
    """A registry repository holding build cache entries; ``read`` / ``write`` say which way."""

    base: str  # oci://HOST/REPO
    read: bool = True
    write: bool = False
    credentials: Credentials | None = None
    hits: int = 0
    pushed: int = 0
    refused: list[str] = field(default_factory=list)  # entries that did not check out, and why
    error: str | None = None  # the first failure to reach or write the registry (the build went on)

    def __post_init__(self) -> None:
        ref = Reference.parse(self.base)
        self.host, self.repo = ref.host, ref.repo
        if self.credentials is None:
            self.credentials = credentials_from_env(self.host)

    def _registry(self, key: str) -> Registry:
        return Registry(Reference(self.host, self.repo, key, None), credentials=self.credentials)

    def _failed(self, exc: RegistryError) -> None:
        if self.error is None:
            self.error = f"{exc.message} ({exc.hint})" if exc.hint else exc.message

    def has(self, key: str) -> bool:
        if not self.read or self.error is not None:
            return False
        registry = self._registry(key)
        try:
            registry.request("HEAD", f"/v2/{self.repo}/manifests/{key}", headers={"Accept": MANIFEST})
            return True
        except RegistryError as exc:
            if "(404)" not in exc.message:
                self._failed(exc)
            return False
        finally:
            registry.close()

    def get(self, key: str) -> Entry | None:
        """The entry for ``key``, checked; None when absent, refused or unreachable."""
        from .cache import Entry
        if not self.read or self.error is not None:
            return None
        registry = self._registry(key)
        try:
            data, _ = registry.manifest()
        except RegistryError as exc:
            if "(404)" not in exc.message:
                self._failed(exc)
            registry.close()
            return None
        try:
            doc = json.loads(data)
            config = doc["config"]
            layers = {item["annotations"][TITLE]: item for item in doc["layers"]}
            with tempfile.TemporaryDirectory(prefix="edgepack-remote-cache-") as tmp:
                meta = json.loads(self._blob(registry, config["digest"], int(config["size"]), Path(tmp) / "meta"))
                digests = meta.pop("_blobs")
                if set(digests) != set(layers):
                    raise ValueError("its metadata and its layers name different blobs")
                blobs: dict[str, bytes] = {}
                for name, item in layers.items():
                    blob = self._blob(registry, item["digest"], int(item["size"]), Path(tmp) / f"b{len(blobs)}")
                    if hashlib.sha256(blob).hexdigest() != digests[name]:
                        raise ValueError(f"blob {name} is not the one its metadata records")
                    blobs[name] = blob
            self.hits += 1
            return Entry(meta, blobs)
        except (RegistryError, ValueError, KeyError, TypeError) as exc:
            why = exc.message if isinstance(exc, RegistryError) else str(exc)
            self.refused.append(f"{key[:12]}: {why}")
            return None
        finally:
            registry.close()

    @staticmethod
    def _blob(registry: Registry, digest: str, size: int, path: Path) -> bytes:
        registry.fetch_blob(digest, size, path)  # checked against its digest as it arrives
        return path.read_bytes()

    def put(self, key: str, entry: Entry) -> None:
        """Store ``entry`` under ``key`` (blobs the registry has are not sent again)."""
        if not self.write or self.error is not None:
            return
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in entry.blobs.items()}
        meta = _json(dict(entry.meta, _blobs=digests))
        layers = [{"mediaType": BLOB, "digest": f"sha256:{digests[name]}", "size": len(entry.blobs[name]),
                   "annotations": {TITLE: name}} for name in sorted(entry.blobs)]
        manifest = _json({"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": ARTIFACT,
                          "config": {"mediaType": META, "digest": "sha256:" + hashlib.sha256(meta).hexdigest(),
                                     "size": len(meta)}, "layers": layers})
        registry = self._registry(key)
        try:
            for name in sorted(entry.blobs):
                registry.push_blob(f"sha256:{digests[name]}", entry.blobs[name])
            registry.push_blob("sha256:" + hashlib.sha256(meta).hexdigest(), meta)
            registry.push_manifest(manifest, MANIFEST, key)
            self.pushed += 1
        except RegistryError as exc:
            self._failed(exc)
        finally:
            registry.close()

    def summary(self) -> dict[str, object]:
        return {"base": self.base, "read": self.read, "write": self.write, "hits": self.hits, "pushed": self.pushed,
                "refused": list(self.refused), "error": self.error}
