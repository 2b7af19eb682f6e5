"""Every bundle's CycloneDX 1.6 ML-BOM and in-toto / SLSA provenance: valid under CycloneDX's own
schema, describing exactly the bundle's files, signed with the build key (DSSE) when the build
signs, and checked on the device (a planted wrong BOM and a wrong key are caught)."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from packager.bundle.signing import generate_keypair
from packager.pipeline import build
from runtime.attestations import BOM_FILE, PROVENANCE_FILE, check_attestations, pae
from runtime.bundle import open_bundle
from runtime.errors import IntegrityError, SignatureError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from ...conftest import TINY_MODEL, tiny_manifest
    folder = tmp_path_factory.mktemp("attest")
    (folder / "tiny.py").write_text(TINY_MODEL)
    private, public = generate_keypair(folder / "keys")
    result = build(tiny_manifest(folder, targets=["x86-cpu"]), folder / "out", sign=str(private))
    assert result.ok
    return folder / "out" / "tiny-x86-cpu", public


def test_the_bom_is_valid_cyclonedx_and_describes_the_candidates(signed: tuple[Path, Path]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    root, _ = signed
    text = (root / BOM_FILE).read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    doc = json.loads((root / "bundle.json").read_text())
    models = {c["name"]: c for c in bom["components"] if c["type"] == "machine-learning-model"}
    assert set(models) == {c["id"] for c in doc["candidates"]}
    for cand in doc["candidates"]:
        comp = models[cand["id"]]
        assert comp["hashes"][0]["content"] == doc["files"][cand["file"]]["sha256"]
        metrics = {m["type"]: m["value"] for m in comp["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]}
        assert float(metrics["parity cosine (scores)"]) > 0.99 and "parity max_abs (scores)" in metrics
        assert not any("latency" in k for k in metrics)  # it varies run to run: the bundle stays reproducible
    pins = {c["name"]: c["version"] for c in bom["components"] if c["bom-ref"].startswith("pypi:")}
    assert pins["onnxruntime"] and f"onnxruntime=={pins['onnxruntime']}" in (root / "requirements.txt").read_text()
    assert bom["metadata"]["component"]["hashes"][0]["content"] == doc["provenance"]["source"]["sha256"]


def test_the_provenance_is_a_signed_slsa_statement_over_every_file(signed: tuple[Path, Path]) -> None:
    from cryptography.hazmat.primitives import serialization
    root, public = signed
    envelope = json.loads((root / PROVENANCE_FILE).read_text())
    payload = base64.b64decode(envelope["payload"])
    key = serialization.load_pem_public_key(public.read_bytes())
    key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae(envelope["payloadType"], payload))  # type: ignore[union-attr]
    statement = json.loads(payload)
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    files = json.loads((root / "bundle.json").read_text())["files"]
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects == {k: v["sha256"] for k, v in files.items() if k not in (BOM_FILE, PROVENANCE_FILE)}
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    manifest = (root.parent.parent / "tiny.yaml").read_bytes()
    assert deps[1]["digest"]["sha256"] == hashlib.sha256(manifest).hexdigest()
    report = check_attestations(open_bundle(root), str(public))
    assert report.signature_checked and report.subjects == len(subjects)


def test_a_wrong_key_and_a_planted_wrong_bom_are_caught(signed: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil
    root, _ = signed
    other = generate_keypair(tmp_path / "other")[1]
    with pytest.raises(SignatureError, match="not signed by this key"):
        check_attestations(open_bundle(root), str(other))
    copy = tmp_path / "b"
    shutil.copytree(root, copy)
    (copy / "bundle.sig").unlink()  # re-written below: an unsigned bundle whose hashes all check out
    bom = json.loads((copy / BOM_FILE).read_text())
    comp = next(c for c in bom["components"] if c["type"] == "machine-learning-model")
    comp["hashes"][0]["content"] = "0" * 64
    data = json.dumps(bom).encode()
    (copy / BOM_FILE).write_bytes(data)
    doc = json.loads((copy / "bundle.json").read_text())
    doc["files"][BOM_FILE] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (copy / "bundle.json").write_text(json.dumps(doc))
    bundle = open_bundle(copy)
    bundle.verify()  # every file matches bundle.json: only the BOM's content is wrong
    with pytest.raises(IntegrityError, match="does not carry"):
        check_attestations(bundle)
