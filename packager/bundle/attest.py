"""What a bundle says about itself for supply-chain tools: a CycloneDX 1.6 ML-BOM
(``bom.cdx.json``) and an in-toto Statement with a SLSA v1 provenance predicate
(``provenance.intoto.json``; a DSSE envelope signed with the build key when the build signs).

The BOM's components are the candidates (machine-learning-model, each with a model card holding
the parity and accuracy measured at build time), the runtime, and the pinned device requirements.
Host latency differs from run to run, so it is not in the bundle: ``measured_bom`` writes the same
BOM with each candidate's host latency added beside the bundle (``<bundle>.measured.cdx.json``),
BOM-linked to the bundle's, and ``edgepack push`` attaches it to the artifact as an OCI referrer.
The statement's subjects are the bundle's files with their sha256; its predicate names the source
model's digest, the manifest, the tool versions and the builder. Both are written without
timestamps or random ids, so a bundle stays byte-for-byte reproducible, and both are files
bundle.json lists (so bundle.sig covers them too).
``runtime/attestations.py`` checks them on the device.
"""
from __future__ import annotations

import base64
import hashlib
import json
import platform
import uuid
from pathlib import Path
from typing import Any

from runtime.attestations import BOM_FILE, PAYLOAD_TYPE, PREDICATE_TYPE, PROVENANCE_FILE, STATEMENT_TYPE, pae
from runtime.bundle import Bundle

from .. import __version__
from ..config.manifest import Manifest

BUILD_TYPE = "https://github.com/edgepack/edgepack/build/v1"
_ATTESTATION_FILES = {"bundle.json", "bundle.sig", "model.sig", BOM_FILE, PROVENANCE_FILE}


def _dumps(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _pins(requirements: str) -> list[tuple[str, str]]:
    out = []
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out.append((name.strip(), version.strip()))
    return out


def _metrics(c: Any) -> list[dict[str, str]]:
    """Parity and accuracy: what the build measured that is the same on every build. Host latency
    varies run to run, so it stays out of the bundle (whose bytes are reproducible): the build's
    JSON and report carry it, and ``python -m runtime bench`` measures it where it matters."""
    rows = []
    for o in (c.parity or {}).get("outputs", []):
        for key in ("max_abs", "cosine", "top1"):
            if o.get(key) is not None:
                rows.append({"type": f"parity {key} ({o['name']})", "value": f"{o[key]:.6g}"})
    if c.accuracy is not None:
        rows.append({"type": "accuracy", "value": f"{c.accuracy:.6g}"})
    return rows


def bom(document: Bundle, files: dict[str, dict[str, Any]], requirements: str) -> bytes:
    """The CycloneDX 1.6 ML-BOM of a bundle (deterministic)."""
    source = document.provenance.get("source", {})
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"edgepack:{document.name}:{document.target.get('name')}:"
                                            f"{json.dumps(files, sort_keys=True)}")
    sig = document.signature
    card_io = {"inputs": [{"format": f"{s.dtype}{list(s.shape)}"} for s in sig.inputs],
               "outputs": [{"format": f"{s.dtype}{list(s.shape)}"} for s in sig.outputs]}
    components: list[dict[str, Any]] = []
    for c in document.candidates:
        entry = files.get(c.file, {})
        components.append({
            "type": "machine-learning-model", "bom-ref": f"candidate:{c.id}", "name": c.id,
            "description": f"{c.format} {c.precision or ''} on {c.backend} ({', '.join(c.providers)})".strip(),
            "hashes": [{"alg": "SHA-256", "content": entry.get("sha256", "")}],
            "properties": [{"name": "edgepack:file", "value": c.file},
                           {"name": "edgepack:converter", "value": c.converter or ""}],
            "modelCard": {"modelParameters": {"modelArchitecture": source.get("description", ""), **card_io},
                          "quantitativeAnalysis": {"performanceMetrics": _metrics(c)}}})
    runtime_hash = hashlib.sha256(json.dumps({k: v for k, v in files.items() if k.startswith("runtime/")},
                                             sort_keys=True).encode()).hexdigest()
    components.append({"type": "library", "bom-ref": "edgepack-runtime", "name": "edgepack-runtime",
                       "version": __version__, "hashes": [{"alg": "SHA-256", "content": runtime_hash}],
                       "description": "the runtime copied into the bundle (hash over its files' hashes)"})
    for name, version in _pins(requirements):
        components.append({"type": "library", "bom-ref": f"pypi:{name}", "name": name, "version": version,
                           "purl": f"pkg:pypi/{name.lower()}@{version}"})
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": f"urn:uuid:{serial}", "version": 1,
           "metadata": {"component": {"type": "machine-learning-model", "bom-ref": "source", "name": document.name,
                                      "description": document.description or "",
                                      "hashes": [{"alg": "SHA-256", "content": source.get("sha256", "")}]},
                        "tools": {"components": [{"type": "application", "name": "edgepack", "version": __version__}]},
                        "properties": [{"name": "edgepack:target", "value": str(document.target.get("name"))}]},
           "components": components,
           "dependencies": [{"ref": f"candidate:{c.id}", "dependsOn": ["edgepack-runtime"]}
                            for c in document.candidates]}
    return _dumps(doc)


