"""DSSE's pre-authentication encoding (PAE): the bytes a DSSE envelope's signature is over. One
helper for the two envelopes the runtime checks: the provenance (attestations.py) and OpenSSF
model-signing's model.sig (model_signing.py)."""
from __future__ import annotations


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 <len(type)> <type> <len(payload)> <payload>``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
