"""``edgepack push BUNDLE oci://...`` and ``edgepack pull oci://...``: bundles in OCI registries
(the same layout the device's ``python -m runtime pull`` reads)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from runtime.cli import add_registry_arguments

EXIT_OK = 0


def _options(args: argparse.Namespace) -> dict[str, object]:
    from runtime.cli.pull import registry_options
    from runtime.oci.registry import Reference
    return registry_options(args, Reference.parse(args.reference).host)


def cmd_push(args: argparse.Namespace) -> int:
    from .oci_push import push
    result = push(args.bundle, args.reference, **_options(args))  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"ok": True, **result.to_dict()}, indent=2))
    else:
        print(f"pushed {args.bundle} to {result.reference} ({result.digest}): {result.layers} layers, "
              f"{result.uploaded_bytes} bytes uploaded, {result.skipped_bytes} already in the registry")
        for name, ref in result.attached.items():
            print(f"attached {name} as a referrer ({ref})")
    return EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    from runtime.oci.pull import pull
    result = pull(args.reference, args.to, key=args.key, max_rate=args.max_rate, **_options(args))  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"ok": True, **result.to_dict()}, indent=2))
    else:
        print(f"pulled {result.reference} ({result.digest[:19]}) into {result.bundle}: {result.files} files, "
              f"{result.downloaded_bytes} bytes downloaded, {result.reused_bytes} reused", file=sys.stdout)
    return EXIT_OK


def add_commands(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    p = add("push", cmd_push, "push a bundle to an OCI registry: one layer per file, ModelPack media types; "
                              "blobs the registry has are not uploaded again")
    p.add_argument("bundle", help="bundle folder or .tar.gz")
    p.add_argument("reference", help="oci://HOST[:PORT]/REPO:TAG")
    add_registry_arguments(p)
    p = add("pull", cmd_pull, "pull a bundle from an OCI registry (what `python -m runtime pull` does on a device)")
    p.add_argument("reference", help="oci://HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]")
    p.add_argument("--to", default=".", metavar="DIR", help="folder for the bundle (default: .)")
    p.add_argument("--key", metavar="PUB", help="refuse the bundle unless it is signed by this public key "
                   "(ed25519: bundle.sig; ECDSA: model.sig)")
    p.add_argument("--max-rate", type=float, metavar="BYTES_PER_S", help="limit the download rate")
    add_registry_arguments(p)
