"""Pull a bundle from an OCI registry with nothing but the runtime.

Order of trust: the manifest (its digest checked when the reference pins one), then
``bundle.json`` and its signatures (``bundle.sig``, or OpenSSF model-signing's ``model.sig`` for
an ECDSA ``key``; checked with ``key`` before anything else is fetched), then the layers against
what ``bundle.json`` lists, then the other blobs, each checked against its digest. Blobs are
kept in a content-addressed cache (``~/.cache/edgepack/oci``,
``$EDGEPACK_OCI_CACHE``): a blob already there is not downloaded again (a new version fetches only
what changed) and an interrupted download resumes from its partial file. The bundle is put
together in a hidden folder beside the destination, verified whole, and moved into place in one
rename: an interrupted or refused pull leaves nothing half-installed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RegistryError
from ..integrity import UNLISTED_FILES
from .layout import Layer, check_against_bundle, parse_manifest
from .registry import Credentials, Reference, Registry


def cache_dir() -> Path:
    if os.environ.get("EDGEPACK_OCI_CACHE"):
        return Path(os.environ["EDGEPACK_OCI_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack" / "oci"


@dataclass(frozen=True)
class PullResult:
    """What a pull did: where the bundle is, and the bytes it moved."""

    reference: str
    digest: str
    bundle: Path
    files: int
    total_bytes: int
    downloaded_bytes: int
    reused_bytes: int
    signature_checked: bool

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "bundle": str(self.bundle), "files": self.files,
                "total_bytes": self.total_bytes, "downloaded_bytes": self.downloaded_bytes,
                "reused_bytes": self.reused_bytes, "signature_checked": self.signature_checked}


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class _Blobs:
    """The blob cache: fetch what is missing (resuming), reuse what is there (re-hashed)."""

    def __init__(self, registry: Registry, root: Path, max_rate: float | None) -> None:
        self.registry, self.root, self.max_rate = registry, root / "blobs" / "sha256", max_rate
        self.root.mkdir(parents=True, exist_ok=True)
        self.downloaded = self.reused = 0

    def get(self, layer: Layer) -> Path:
        path = self.root / layer.digest.removeprefix("sha256:")
        if path.is_file():
            if path.stat().st_size == layer.size and _hash(path) == layer.digest:
                self.reused += layer.size
                return path
            path.unlink()  # damaged in the cache: fetched again
        self.downloaded += self.registry.fetch_blob(layer.digest, layer.size, path, max_rate=self.max_rate)
        return path


def _place(blob: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(blob, dest)


def pull(reference: str, dest_dir: str | os.PathLike[str], *, key: Any = None, credentials: Credentials | None = None,
         ca_file: str | None = None, plain_http: bool = False, max_rate: float | None = None,
         cache: Path | None = None) -> PullResult:
    """Pull ``reference`` into ``dest_dir/<name>-<target>``; see the module's docstring."""
    from ..bundle import open_bundle
    from ..signing import verify_signature

    ref = Reference.parse(reference)
    where = str(ref)
    dest_root = Path(dest_dir)
    dest_root.mkdir(parents=True, exist_ok=True)
    registry = Registry(ref, credentials=credentials, ca_file=ca_file, plain_http=plain_http)
    staging = dest_root / f".pull-{os.getpid()}-{ref.repo.replace('/', '_')}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest, digest = registry.manifest()
        _, layers = parse_manifest(manifest, where)
        blobs = _Blobs(registry, cache or cache_dir(), max_rate)
        by_path = {layer.path: layer for layer in layers}
        staging.mkdir()
        for head in sorted(UNLISTED_FILES):  # bundle.json and the signatures
            if head in by_path:
                _place(blobs.get(by_path[head]), staging / head)
        if key is not None:
            verify_signature(staging, key)  # before anything else of the artifact is fetched
        try:
            doc = json.loads((staging / "bundle.json").read_bytes())
            files, name, target = doc["files"], doc["name"], doc["target"]["name"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"the artifact's bundle.json is not a bundle's ({exc})", where=where) from None
        check_against_bundle(layers, files, where)
        for layer in layers:
            if layer.path not in UNLISTED_FILES:
                _place(blobs.get(layer), staging / layer.path)
        open_bundle(staging, public_key=key).verify()  # every file against bundle.json, nothing extra
        final = dest_root / f"{name}-{target}"
        old = dest_root / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
        return PullResult(where, digest, final, len(layers), sum(layer.size for layer in layers), blobs.downloaded,
                          blobs.reused, key is not None)
    finally:
        registry.close()
        shutil.rmtree(staging, ignore_errors=True)
