"""Bundles through a real OCI registry (Debian's docker-registry, TLS and basic auth, started by the
test; tests/registry_server.py): ``edgepack push``, then ``python -m runtime pull`` in a Python that
sees only numpy, onnxruntime and the runtime, and the faults the issue names, each checked to have
happened: a tampered blob, wrong credentials, a registry stopped mid-pull, a resumed pull."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from packager.oci_push import push
from runtime.errors import RegistryError, SignatureError
from runtime.oci.pull import pull
from runtime.oci.registry import Credentials

from ...device_env import ONNXRUNTIME, only_these_packages, run_isolated
from ...registry_server import PASSWORD, USER, RegistryServer, registry_binary
from ..conftest import RUNTIME_SRC, build_bundle, make_onnx

pytestmark = pytest.mark.skipif(registry_binary() is None, reason="docker-registry is not installed "
                                "(scripts/ensure-registry.sh installs it; make test runs it)")
CREDS = Credentials(USER, PASSWORD)


def bundle_with_weights(dest: Path, seed: int, mb: float = 1.0) -> Path:
    """The tiny test bundle whose ONNX model also carries ``mb`` MB of unused weights (seeded): two
    seeds give two versions that differ only in the model file (and bundle.json's hash of it)."""
    model_file = dest / "model.onnx"
    dest.mkdir(parents=True)
    make_onnx(model_file)
    model = onnx.load(str(model_file))
    extra = np.random.default_rng(seed).standard_normal(int(mb * 262144)).astype(np.float32)
    model.graph.initializer.append(numpy_helper.from_array(extra, "unused_weights"))
    return build_bundle(dest / "b", onnx_model=False, artifacts={"models/tiny.fp32.onnx": model.SerializeToString()})


def ref(registry: RegistryServer, tag: str, repo: str = "fleet/tiny") -> str:
    return f"oci://{registry.host}/{repo}:{tag}"


def device_site(tmp: Path) -> Path:
    """numpy + onnxruntime + the runtime package, nothing else (no packager, no cryptography)."""
    site = only_these_packages(tmp / "site", ONNXRUNTIME)
    shutil.copytree(RUNTIME_SRC, site / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def test_push_then_pull_on_a_device_with_only_the_runtime(registry: RegistryServer, tmp_path: Path) -> None:
    v1 = bundle_with_weights(tmp_path / "v1", seed=1)
    pushed = push(v1, ref(registry, "v1"), credentials=CREDS, ca_file=str(registry.ca))
    assert pushed.uploaded_bytes == pushed.total_bytes and pushed.layers > 20  # one layer per file
    site = device_site(tmp_path)
    env_cache = tmp_path / "device-cache"
    device = tmp_path / "device"
    device.mkdir()
    proc = subprocess.run([sys.executable, "-S", "-m", "runtime", "pull", ref(registry, "v1"), "--to", "bundles",
                           "--ca-file", str(registry.ca), "--json"], cwd=device, capture_output=True, text=True,
                          timeout=300, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(site),
                                            "EDGEPACK_REGISTRY_USERNAME": USER, "EDGEPACK_REGISTRY_PASSWORD": PASSWORD,
                                            "EDGEPACK_OCI_CACHE": str(env_cache), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["digest"] == pushed.digest and got["downloaded_bytes"] == pushed.total_bytes
    verify = run_isolated(device / "bundles" / "tiny-cpu", site, "-m", "runtime", "verify", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["passed"], verify.stderr
    # pinned by digest: the same bundle; a digest the registry does not hold is refused
    again = pull(f"oci://{registry.host}/fleet/tiny@{pushed.digest}", tmp_path / "pinned", credentials=CREDS,
                 ca_file=str(registry.ca), cache=tmp_path / "cache2")
    assert again.digest == pushed.digest
    with pytest.raises(RegistryError, match="404"):
        pull(f"oci://{registry.host}/fleet/tiny@sha256:{'0' * 64}", tmp_path / "x", credentials=CREDS,
             ca_file=str(registry.ca), cache=tmp_path / "cache2")


def test_a_new_version_moves_only_what_changed(registry: RegistryServer, tmp_path: Path) -> None:
    v1, v2 = bundle_with_weights(tmp_path / "v1", seed=11), bundle_with_weights(tmp_path / "v2", seed=12)
    push(v1, ref(registry, "a1"), credentials=CREDS, ca_file=str(registry.ca))
    second = push(v2, ref(registry, "a2"), credentials=CREDS, ca_file=str(registry.ca))
    model_size = (v2 / "models" / "tiny.fp32.onnx").stat().st_size
    assert second.uploaded_bytes <= model_size * 1.05 and second.skipped_bytes > 0
    cache = tmp_path / "cache"
    first = pull(ref(registry, "a1"), tmp_path / "dev", credentials=CREDS, ca_file=str(registry.ca), cache=cache)
    update = pull(ref(registry, "a2"), tmp_path / "dev", credentials=CREDS, ca_file=str(registry.ca), cache=cache)
    assert first.downloaded_bytes == first.total_bytes
    assert update.downloaded_bytes <= model_size * 1.05, (update.downloaded_bytes, model_size)
    assert update.reused_bytes == update.total_bytes - update.downloaded_bytes
    assert (tmp_path / "dev" / "tiny-cpu" / "models" / "tiny.fp32.onnx").read_bytes() == \
        (v2 / "models" / "tiny.fp32.onnx").read_bytes()


def test_a_tampered_blob_in_the_registry_is_refused(registry: RegistryServer, tmp_path: Path) -> None:
    v1 = bundle_with_weights(tmp_path / "v1", seed=21)
    push(v1, ref(registry, "t1", repo="fleet/tampered"), credentials=CREDS, ca_file=str(registry.ca))
    digest = "sha256:" + json.loads((v1 / "bundle.json").read_text())["files"]["models/tiny.fp32.onnx"]["sha256"]
    stored = registry.blob(digest)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))  # planted: the registry now serves other bytes under that digest
    assert registry.blob(digest).read_bytes() != (v1 / "models" / "tiny.fp32.onnx").read_bytes()
    with pytest.raises(RegistryError, match="does not match its digest") as info:
        pull(ref(registry, "t1", repo="fleet/tampered"), tmp_path / "dev", credentials=CREDS,
             ca_file=str(registry.ca), cache=tmp_path / "cache")
    assert info.value.hint and "tampered" in info.value.hint
    assert not (tmp_path / "dev" / "tiny-cpu").exists() and not list((tmp_path / "dev").iterdir())


def test_wrong_credentials_and_unknown_tags_are_clear_errors(registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="refused the credentials") as info:
        pull(ref(registry, "v1"), tmp_path, credentials=Credentials(USER, "wrong"), ca_file=str(registry.ca))
    assert "EDGEPACK_REGISTRY_PASSWORD" in (info.value.hint or "")
    with pytest.raises(RegistryError, match="asks for credentials"):
        pull(ref(registry, "v1"), tmp_path, credentials=None, ca_file=str(registry.ca))
    with pytest.raises(RegistryError, match="TLS") as tls:
        pull(ref(registry, "v1"), tmp_path, credentials=CREDS)  # the test CA not trusted
    assert "--ca-file" in (tls.value.hint or "")
    with pytest.raises(RegistryError, match="404"):
        pull(ref(registry, "no-such-tag"), tmp_path, credentials=CREDS, ca_file=str(registry.ca))
    proc = subprocess.run([sys.executable, "-m", "runtime", "pull", ref(registry, "v1"), "--ca-file", str(registry.ca)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "EDGEPACK_REGISTRY_USERNAME": USER, "EDGEPACK_REGISTRY_PASSWORD": "no"})
    assert proc.returncode == 2 and "refused the credentials" in proc.stderr and "Traceback" not in proc.stderr


def cached_bytes(cache: Path) -> int:
    return sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())


def largest_partial(cache: Path) -> int:
    """The size of the biggest partial download in the cache (files come and go while it runs)."""
    sizes = [0]
    for p in (cache.rglob("*.partial") if cache.exists() else []):
        try:
            sizes.append(p.stat().st_size)
        except FileNotFoundError:
            pass
    return max(sizes)


def test_a_registry_stopped_mid_pull_leaves_nothing_and_the_next_pull_resumes(tmp_path: Path) -> None:
    server = RegistryServer(tmp_path / "reg").start()
    try:
        v1 = bundle_with_weights(tmp_path / "v1", seed=31, mb=3.0)
        pushed = push(v1, f"oci://{server.host}/fleet/slow:v1", credentials=CREDS, ca_file=str(server.ca))
        cache, dest = tmp_path / "cache", tmp_path / "dev"
        env = {**os.environ, "EDGEPACK_REGISTRY_USERNAME": USER, "EDGEPACK_REGISTRY_PASSWORD": PASSWORD,
               "EDGEPACK_OCI_CACHE": str(cache)}
        slow = subprocess.Popen([sys.executable, "-m", "runtime", "pull", f"oci://{server.host}/fleet/slow:v1",
                                 "--to", str(dest), "--ca-file", str(server.ca), "--max-rate", "400000"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and largest_partial(cache) < 100_000:
            time.sleep(0.05)
        server.stop()  # the registry goes away in the middle of the model's download
        _, err = slow.communicate(timeout=120)
        assert slow.returncode == 2 and "Traceback" not in err, err
        assert "stopped after" in err or "cannot reach the registry" in err, err
        assert not dest.exists() or not any(p.name == "tiny-cpu" for p in dest.iterdir())  # nothing half-installed
        kept = cached_bytes(cache)
        assert kept > 100_000  # what arrived before the stop (whole blobs, and any partial one) is kept
        server.start()
        resumed = pull(f"oci://{server.host}/fleet/slow:v1", dest, credentials=CREDS, ca_file=str(server.ca),
                       cache=cache)
        assert resumed.digest == pushed.digest
        assert resumed.downloaded_bytes <= resumed.total_bytes - kept  # only what was missing
        assert (dest / "tiny-cpu" / "models" / "tiny.fp32.onnx").read_bytes() == \
            (v1 / "models" / "tiny.fp32.onnx").read_bytes()
    finally:
        server.stop()


def test_the_signature_is_checked_before_the_rest_is_fetched(registry: RegistryServer, tmp_path: Path) -> None:
    from packager.bundle.signing import generate_keypair, load_private_key, sign
    private, public = generate_keypair(tmp_path / "keys")
    other = generate_keypair(tmp_path / "other")[1]
    v1 = bundle_with_weights(tmp_path / "v1", seed=41)
    (v1 / "bundle.sig").write_text(json.dumps(sign((v1 / "bundle.json").read_bytes(), load_private_key(private))))
    push(v1, ref(registry, "s1", repo="fleet/signed"), credentials=CREDS, ca_file=str(registry.ca))
    good = pull(ref(registry, "s1", repo="fleet/signed"), tmp_path / "ok", key=str(public), credentials=CREDS,
                ca_file=str(registry.ca), cache=tmp_path / "c1")
    assert good.signature_checked and (good.bundle / "bundle.sig").is_file()
    cache = tmp_path / "c2"
    with pytest.raises(SignatureError):
        pull(ref(registry, "s1", repo="fleet/signed"), tmp_path / "bad", key=str(other), credentials=CREDS,
             ca_file=str(registry.ca), cache=cache)
    fetched = sorted(p.stat().st_size for p in (cache / "blobs" / "sha256").iterdir())
    assert len(fetched) == 2  # bundle.json and bundle.sig only: no model was downloaded
    assert not (tmp_path / "bad" / "tiny-cpu").exists()


def test_a_partial_download_resumes_with_a_range_request(registry: RegistryServer, tmp_path: Path) -> None:
    v1 = bundle_with_weights(tmp_path / "v1", seed=51)
    push(v1, ref(registry, "r1", repo="fleet/resume"), credentials=CREDS, ca_file=str(registry.ca))
    model = (v1 / "models" / "tiny.fp32.onnx").read_bytes()
    digest = json.loads((v1 / "bundle.json").read_text())["files"]["models/tiny.fp32.onnx"]["sha256"]
    blobs = tmp_path / "cache" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (blobs / f"{digest}.partial").write_bytes(model[:len(model) // 2])  # a download cut off half-way
    first = pull(ref(registry, "r1", repo="fleet/resume"), tmp_path / "dev", credentials=CREDS,
                 ca_file=str(registry.ca), cache=tmp_path / "cache")
    assert first.downloaded_bytes == first.total_bytes - len(model) // 2  # the rest of it, nothing more
    assert (first.bundle / "models" / "tiny.fp32.onnx").read_bytes() == model
