"""A bundle as an OCI artifact: one layer per file, CNCF ModelPack media types where they fit.

The manifest is an OCI image manifest whose ``artifactType`` and config are ModelPack's
(``application/vnd.cncf.model.*``). Each file of the bundle is its own layer, named by the
``org.opencontainers.image.title`` annotation (as ORAS does), so a new version shares every
unchanged blob (the runtime, unchanged models) and a pull fetches only what changed. Model files
are ModelPack weights, the runtime's code is code, golden data is a dataset, texts are docs;
``bundle.json`` and ``bundle.sig`` have edgepack's own types. The layer digests are the sha256
``bundle.json`` lists, so a signature over ``bundle.json`` covers the whole artifact: the puller
checks it (and that every layer is a file bundle.json lists, with its digest and size) before it
downloads anything else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import RegistryError
from ..integrity import MODEL_SIGNATURE_FILE, UNLISTED_FILES

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
CONFIG = "application/vnd.cncf.model.config.v1+json"
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
CODE = "application/vnd.cncf.model.code.v1.raw"
DATASET = "application/vnd.cncf.model.dataset.v1.raw"
DOC = "application/vnd.cncf.model.doc.v1.raw"
BUNDLE_JSON = "application/vnd.edgepack.bundle.v1+json"
SIGNATURE = "application/vnd.edgepack.bundle.signature.v1+json"
MODEL_SIGNATURE = "application/vnd.dev.sigstore.bundle.v0.3+json"  # OpenSSF model-signing's model.sig
TITLE = "org.opencontainers.image.title"
MAX_MANIFEST = 4 << 20


def media_type(path: str) -> str:
    """The layer media type of a bundle file."""
    if path == "bundle.json":
        return BUNDLE_JSON
    if path == "bundle.sig":
        return SIGNATURE
    if path == MODEL_SIGNATURE_FILE:
        return MODEL_SIGNATURE
    top = path.split("/", 1)[0]
    if top == "models":
        return WEIGHT
    if top == "runtime":
        return CODE
    if top in ("golden", "explain"):
        return DATASET
    return DOC


@dataclass(frozen=True)
class Layer:
    """One file of the bundle as a blob."""

    path: str
    digest: str
    size: int
    media_type: str

    def to_dict(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size,
                "annotations": {TITLE: self.path}}


def parse_manifest(data: bytes, where: str) -> tuple[dict[str, Any], list[Layer]]:
    """(the config descriptor, the layers) of an edgepack bundle manifest; RegistryError for
    anything else (an image, an index, a manifest without titles)."""
    if len(data) > MAX_MANIFEST:
        raise RegistryError(f"the manifest is {len(data)} bytes, more than a bundle's", where=where)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"the manifest is not JSON ({exc})", where=where) from None
    if not isinstance(doc, dict) or doc.get("artifactType") != ARTIFACT or not isinstance(doc.get("layers"), list):
        raise RegistryError("this is not an edgepack bundle (its manifest is not a ModelPack artifact with layers)",
                            where=where, hint="push bundles with `edgepack push BUNDLE oci://...`")
    layers = []
    for i, item in enumerate(doc["layers"]):
        try:
            path = item["annotations"][TITLE]
            layer = Layer(str(path), str(item["digest"]), int(item["size"]), str(item["mediaType"]))
        except (KeyError, TypeError, ValueError):
            raise RegistryError(f"layer {i} has no title, digest, size or media type", where=where) from None
        if not layer.digest.startswith("sha256:") or len(layer.digest) != 71:
            raise RegistryError(f"layer {path!r} has digest {layer.digest!r}: only sha256 is taken", where=where)
        layers.append(layer)
    paths = [layer.path for layer in layers]
    if "bundle.json" not in paths or len(set(paths)) != len(paths):
        raise RegistryError("the manifest lacks bundle.json or lists a file twice", where=where)
    return dict(doc.get("config") or {}), layers


def check_against_bundle(layers: list[Layer], files: dict[str, dict[str, Any]], where: str) -> None:
    """Every layer is a file bundle.json lists (same sha256 and size) or bundle.json / a signature,
    and every listed file has a layer: checked before any other blob is downloaded."""
    by_path = {layer.path: layer for layer in layers}
    for path, layer in by_path.items():
        if path in UNLISTED_FILES:
            continue
        entry = files.get(path)
        if entry is None:
            raise RegistryError(f"layer {path!r} is not a file of the bundle (bundle.json does not list it): refused",
                                where=where, hint="the artifact was altered after it was pushed")
        if layer.digest != f"sha256:{entry.get('sha256')}" or layer.size != entry.get("size"):
            raise RegistryError(f"layer {path!r} ({layer.digest[:19]}, {layer.size} bytes) is not the file "
                                "bundle.json lists: refused", where=where,
                                hint="the artifact was altered after it was pushed")
    missing = sorted(set(files) - set(by_path))
    if missing:
        raise RegistryError(f"the artifact lacks {len(missing)} file(s) of the bundle ({', '.join(missing[:3])})",
                            where=where, hint="push the whole bundle again")
