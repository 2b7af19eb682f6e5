"""ed25519 signatures over bundle.json (which lists every other file's sha256): keys and signing.

The format is in docs/bundle-format.md; the runtime checks it with the public key.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from ..errors import EdgepackError

PRIVATE_NAME, PUBLIC_NAME = "edgepack-signing.key", "edgepack-signing.pub"


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


def generate_keypair(folder: Path) -> tuple[Path, Path]:
    """A new ed25519 key pair as PEM files; the private one readable by its owner only."""
    serialization, ed25519 = _crypto()
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    if private.exists():
        raise SigningError(f"{private} already exists", where=str(private),
                           hint="choose another folder; an existing key is never overwritten")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def load_private_key(path: Path) -> Any:
    """The ed25519 private key in a PEM file, or a SigningError saying what is wrong."""
    serialization, ed25519 = _crypto()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read signing key: {exc.strerror or exc}", where=str(path),
                           hint="make one with: edgepack keygen DIR") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"not a PEM private key without a password ({exc})", where=str(path),
                           hint="make one with: edgepack keygen DIR") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningError(f"the key is {type(key).__name__}, not ed25519", where=str(path),
                           hint="make one with: edgepack keygen DIR")
    return key


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
