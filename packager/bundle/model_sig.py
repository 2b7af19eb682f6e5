"""Write ``model.sig``: an OpenSSF model-signing v1.0 signature over the whole bundle folder, so
that ``model_signing verify key --signature model.sig --public_key KEY.pub BUNDLE`` (and the
runtime, with that public key as ``--key``) check it.

The format is model-signing's key-based one (a Sigstore bundle v0.3 holding a DSSE envelope of
an in-toto statement that lists every file with its sha256), written here with ``cryptography``
alone rather than by the model-signing package (sigstore and its dependencies, ~95 MB, for a
signature this simple); the tests check it with the real ``model_signing`` command. ECDSA
signatures are randomised: a bundle with model.sig differs from build to build in that file only.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from runtime.dsse import pae
from runtime.integrity import sha256_file
from runtime.model_signing import BUNDLE_MEDIA_TYPE, IGNORED, PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE


def _resources(root: Path) -> list[dict[str, str]]:
    """Every file under ``root`` but what model-signing ignores, sorted by path (as it does)."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.split("/", 1)[0] in IGNORED:
            continue
        out.append({"digest": sha256_file(path), "algorithm": "sha256", "name": rel})
    return out


def model_signature(root: Path, name: str, key: Any) -> bytes:
    """model.sig's bytes for the folder ``root`` (the bundle ``name``), signed with the ECDSA ``key``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    resources = _resources(root)
    subject = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    statement = {"_type": STATEMENT_TYPE, "subject": [{"name": name, "digest": {"sha256": subject}}],
                 "predicateType": PREDICATE_TYPE,
                 "predicate": {"resources": resources,
                               "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False,
                                                 "ignore_paths": list(IGNORED)}}}
    payload = json.dumps(statement, indent=2).encode()
    digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
    sig = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(digest))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    doc = {"mediaType": BUNDLE_MEDIA_TYPE,
           "verificationMaterial": {"publicKey": {"hint": hashlib.sha256(pem).hexdigest()}, "tlogEntries": []},
           "dsseEnvelope": {"payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE,
                            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]}}
    return (json.dumps(doc, indent=2) + "\n").encode()
