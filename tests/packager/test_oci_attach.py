"""The measured BOM (the bundle's CycloneDX BOM plus each candidate's host latency, which the
bundle leaves out to stay reproducible) beside each bundle, and ``edgepack push`` attaching it to
the artifact as an OCI referrer in a real registry (Debian's docker-registry, which has no
referrers API: the spec's fallback tag); and a bundle signed with OpenSSF model-signing's model.sig
pulled with its ECDSA key. tests/registry_server.py starts the registry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from packager.bundle.signing import generate_keypair
from packager.oci_attach import CYCLONEDX, referrers
from packager.oci_push import push
from runtime.errors import SignatureError
from runtime.oci.pull import pull
from runtime.oci.registry import Credentials, Reference, Registry

from ..registry_server import PASSWORD, USER, RegistryServer, registry_binary

pytestmark = [pytest.mark.slow, pytest.mark.skipif(registry_binary() is None, reason="docker-registry is not "
                                                   "installed (scripts/ensure-registry.sh; make test runs it)")]
CREDS = Credentials(USER, PASSWORD)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """The tiny model built for x86-cpu, signed with an ECDSA key: (out folder, build JSON, public key)."""
    from ..conftest import TINY_MODEL, tiny_manifest
    folder = tmp_path_factory.mktemp("attach")
    (folder / "tiny.py").write_text(TINY_MODEL)
    private, public = generate_keypair(folder / "keys", model_signing=True)
    proc = subprocess.run([sys.executable, "-m", "packager", "build", str(tiny_manifest(folder, targets=["x86-cpu"])),
                           "--out", str(folder / "out"), "--sign", str(private), "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "out", json.loads(proc.stdout), public


def test_the_measured_bom_adds_host_latency_to_the_bundles_bom(built: tuple[Path, dict, Path]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    out, result, _ = built
    [target] = result["targets"]
    path = Path(target["measured_bom"])
    assert path == out / "tiny-x86-cpu.measured.cdx.json"
    text = path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    measured, inner = json.loads(text), json.loads((out / "tiny-x86-cpu" / "bom.cdx.json").read_text())
    link = inner["serialNumber"].replace("urn:uuid:", "urn:cdx:") + "/1"
    assert measured["metadata"]["component"]["externalReferences"][0] == dict(
        measured["metadata"]["component"]["externalReferences"][0], type="bom", url=link)
    assert measured["serialNumber"] != inner["serialNumber"]
    in_bundle = {c["id"] for c in json.loads((out / "tiny-x86-cpu" / "bundle.json").read_text())["candidates"]}
    latency = {c["id"]: c["host_latency_ms"] for c in target["candidates"] if c["id"] in in_bundle}
    assert latency and all(ms > 0 for ms in latency.values())
    for comp in measured["components"]:
        if comp["type"] != "machine-learning-model":
            continue
        rows = {m["type"]: m for m in comp["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]}
        row = rows["host latency (ms, median, batch 1)"]
        assert float(row["value"]) == pytest.approx(latency[comp["name"]], rel=1e-5)
        assert row["slice"].startswith("build host: ")
        inner_comp = next(c for c in inner["components"] if c["bom-ref"] == comp["bom-ref"])
        assert comp["hashes"] == inner_comp["hashes"]  # the same files: only the figures were added


def test_push_attaches_the_measured_bom_as_a_referrer(built: tuple[Path, dict, Path], registry: RegistryServer,
                                                      tmp_path: Path) -> None:
    out, _, public = built
    reference = f"oci://{registry.host}/fleet/attach:v1"
    env = {**os.environ, "EDGEPACK_REGISTRY_USERNAME": USER, "EDGEPACK_REGISTRY_PASSWORD": PASSWORD,
           "EDGEPACK_REGISTRY_CA_FILE": str(registry.ca)}
    proc = subprocess.run([sys.executable, "-m", "packager", "push", str(out / "tiny-x86-cpu.tar.gz"), reference,
                           "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    pushed = json.loads(proc.stdout)
    assert list(pushed["attached"]) == ["tiny-x86-cpu.measured.cdx.json"]
    client = Registry(Reference.parse(reference), credentials=CREDS, ca_file=str(registry.ca))
    try:
        [found] = referrers(client, pushed["digest"], CYCLONEDX)
        assert found["digest"] == pushed["attached"]["tiny-x86-cpu.measured.cdx.json"]
        data, _ = client.manifest_at(found["digest"], found["mediaType"]) or (b"", {})
        doc = json.loads(data)
        assert doc["subject"]["digest"] == pushed["digest"] and doc["artifactType"] == CYCLONEDX
        blob = tmp_path / "bom.json"
        client.fetch_blob(doc["layers"][0]["digest"], doc["layers"][0]["size"], blob)
        assert blob.read_bytes() == (out / "tiny-x86-cpu.measured.cdx.json").read_bytes()
    finally:
        client.close()
    # pushing again does not list it twice
    again = push(out / "tiny-x86-cpu", reference, credentials=CREDS, ca_file=str(registry.ca))
    client = Registry(Reference.parse(reference), credentials=CREDS, ca_file=str(registry.ca))
    try:
        assert len(referrers(client, again.digest, CYCLONEDX)) == 1
    finally:
        client.close()

    # the bundle carries model.sig (ECDSA): pulled with that key it checks out; with another, refused
    got = pull(reference, tmp_path / "dev", key=str(public), credentials=CREDS, ca_file=str(registry.ca))
    assert got.signature_checked and (got.bundle / "model.sig").is_file()
    _, other = generate_keypair(tmp_path / "other", model_signing=True)
    with pytest.raises(SignatureError, match="another key"):
        pull(reference, tmp_path / "dev2", key=str(other), credentials=CREDS, ca_file=str(registry.ca))
    assert not (tmp_path / "dev2" / "tiny-x86-cpu").exists()
