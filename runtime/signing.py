"""Check ``bundle.sig``: an ed25519 signature over the exact bytes of ``bundle.json`` (or, given
an ECDSA key, ``model.sig``: runtime/model_signing.py).

``bundle.json`` lists every other file's sha256, so a good signature over it vouches for the whole
bundle once the hashes check out. The check runs only when the caller gives a public key, and
before anything else of the bundle is parsed or loaded. ``cryptography`` is imported here, lazily,
so a device that does not check signatures does not need it.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .digest import sha256
from .errors import SignatureError
from .integrity import BUNDLE_FILE as _BUNDLE_FILE
from .integrity import SIGNATURE_FILE

ALGORITHM = "ed25519"
_MAX_SIG_BYTES = 64 * 1024  # a real bundle.sig is ~200 bytes; refuse to parse anything huge
_INSTALL_HINT = "pip install cryptography (a signed bundle's requirements.txt pins it)"

# A path to a PEM file, PEM text/bytes, a base64 raw 32-byte key, raw key bytes, or a key object.
PublicKey = Union[str, bytes, "os.PathLike[str]", Any]


@dataclass(frozen=True)
class SignatureInfo:
    """What a successful check found, for reports (``info --json``, ``verify``)."""

    algorithm: str
    key_id: str  # first 16 hex digits of sha256(raw public key)

    def to_dict(self) -> dict[str, Any]:
        return {"checked": True, "algorithm": self.algorithm, "key_id": self.key_id}


def key_id(raw: bytes) -> str:
    """A short, stable name for a raw public key (for messages: never the whole key)."""
    return sha256(raw).hexdigest()[:16]


def _crypto() -> tuple[Any, Any, Any]:
    """(ed25519 module, serialization module, InvalidSignature): imported only when checking."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise SignatureError(f"cannot check the bundle signature: the 'cryptography' package is "
                             f"not installed ({exc})", where="cryptography",
                             hint=_INSTALL_HINT) from exc
    return ed25519, serialization, InvalidSignature


def _b64(text: Any, size: int, what: str, where: str) -> bytes:
    """Strict base64 of exactly ``size`` bytes, or a SignatureError naming the field."""
    if not isinstance(text, str):
        raise SignatureError(f"bundle.sig is malformed: {what} must be a base64 string",
                             where=where, hint="re-copy the bundle, or sign it again")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise SignatureError(f"bundle.sig is malformed: {what} is not base64 ({exc})",
                             where=where, hint="re-copy the bundle, or sign it again") from exc
    if len(raw) != size:
        raise SignatureError(f"bundle.sig is malformed: {what} has {len(raw)} bytes, "
                             f"expected {size}", where=where,
                             hint="re-copy the bundle, or sign it again")
    return raw


def raw_public_key(public_key: PublicKey) -> bytes:
    """The 32 raw bytes of an ed25519 public key given in any of the accepted forms.

    Accepted: an ``Ed25519PublicKey``; PEM (SubjectPublicKeyInfo) as text or bytes; a path to a
    file holding PEM or base64; base64 of the raw 32 bytes; the raw 32 bytes.
    """
    ed25519, serialization, _ = _crypto()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw)
    where = "public key"
    data: bytes
    if isinstance(public_key, os.PathLike):
        data, where = _read_key_file(Path(public_key)), str(public_key)
    elif isinstance(public_key, str):
        text = public_key.strip()
        if "-----BEGIN" in text:
            data = text.encode("utf-8")
        elif len(text) < 4096 and "\n" not in text and os.path.isfile(text):
            data, where = _read_key_file(Path(text)), text
        elif text.lower().endswith((".pem", ".pub", ".key")):
            raise SignatureError("no such key file", where=text,
                                 hint="give the .pem public key written by `edgepack keygen`")
        else:
            data = text.encode("utf-8", "replace")
    elif isinstance(public_key, (bytes, bytearray)):
        data = bytes(public_key)
        if len(data) == 32 and b"-----BEGIN" not in data:
            return data
    else:
        raise SignatureError(f"unusable public key of type {type(public_key).__name__}",
                             where=where, hint="give a path to a PEM public key, PEM text, or "
                                               "the base64 raw 32-byte key")
    return _parse_key(data, where, ed25519, serialization)


def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > _MAX_SIG_BYTES:
            raise SignatureError("key file is too large to be a public key", where=str(path),
                                 hint="give the .pem public key written by `edgepack keygen`")
        return path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read key file: {exc.strerror or exc}", where=str(path),
                             hint="give the .pem public key written by `edgepack keygen`") from exc


