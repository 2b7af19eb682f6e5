"""Fleets through an OCI registry: what an update costs a device, what a shared cache saves a
second build machine, and whether a tampered blob ever gets through. A real registry (Debian's
docker-registry, TLS and basic auth: tests/registry_server.py) on localhost for every part.

Parts (``--only``):

- ``pull``: MobileNetV2 (fp32 ONNX + fp32 TFLite) pushed as v1, then v2 built from the same
  architecture with other weights (``seed: 1``) pushed beside it; a device that has v1 pulls v2.
  Goal: the bytes it downloads are at most the v2 model files' size + 5 %.
- ``cache``: the digits example (x86-cpu and rpi4) built cold with ``--cache-to`` (an empty local
  cache), then on a "second machine" (another empty local cache) with ``--cache-from``; both
  timed, the bundles compared byte for byte. Goal: the second build takes at most 15 % of the cold
  one, with every step a remote hit.
- ``tamper``: the digits bundle pushed, then every one of its blobs in the registry's storage in
  turn altered by one byte and pulled with an empty cache. Goal: none accepted.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common

DIGITS = common.REPO / "manifests" / "digits-cnn.yaml"
MOBILENET = common.HERE / "manifests" / "mobilenetv2.yaml"
MOBILENET_V2 = common.HERE / "manifests" / "mobilenetv2-seed1.yaml"
PARTS = ("pull", "cache", "tamper")


def _registry(folder: Path) -> Any:
    sys.path.insert(0, str(common.REPO))
    from tests.registry_server import RegistryServer
    return RegistryServer(folder).start()


def _env(server: Any, **more: str) -> dict[str, str]:
    from tests.registry_server import PASSWORD, USER
    return {"EDGEPACK_REGISTRY_USERNAME": USER, "EDGEPACK_REGISTRY_PASSWORD": PASSWORD,
            "EDGEPACK_REGISTRY_CA_FILE": str(server.ca), **more}


def _json(proc: Any, what: str) -> dict[str, Any]:
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout))


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def pull_part(quick: bool) -> dict[str, Any]:
    work = common.work_dir() / "fleet-pull"
    shutil.rmtree(work, ignore_errors=True)
    v1 = common.bundle(MOBILENET, "../targets/bench-fp32.yaml")
    out2 = work / "v2"
    _json(common.edgepack("build", str(MOBILENET_V2), "--out", str(out2), "--cache-dir",
                          str(common.work_dir() / "cache"), "-q", "--json"), "building MobileNetV2 v2")
    v2 = out2 / v1.name
    server = _registry(work / "registry")
    try:
        env = _env(server, EDGEPACK_OCI_CACHE=str(work / "device-cache"))
        base = f"oci://{server.host}/fleet/mobilenetv2"
        for tag, bundle in (("v1", v1), ("v2", v2)):
            _json(common.edgepack("push", str(bundle), f"{base}:{tag}", "--json", env=env), f"pushing {tag}")
        first = _json(common.run([common.PY, "-m", "runtime", "pull", f"{base}:v1", "--to", str(work / "device"),
                                  "--json"], env=env), "pulling v1")
        second = _json(common.run([common.PY, "-m", "runtime", "pull", f"{base}:v2", "--to", str(work / "device"),
                                   "--json"], env=env), "pulling v2")
    finally:
        server.stop()
    doc = json.loads((v2 / "bundle.json").read_text())
    model_bytes = sum(doc["files"][c["file"]]["size"] for c in doc["candidates"])
    ok = second["downloaded_bytes"] <= model_bytes * 1.05
    return common.row("an update pulled by a device that has v1: MobileNetV2 v2 (other weights; fp32 ONNX + fp32 "
                      "TFLite) from a real registry", "≤ model size + 5 %",
                      f"{first['downloaded_bytes'] / 1e6:.2f} MB (v1, nothing cached)",
                      f"{second['downloaded_bytes'] / 1e6:.2f} MB for {model_bytes / 1e6:.2f} MB of models "
                      f"({second['downloaded_bytes'] / model_bytes:.3f}×), {second['reused_bytes'] / 1e6:.2f} MB "
                      "reused", ok, key="fleet_pull", first=first, second=second, model_bytes=model_bytes)


def cache_part(quick: bool) -> dict[str, Any]:
    common.ensure_digits_weights()
    work = common.work_dir() / "fleet-cache"
    shutil.rmtree(work, ignore_errors=True)
    server = _registry(work / "registry")
    try:
        remote = f"oci://{server.host}/cache/digits"
        env = _env(server)
        times, docs = {}, {}
        for name, flag in (("cold", "--cache-to"), ("second", "--cache-from")):
            t0 = time.perf_counter()
            docs[name] = _json(common.edgepack("build", str(DIGITS), "--out", str(work / name), "--cache-dir",
                                               str(work / f"cache-{name}"), flag, remote, "--json", "-q", env=env),
                               f"the {name} build")
            times[name] = time.perf_counter() - t0
    finally:
        server.stop()
    same = all(_files(work / "cold" / b) == _files(work / "second" / b) for b in ("digits-cnn-x86-cpu",
                                                                                  "digits-cnn-rpi4"))
    cache = docs["second"]["cache"]
    ratio = times["second"] / times["cold"]
    ok = ratio <= 0.15 and same and not cache["misses"]
    return common.row("a second build machine (empty local cache) building the digits example (x86-cpu, rpi4) "
                      "from a registry cache a cold build filled", "≤ 15 % of a cold build's time",
                      f"{times['cold']:.1f} s cold (--cache-to)",
                      f"{times['second']:.1f} s ({ratio:.2f}×; {len(cache['hits'])} remote hits, "
                      f"{len(cache['misses'])} misses; bundles {'byte-identical' if same else 'DIFFERENT'})", ok,
                      key="fleet_cache", seconds=times, ratio=ratio, identical=same, hits=len(cache["hits"]),
                      misses=len(cache["misses"]))


def tamper_part(quick: bool) -> dict[str, Any]:
    common.ensure_digits_weights()
    work = common.work_dir() / "fleet-tamper"
    shutil.rmtree(work, ignore_errors=True)
    bundle = common.bundle(DIGITS, "rpi4")
    server = _registry(work / "registry")
    accepted, refused, tried = [], 0, 0
    try:
        env = _env(server)
        ref = f"oci://{server.host}/fleet/digits:v1"
        _json(common.edgepack("push", str(bundle), ref, "--json", env=env), "pushing")
        files = json.loads((bundle / "bundle.json").read_text())["files"]
        digests = sorted({v["sha256"] for v in files.values() if v["size"] > 0})
        if quick:
            digests = digests[:10]
        for n, digest in enumerate(digests):
            blob = server.blob(f"sha256:{digest}")
            original = blob.read_bytes()
            blob.write_bytes(bytes([original[0] ^ 0x01]) + original[1:])
            proc = common.run([common.PY, "-m", "runtime", "pull", ref, "--to", str(work / f"dev{n}"), "--json"],
                              env={**env, "EDGEPACK_OCI_CACHE": str(work / f"cache{n}")})
            blob.write_bytes(original)
            tried += 1
            if proc.returncode == 0:
                accepted.append(digest)
            elif "does not match its digest" in proc.stderr:
                refused += 1
    finally:
        server.stop()
    return common.row("tampered blobs in the registry's storage, pulled (each blob of the digits rpi4 bundle "
                      "altered by one byte in turn)", "0 accepted", f"{tried} tampered blobs tried",
                      f"{len(accepted)} accepted, {refused} refused as not matching their digest", not accepted,
                      key="fleet_tamper", tried=tried, accepted=accepted, refused=refused)


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    args = p.parse_args()
    parts = {"pull": pull_part, "cache": cache_part, "tamper": tamper_part}
    rows = [parts[part](args.quick) for part in (args.only or PARTS)]
    common.emit(args, "fleet", rows, method="see benchmarks/fleet.py: a real docker-registry on localhost (TLS, "
                                            "basic auth) per part; edgepack and the runtime as subprocesses")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
