"""``edgepack push BUNDLE oci://HOST/REPO:TAG``: a bundle into an OCI registry, one layer per file,
and the measured BOM beside it (host latency) attached as a referrer (oci_attach.py).

The manifest and config are written deterministically (sorted keys, no timestamps), so the same
bundle always has the same digest; blobs the registry already holds (the runtime's code, models
that did not change) are not uploaded again. The layout is ``runtime.oci.layout``'s, which the
device's ``python -m runtime pull`` reads.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.attestations import BOM_FILE
from runtime.bundle import open_bundle
from runtime.oci.layout import ARTIFACT, CONFIG, MANIFEST, TITLE, Layer, media_type
from runtime.oci.registry import Credentials, Reference, Registry

from .oci_attach import CYCLONEDX, attach, canonical_json, measured_bom_for


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str
    layers: int
    total_bytes: int
    uploaded_bytes: int
    skipped_bytes: int
    attached: dict[str, str] = field(default_factory=dict)  # file name: its referrer manifest's digest

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "layers": self.layers,
                "total_bytes": self.total_bytes, "uploaded_bytes": self.uploaded_bytes,
                "skipped_bytes": self.skipped_bytes, "attached": self.attached}


def artifact(root: Path, name: str, version: str, formats: list[str]) -> tuple[list[Layer], bytes, bytes]:
    """(layers, config bytes, manifest bytes) of the bundle folder ``root``."""
    from runtime.integrity import list_bundle_files
    files = list_bundle_files(root)
    heads = [p for p in ("bundle.json", "bundle.sig", "model.sig") if (root / p).is_file()]
    layers = []
    for path in heads + sorted(files):
        entry = files.get(path)
        if entry is None:
            data = (root / path).read_bytes()
            entry = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        layers.append(Layer(path, f"sha256:{entry['sha256']}", int(entry["size"]), media_type(path)))
    config = canonical_json({"descriptor": {"name": name, "version": version, "vendor": "edgepack"},
                    "config": {"format": ",".join(formats)},
                    "modelfs": {"type": "layers", "diffIds": [layer.digest for layer in layers]}})
    manifest = canonical_json({"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": ARTIFACT,
                      "config": {"mediaType": CONFIG, "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                                 "size": len(config)},
                      "layers": [layer.to_dict() for layer in layers],
                      "annotations": {TITLE: name}})
    return layers, config, manifest


def push(bundle_path: str | Path, reference: str, *, credentials: Credentials | None = None,
         ca_file: str | None = None, plain_http: bool = False) -> PushResult:
    """Check the bundle (its files against bundle.json), then upload what the registry lacks."""
    ref = Reference.parse(reference)
    bundle = open_bundle(bundle_path)
    bundle.verify()
    formats = sorted({c.format for c in bundle.candidates})
    layers, config, manifest = artifact(bundle.root, bundle.name, ref.tag or "latest", formats)
    registry = Registry(ref, credentials=credentials, ca_file=ca_file, plain_http=plain_http)
    uploaded = skipped = 0
    try:
        for layer in layers:
            if registry.push_blob(layer.digest, (bundle.root / layer.path).read_bytes()):
                uploaded += layer.size
            else:
                skipped += layer.size
        registry.push_blob("sha256:" + hashlib.sha256(config).hexdigest(), config)
        digest = registry.push_manifest(manifest, MANIFEST, ref.tag or "latest")
        attached = {}
        measured = measured_bom_for(Path(bundle_path), bundle.root / BOM_FILE)
        if measured is not None:  # the BOM with host latency: a referrer of the bundle
            attached[measured.name] = attach(registry, digest, len(manifest), measured.read_bytes(), CYCLONEDX,
                                             measured.name)
    finally:
        registry.close()
    return PushResult(str(ref), digest, len(layers), sum(layer.size for layer in layers), uploaded, skipped,
                      attached)