MEASURED_SUFFIX = ".measured.cdx.json"


def measured_bom(bundle_dir: Path, latencies: dict[str, float | None], host: str) -> bytes:
    """The bundle's BOM with each candidate's host latency in its model card: a BOM of its own
    (serial number derived from the bundle's and the figures), linking the bundle's BOM."""
    doc = json.loads((bundle_dir / BOM_FILE).read_text(encoding="utf-8"))
    link = f"{doc['serialNumber']}/{doc['version']}".replace("urn:uuid:", "urn:cdx:")
    figures = {k: v for k, v in sorted(latencies.items()) if v is not None}
    doc["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, link + json.dumps(figures) + host)}"
    for comp in doc["components"]:
        ms = figures.get(comp["name"]) if comp["type"] == "machine-learning-model" else None
        if ms is not None:
            comp["modelCard"]["quantitativeAnalysis"]["performanceMetrics"].append(
                {"type": "host latency (ms, median, batch 1)", "value": f"{ms:.6g}", "slice": host})
    doc["metadata"]["component"]["externalReferences"] = [
        {"type": "bom", "url": link, "comment": "the BOM inside the bundle (bom.cdx.json), without latency"}]
    doc["metadata"]["properties"].append({"name": "edgepack:measured-on", "value": host})
    return _dumps(doc)


def statement(document: Bundle, manifest: Manifest, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The in-toto Statement (SLSA v1 provenance) over the bundle's files."""
    import yaml
    source = document.provenance.get("source", {})
    subjects = [{"name": path, "digest": {"sha256": entry["sha256"]}} for path, entry in sorted(files.items())
                if path not in _ATTESTATION_FILES]
    manifest_text = Path(manifest.file).read_text(encoding="utf-8")
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"manifest": yaml.safe_load(manifest_text), "target": document.target.get("name")},
            "internalParameters": {"tools": document.provenance.get("tools", {})},
            "resolvedDependencies": [
                {"uri": f"model:{source.get('framework')}", "digest": {"sha256": source.get("sha256", "")}},
                {"uri": f"manifest:{Path(manifest.file).name}",
                 "digest": {"sha256": hashlib.sha256(manifest_text.encode()).hexdigest()}}]},
        "runDetails": {"builder": {"id": f"https://github.com/edgepack/edgepack@{__version__}",
                                   "version": {"edgepack": __version__, "python": platform.python_version()}},
                       "metadata": {"invocationId": f"{document.name}-{document.target.get('name')}"}}}}


def provenance(document: Bundle, manifest: Manifest, files: dict[str, dict[str, Any]], sign_key: Any | None) -> bytes:
    """The statement as JSON, or (with the build key) a DSSE envelope of it, signed."""
    doc = statement(document, manifest, files)
    if sign_key is None:
        return _dumps(doc)
    from cryptography.hazmat.primitives import serialization
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    raw = sign_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _dumps({"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                   "signatures": [{"keyid": hashlib.sha256(raw).hexdigest()[:16],
                                   "sig": base64.b64encode(sign_key.sign(pae(PAYLOAD_TYPE, payload))).decode()}]})
