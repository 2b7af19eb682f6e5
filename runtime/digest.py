"""SHA-256 without paying OpenSSL's start-up where it does not pay back.

``import hashlib`` loads OpenSSL (``_hashlib``): 2-10 ms of a ~120 ms cold start, more than
hashing a small bundle takes. CPython's own SHA-256 (``_sha256``; ``_sha2`` from 3.12) starts
at once but is slower per byte, so it is used for small inputs and OpenSSL for big ones. Both
give the same digest.
"""
from __future__ import annotations

from typing import Any

SMALL = 8 * 1024 * 1024  # bytes: below this the builtin is faster overall


def _builtin() -> Any:
    """CPython's own sha256 constructor: ``_sha256`` up to Python 3.11, ``_sha2`` from 3.12."""
    for name in ("_sha256", "_sha2"):
        try:
            return __import__(name).sha256
        except ImportError:
            continue
    return None


def sha256(data: bytes = b"", *, size_hint: int | None = None) -> Any:
    """A sha256 hasher (``update`` / ``hexdigest``) fed with ``data``; ``size_hint``: how many
    bytes will be hashed in all (default: ``len(data)``)."""
    size = len(data) if size_hint is None else size_hint
    if size < SMALL:
        builtin = _builtin()
        if builtin is not None:
            return builtin(data)
    import hashlib
    return hashlib.sha256(data)
