"""The build cache shared through a real OCI registry (tests/registry_server.py): a second machine
(an empty local cache) builds with every step a remote hit and byte-identical bundles; a planted
poisoned entry is refused, said so, and rebuilt; an unreachable registry never fails a build."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ..registry_server import PASSWORD, USER, RegistryServer, registry_binary

pytestmark = [pytest.mark.slow, pytest.mark.skipif(registry_binary() is None, reason="docker-registry is not "
                                                   "installed (scripts/ensure-registry.sh; make test runs it)")]


def build(manifest: Path, out: Path, cache: Path, registry: RegistryServer, *flags: str) -> dict:
    env = {**os.environ, "EDGEPACK_REGISTRY_USERNAME": USER, "EDGEPACK_REGISTRY_PASSWORD": PASSWORD,
           "EDGEPACK_REGISTRY_CA_FILE": str(registry.ca)}
    proc = subprocess.run([sys.executable, "-m", "packager", "build", str(manifest), "--out", str(out), "--cache-dir",
                           str(cache), "--json", *flags], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return json.loads(proc.stdout)


def files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_machine_builds_from_the_remote_cache(tiny_project: Callable[..., Path], registry: RegistryServer,
                                                       tmp_path: Path) -> None:
    manifest = tiny_project(targets=["x86-cpu"])
    remote = f"oci://{registry.host}/cache/tiny"
    first = build(manifest, tmp_path / "a", tmp_path / "cache-a", registry, "--cache-to", remote)
    assert first["cache"]["remote"]["pushed"] > 3 and not first["cache"]["remote"]["error"]
    second = build(manifest, tmp_path / "b", tmp_path / "cache-b", registry, "--cache-from", remote)
    cache = second["cache"]
    assert cache["misses"] == [] and len(cache["hits"]) == len(first["cache"]["misses"]), cache
    assert cache["remote"]["hits"] == len(cache["hits"]) and cache["remote"]["refused"] == []
    assert files(tmp_path / "a" / "tiny-x86-cpu") == files(tmp_path / "b" / "tiny-x86-cpu")
    # the host latency came with the cache too: the measured BOMs beside the bundles are the same
    measured = "tiny-x86-cpu.measured.cdx.json"
    assert (tmp_path / "a" / measured).read_bytes() == (tmp_path / "b" / measured).read_bytes()

    # poison one entry in the registry's own storage: the biggest blob (an artifact) gets other bytes
    blobs = [p for p in (registry.storage / "docker/registry/v2/blobs/sha256").rglob("data")]
    target = max(blobs, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x5A
    target.write_bytes(bytes(data))
    third = build(manifest, tmp_path / "c", tmp_path / "cache-c", registry, "--cache-from", remote)
    refused = third["cache"]["remote"]["refused"]
    assert len(refused) >= 1 and "does not match its digest" in refused[0], third["cache"]
    assert len(third["cache"]["misses"]) >= 1  # the poisoned step was rebuilt here
    assert files(tmp_path / "a" / "tiny-x86-cpu") == files(tmp_path / "c" / "tiny-x86-cpu")


def test_an_unreachable_registry_does_not_fail_the_build(tiny_project: Callable[..., Path], registry: RegistryServer,
                                                         tmp_path: Path) -> None:
    manifest = tiny_project(targets=["x86-cpu"])
    result = build(manifest, tmp_path / "out", tmp_path / "cache", registry, "--cache-to", "oci://127.0.0.1:9/c/x")
    assert result["ok"] and result["targets"][0]["status"] == "ok"
    assert "cannot reach the registry" in result["cache"]["remote"]["error"]