def _parse_key(data: bytes, where: str, ed25519: Any, serialization: Any) -> bytes:
    """PEM public key, or base64 of the raw key; a private key is refused with a clear hint."""
    stripped = data.strip()
    if b"-----BEGIN" in stripped:
        if b"PRIVATE KEY" in stripped:
            raise SignatureError("this is a private key; checking needs the public key",
                                 where=where, hint="give the public half (the .pub.pem that "
                                                   "`edgepack keygen` writes); keep private keys "
                                                   "off devices")
        try:
            key = serialization.load_pem_public_key(stripped)
        except (ValueError, TypeError) as exc:
            raise SignatureError(f"not a readable PEM public key: {exc}", where=where,
                                 hint="give the SubjectPublicKeyInfo PEM written by "
                                      "`edgepack keygen`") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise SignatureError(f"not an ed25519 public key ({type(key).__name__})",
                                 where=where, hint="bundle signatures use ed25519 keys")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SignatureError("not a public key: expected a PEM file, PEM text, or base64 of the "
                             "raw 32-byte ed25519 key", where=where,
                             hint="give the .pem public key written by `edgepack keygen`")
    return raw


def read_signature(bundle_root: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(raw public key named in bundle.sig, 64-byte signature); refuses missing or malformed."""
    path = Path(bundle_root) / SIGNATURE_FILE
    where = str(path)
    if path.is_symlink() or not path.is_file():
        raise SignatureError(
            "bundle is not signed (no bundle.sig) but a public key was given to check it"
            if not path.is_symlink() else "bundle.sig is a symlink", where=where,
            hint="build it with `edgepack build --sign KEY.pem`, or load it without a key")
    try:
        if path.stat().st_size > _MAX_SIG_BYTES:
            raise SignatureError("bundle.sig is malformed: far too large", where=where,
                                 hint="re-copy the bundle, or sign it again")
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"bundle.sig is malformed: {exc}", where=where,
                             hint="re-copy the bundle, or sign it again") from exc
    if not isinstance(doc, dict):
        raise SignatureError("bundle.sig is malformed: not a JSON object", where=where,
                             hint="re-copy the bundle, or sign it again")
    algorithm = doc.get("algorithm")
    if algorithm != ALGORITHM:
        raise SignatureError(f"bundle.sig is malformed: algorithm {algorithm!r} is not "
                             f"{ALGORITHM!r}", where=where,
                             hint="this runtime checks ed25519 signatures only")
    return (_b64(doc.get("public_key"), 32, "public_key", where),
            _b64(doc.get("signature"), 64, "signature", where))


def verify_signature(bundle_root: str | os.PathLike[str], public_key: PublicKey, *,
                     data: bytes | None = None) -> SignatureInfo:
    """Refuse (SignatureError) unless bundle.sig is a good ed25519 signature by ``public_key``
    over bundle.json; with an ECDSA ``public_key``, unless model.sig (OpenSSF model-signing) is a
    good signature by it over bundle.json and every file it lists (runtime/model_signing.py).

    ``data``: the bundle.json bytes the caller has already read and is about to parse, so the
    bytes checked are exactly the bytes used (default: read the file).
    """
    from .model_signing import is_ecdsa_key, verify_model_signature
    if is_ecdsa_key(public_key):
        algorithm, kid = verify_model_signature(bundle_root, public_key, data=data)
        return SignatureInfo(algorithm=algorithm, key_id=kid)
    root = Path(bundle_root)
    named_key, signature = read_signature(root)
    ed25519, _, invalid = _crypto()
    want = raw_public_key(public_key)
    where = str(root / SIGNATURE_FILE)
    if named_key != want:
        raise SignatureError(f"bundle.sig was made with another key (key {key_id(named_key)}, "
                             f"expected {key_id(want)})", where=where,
                             hint="give the public key matching the private key used by "
                                  "`edgepack build --sign`, or re-sign the bundle")
    if data is None:
        try:
            data = (root / _BUNDLE_FILE).read_bytes()
        except OSError as exc:
            raise SignatureError(f"cannot read {_BUNDLE_FILE}: {exc.strerror or exc}",
                                 where=str(root / _BUNDLE_FILE)) from exc
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(want).verify(signature, data)
    except invalid:
        raise SignatureError("signature does not match bundle.json: it was changed after "
                             "signing (or bundle.sig is damaged)", where=where,
                             hint="re-copy the bundle from the build host; never edit "
                                  "bundle.json of a signed bundle") from None
    return SignatureInfo(algorithm=ALGORITHM, key_id=key_id(want))
