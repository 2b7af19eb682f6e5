"""``edgepack inspect BUNDLE [--key PUB]``: a bundle's files against bundle.json, its signatures
(bundle.sig, ed25519; model.sig, OpenSSF model-signing), verifier and attestations, then what it
holds. A trusted check: the bundle's runtime/ is data here, hashed by the packager's own runtime."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FAILED = 0, 1


def signatures(root: Any, checked: Any) -> tuple[dict[str, Any], str]:
    """What signs the bundle, and which of it the given key checked: (JSON, one line)."""
    from runtime.integrity import MODEL_SIGNATURE_FILE
    from runtime.signing import SIGNATURE_FILE, key_id, read_signature
    doc: dict[str, Any] = {"signed": (root / SIGNATURE_FILE).is_file(),
                           "model_signing": (root / MODEL_SIGNATURE_FILE).is_file(), "checked": checked is not None,
                           "checked_with": None if checked is None else checked.algorithm}
    parts = []
    if doc["signed"]:
        doc["key_id"] = key_id(read_signature(root)[0])
        by_ed = checked is not None and checked.algorithm == "ed25519"
        parts.append(f"signed (ed25519, key {doc['key_id']}, " + ("checked)" if by_ed else
                                                                  "not checked: give --key)"))
    if doc["model_signing"]:
        by_ec = checked is not None and checked.algorithm != "ed25519"
        parts.append("model.sig (OpenSSF model-signing, " + ("checked)" if by_ec else
                                                              "not checked: give its ECDSA --key)"))
    return doc, "; " + ("; ".join(parts) if parts else "not signed")


def cmd_inspect(args: argparse.Namespace) -> int:
    from runtime.attestations import check_attestations
    from runtime.bundle import open_bundle
    from runtime.errors import IntegrityError
    from runtime.verifier import describe_verifier

    from .report.text import format_bundle
    # with --key the signature is checked before bundle.json is parsed (a bad one: exit 2)
    bundle = open_bundle(args.bundle, public_key=args.key or None)
    try:
        bundle.verify()
        integrity, ok = f"OK ({len(bundle.files)} files match their sha256)", True
    except IntegrityError as exc:
        integrity, ok = f"FAILED: {exc}", False
    signature, line = signatures(bundle.root, bundle.signed_by)
    integrity += line
    verifier = describe_verifier(bundle) if ok else None
    if verifier is not None:
        integrity += "\n" + "\n".join(verifier.lines())
    attestations = None
    if ok:
        try:
            attestations = check_attestations(bundle, args.key or None)
            integrity += "\n" + attestations.line()
        except IntegrityError as exc:
            integrity, ok = integrity + f"\nattestations: FAILED: {exc}", False
    if args.json:
        print(json.dumps({"bundle": bundle.raw, "integrity": {"ok": ok, "detail": integrity}, "signature": signature,
                          "verifier": None if verifier is None else verifier.to_dict(),
                          "attestations": None if attestations is None else attestations.to_dict()},
                         indent=2, sort_keys=True, default=str))
    else:
        print(format_bundle(bundle.raw, integrity))
    return EXIT_OK if ok else EXIT_FAILED


def add_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("inspect", cmd_inspect, "show a bundle: signature, candidates, sizes, parity, provenance")
    p.add_argument("bundle", help="bundle folder or .tar.gz")
    p.add_argument("--key", metavar="PUB", help="check the bundle's signature first: an ed25519 public key (PEM) "
                                                "checks bundle.sig, an ECDSA one model.sig")
