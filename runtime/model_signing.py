"""Check ``model.sig``: an OpenSSF model-signing signature (key-based, offline) over the bundle.

OpenSSF model-signing (``pip install model-signing``; ``model_signing sign key`` / ``verify key``)
signs a model folder as a Sigstore bundle holding a DSSE envelope of an in-toto statement: the
predicate ``https://model_signing/signature/v1.0`` lists every file with its sha256, the one
subject's digest is the sha256 over those digests in order, and the envelope is signed with an
ECDSA key (P-256, P-384 or P-521). ``edgepack build --sign EC_KEY.pem`` writes one for the bundle;
this module checks one, made by edgepack or by the model_signing tool, with nothing but
``cryptography`` (imported when checking, as for bundle.sig).

A bundle is checked through bundle.json: its bytes must be the ones model.sig lists, and every
file bundle.json lists must be listed in model.sig with the same sha256 (the hashes of the files
themselves are then checked against bundle.json, as for any bundle). model.sig, bundle.sig and
what model_signing never signs (``.git`` and friends) are not part of it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .dsse import pae
from .errors import SignatureError
from .integrity import MODEL_SIGNATURE_FILE

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IGNORED = (".git", ".gitattributes", ".github", ".gitignore", MODEL_SIGNATURE_FILE)
_MAX_BYTES = 16 << 20
_HINT = "re-copy the bundle, or sign it again (edgepack build --sign EC_KEY.pem, or model_signing sign key)"


def is_ecdsa_key(public_key: Any) -> bool:
    """Whether ``public_key`` (PEM text or bytes, a path, or a key object) is an ECDSA public key:
    those check model.sig; ed25519 keys check bundle.sig."""
    try:
        return _ecdsa_key(public_key) is not None
    except ImportError:
        return False


def _ecdsa_key(public_key: Any) -> Any:
    """The ECDSA public key ``public_key`` is or holds, else None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key
    pem = None
    if isinstance(public_key, (bytes, bytearray)) and b"-----BEGIN PUBLIC KEY" in public_key:
        pem = bytes(public_key)
    elif isinstance(public_key, str) and "-----BEGIN PUBLIC KEY" in public_key:
        pem = public_key.encode()
    elif isinstance(public_key, (str, os.PathLike)):
        try:
            path = Path(public_key)
            if path.is_file() and path.stat().st_size < 64 * 1024:
                pem = path.read_bytes()
        except (OSError, ValueError):
            return None
    try:
        key = serialization.load_pem_public_key(pem) if pem and b"-----BEGIN PUBLIC KEY" in pem else None
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def _hash_for(key: Any) -> Any:
    """The digest model-signing pairs with the key's curve (Sigstore's choice)."""
    from cryptography.hazmat.primitives import hashes
    size = key.curve.key_size
    if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise SignatureError(f"the key's curve {key.curve.name} is not one model-signing uses",
                             where="public key", hint="use a P-256, P-384 or P-521 key")
    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[size]


def signed_files(signature: bytes, public_key: Any, where: str) -> dict[str, str]:
    """The files model.sig's statement lists ({path: sha256}), once its signature checks out by
    ``public_key`` (in any form ``is_ecdsa_key`` takes) and its subject digest matches the list;
    else a SignatureError saying what."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = _ecdsa_key(public_key)
    if key is None:
        raise SignatureError("not an ECDSA public key", where="public key",
                             hint="model.sig is checked with the P-256/P-384/P-521 public key it was signed with")
    try:
        doc = json.loads(signature.decode("utf-8"))
        envelope = doc["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        payload_type = envelope["payloadType"]
        sig = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
        hint = (doc.get("verificationMaterial") or {}).get("publicKey", {}).get("hint")
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError, AttributeError, binascii.Error) as exc:
        raise SignatureError(f"model.sig is not a model-signing (Sigstore bundle) signature: {exc}",
                             where=where, hint=_HINT) from None
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if hint and hint != hashlib.sha256(pem).hexdigest():
        raise SignatureError(f"model.sig was made with another key (key {hint[:16]}, expected "
                             f"{hashlib.sha256(pem).hexdigest()[:16]})", where=where,
                             hint="give the public key of the private key that signed it")
    try:
        key.verify(sig, pae(payload_type, payload), ec.ECDSA(_hash_for(key)))
    except InvalidSignature:
        raise SignatureError("model.sig's signature does not check out with this key: the statement was "
                             "changed after signing, or another key signed it", where=where, hint=_HINT) from None
    try:
        statement = json.loads(payload)
        resources = statement["predicate"]["resources"]
        subject = statement["subject"][0]["digest"]["sha256"]
        kind, method = statement["predicateType"], statement["predicate"]["serialization"]["method"]
        files = {r["name"]: r["digest"] for r in resources if r["algorithm"] == "sha256"}
        root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SignatureError(f"model.sig's statement is malformed: {exc}", where=where, hint=_HINT) from None
    if kind != PREDICATE_TYPE or method != "files" or len(files) != len(resources):
        raise SignatureError(f"model.sig is a {kind} statement of {method!r} with non-sha256 digests or none: "
                             f"this runtime checks {PREDICATE_TYPE} over files with sha256", where=where,
                             hint="sign with model_signing's default file serialization (sha256)")
    if root != subject:
        raise SignatureError("model.sig's file list does not hash to its subject digest", where=where, hint=_HINT)
    return files


def verify_model_signature(bundle_root: str | os.PathLike[str], public_key: Any, *,
                           data: bytes | None = None) -> tuple[str, str]:
    """Refuse (SignatureError) unless model.sig checks out by ``public_key`` and lists bundle.json
    (these ``data`` bytes, default: the file) and every file bundle.json lists, with their sha256.
    The algorithm and key id checked (runtime/signing.py makes them its SignatureInfo)."""
    root = Path(bundle_root)
    key = _ecdsa_key(public_key)  # read once: the checks below take the key object
    path = root / MODEL_SIGNATURE_FILE
    where = str(path)
    if path.is_symlink() or not path.is_file():
        raise SignatureError("the bundle has no model.sig, but an ECDSA key was given to check one", where=where,
                             hint="build it with `edgepack build --sign EC_KEY.pem`, or give the ed25519 key "
                                  "that checks bundle.sig")
    if path.stat().st_size > _MAX_BYTES:
        raise SignatureError("model.sig is far too large to be a signature", where=where, hint=_HINT)
    files = signed_files(path.read_bytes(), key if key is not None else public_key, where)
    if data is None:
        data = (root / "bundle.json").read_bytes()
    if files.get("bundle.json") != hashlib.sha256(data).hexdigest():
        raise SignatureError("bundle.json is not the one model.sig signed: it was changed after signing",
                             where=where, hint="re-copy the bundle from the build host")
    try:
        listed = json.loads(data)["files"]
        differ = sorted(p for p, e in listed.items() if files.get(p) != e["sha256"])
    except (ValueError, KeyError, TypeError, AttributeError):
        differ = []  # bundle.json's own parser says what is wrong with it, next
    if differ:
        raise SignatureError(f"model.sig and bundle.json disagree on {len(differ)} file(s) ({', '.join(differ[:3])})",
                             where=where, hint=_HINT)
    from cryptography.hazmat.primitives import serialization
    raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"ecdsa-{key.curve.name} (OpenSSF model-signing)", hashlib.sha256(raw).hexdigest()[:16]
