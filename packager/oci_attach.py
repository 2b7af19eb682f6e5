"""Documents attached to a pushed bundle as OCI referrers (OCI distribution 1.1): the measured BOM
(``<bundle>.measured.cdx.json``: the bundle's BOM with host latency, which the bundle itself leaves
out to stay reproducible).

A referrer is a manifest whose ``subject`` is the bundle's manifest. A registry with the referrers
API indexes it itself (it answers the PUT with ``OCI-Subject``); for one without (CNCF
distribution 2.x, Debian's docker-registry) the spec's fallback is kept too: an image index under
the tag ``sha256-<hex>`` listing the subject's referrers. ``referrers`` reads either, as ORAS and
cosign do.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runtime.errors import RegistryError
from runtime.oci.layout import MANIFEST, TITLE
from runtime.oci.registry import Registry

from .bundle.attest import MEASURED_SUFFIX

INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
CYCLONEDX = "application/vnd.cyclonedx+json"


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, no spaces: the same document always has the same digest."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def measured_bom_for(bundle_path: Path, bundle_bom: Path) -> Path | None:
    """The measured BOM beside a bundle folder or archive, when it is this bundle's (it links the
    serial number of the bundle's own BOM, ``bundle_bom``); None when there is none."""
    name = bundle_path.name.removesuffix(".tar.gz")
    path = bundle_path.with_name(name + MEASURED_SUFFIX)
    if not path.is_file() or not bundle_bom.is_file():
        return None
    bom = json.loads(bundle_bom.read_bytes())
    link = f"{bom['serialNumber']}/{bom['version']}".replace("urn:uuid:", "urn:cdx:")
    try:
        refs = json.loads(path.read_bytes())["metadata"]["component"].get("externalReferences", [])
    except (ValueError, KeyError, TypeError):
        return None
    return path if any(r.get("url") == link for r in refs) else None


def attach(registry: Registry, subject: str, subject_size: int, data: bytes, artifact_type: str,
           title: str) -> str:
    """Push ``data`` as a referrer of the manifest ``subject``; the referrer manifest's digest."""
    registry.push_blob(_digest(data), data)
    registry.push_blob(_digest(EMPTY), EMPTY)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": artifact_type,
                      "config": {"mediaType": EMPTY_TYPE, "digest": _digest(EMPTY), "size": len(EMPTY)},
                      "layers": [{"mediaType": artifact_type, "digest": _digest(data), "size": len(data),
                                  "annotations": {TITLE: title}}],
                      "subject": {"mediaType": MANIFEST, "digest": subject, "size": subject_size}})
    digest = registry.push_manifest(manifest, MANIFEST, _digest(manifest))
    if "oci-subject" not in registry.pushed_headers:  # no referrers API: the fallback tag
        tag = subject.replace(":", "-")
        found = registry.manifest_at(tag, INDEX)
        index: dict[str, Any] = json.loads(found[0]) if found else {"schemaVersion": 2, "mediaType": INDEX,
                                                                     "manifests": []}
        entry = {"mediaType": MANIFEST, "digest": digest, "size": len(manifest), "artifactType": artifact_type}
        if entry not in index["manifests"]:
            index["manifests"].append(entry)
            registry.push_manifest(canonical_json(index), INDEX, tag)
    return digest


def referrers(registry: Registry, subject: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
    """The descriptors of the manifests that refer to ``subject`` (of ``artifact_type`` when given):
    from the referrers API, or from the fallback tag where the registry has no such API."""
    try:
        registry.request("GET", f"/v2/{registry.ref.repo}/referrers/{subject}", headers={"Accept": INDEX})
        index = json.loads(registry.body)
    except RegistryError:  # no referrers API here (distribution 2.x answers 404)
        found = registry.manifest_at(subject.replace(":", "-"), INDEX)
        index = json.loads(found[0]) if found else {"manifests": []}
    return [m for m in index.get("manifests", []) if artifact_type is None or m.get("artifactType") == artifact_type]
