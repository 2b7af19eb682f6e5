"""The build's signing keys: ed25519 signs bundle.json (which lists every other file's sha256) as
bundle.sig, and the provenance; an ECDSA key (P-256/384/521) signs the whole folder as OpenSSF
model-signing's model.sig (bundle/model_sig.py).

The format is in docs/bundle-format.md; the runtime checks either with the public key.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EdgepackError

PRIVATE_NAME, PUBLIC_NAME = "edgepack-signing.key", "edgepack-signing.pub"
MODEL_PRIVATE_NAME, MODEL_PUBLIC_NAME = "model-signing.key", "model-signing.pub"


class SigningError(EdgepackError):
    """A signing key is missing, unreadable, or not an ed25519 key."""

    code = "signing"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningError("signing needs the cryptography package", hint="pip install cryptography") from None
    return serialization, ed25519


def generate_keypair(folder: Path, *, model_signing: bool = False) -> tuple[Path, Path]:
    """A new key pair as PEM files, the private one readable by its owner only: ed25519 (bundle.sig),
    or with ``model_signing`` ECDSA P-256 (model.sig, what OpenSSF model-signing's key mode uses)."""
    serialization, ed25519 = _crypto()
    folder.mkdir(parents=True, exist_ok=True)
    names = (MODEL_PRIVATE_NAME, MODEL_PUBLIC_NAME) if model_signing else (PRIVATE_NAME, PUBLIC_NAME)
    private, public = folder / names[0], folder / names[1]
    if private.exists():
        raise SigningError(f"{private} already exists", where=str(private),
                           hint="choose another folder; an existing key is never overwritten")
    if model_signing:
        from cryptography.hazmat.primitives.asymmetric import ec
        key: Any = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@dataclass(frozen=True)
class SigningKeys:
    """What a build signs with: ``bundle`` (ed25519) writes bundle.sig and signs the provenance;
    ``model`` (ECDSA) writes model.sig. Either, both, or neither."""

    bundle: Any = None
    model: Any = None


def _read_private(path: Path) -> Any:
    serialization, _ = _crypto()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read signing key: {exc.strerror or exc}", where=str(path),
                           hint="make one with: edgepack keygen DIR") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"not a PEM private key without a password ({exc})", where=str(path),
                           hint="make one with: edgepack keygen DIR") from None


def load_private_key(path: Path) -> Any:
    """The ed25519 private key in a PEM file, or a SigningError saying what is wrong."""
    _, ed25519 = _crypto()
    key = _read_private(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningError(f"the key is {type(key).__name__}, not ed25519", where=str(path),
                           hint="make one with: edgepack keygen DIR")
    return key


def load_signing_keys(paths: Sequence[str | Path]) -> SigningKeys:
    """The keys in these PEM files: one ed25519 key and/or one ECDSA P-256/384/521 key."""
    if not paths:
        return SigningKeys()
    _, ed25519 = _crypto()
    from cryptography.hazmat.primitives.asymmetric import ec
    found: dict[str, Any] = {}
    for path in map(Path, paths):
        key = _read_private(path)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            kind = "bundle"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in ("secp256r1", "secp384r1",
                                                                                "secp521r1"):
            kind = "model"
        else:
            name = getattr(getattr(key, "curve", None), "name", type(key).__name__)
            raise SigningError(f"the key is {name}: bundles are signed with ed25519 (bundle.sig) or ECDSA "
                               "P-256/P-384/P-521 (model.sig, OpenSSF model-signing)", where=str(path),
                               hint="make one with: edgepack keygen DIR (add --model-signing for ECDSA P-256)")
        if kind in found:
            raise SigningError(f"two {'ed25519' if kind == 'bundle' else 'ECDSA'} keys given: a bundle takes one "
                               "of each", where=str(path), hint="give --sign once per kind of key")
        found[kind] = key
    return SigningKeys(**found)


def sign(bundle_json: bytes, key: Any) -> dict[str, str]:
    """bundle.sig's content for these exact bundle.json bytes."""
    serialization, _ = _crypto()
    raw_public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"algorithm": "ed25519", "public_key": base64.b64encode(raw_public).decode(),
            "signature": base64.b64encode(key.sign(bundle_json)).decode()}


def cryptography_pin() -> str:
    """The requirement a signed bundle adds, so the device can check the signature."""
    from importlib import metadata
    return f"cryptography=={metadata.version('cryptography')}"
