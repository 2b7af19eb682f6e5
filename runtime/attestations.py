"""Check a bundle's CycloneDX ML-BOM (``bom.cdx.json``) and in-toto provenance
(``provenance.intoto.json``) on the device: every component hash and subject digest against the
files bundle.json lists, the pinned requirements against requirements.txt, and, with a public key,
the DSSE signature over the statement (an ed25519 signature by the build key). Standard library
(and ``cryptography`` only to check a signature)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .dsse import pae
from .errors import IntegrityError, SignatureError

if TYPE_CHECKING:
    from .bundle import Bundle
    from .signing import PublicKey

BOM_FILE = "bom.cdx.json"
PROVENANCE_FILE = "provenance.intoto.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
_NOT_SUBJECTS = {"bundle.json", "bundle.sig", "model.sig", BOM_FILE, PROVENANCE_FILE}


@dataclass(frozen=True)
class AttestationReport:
    """What the check found (the bundle has both files; otherwise ``present`` is False)."""

    present: bool
    components: int = 0
    subjects: int = 0
    signed: bool = False
    signature_checked: bool = False
    key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"present": self.present, "bom_components": self.components, "provenance_subjects": self.subjects,
                "provenance_signed": self.signed, "signature_checked": self.signature_checked, "key_id": self.key_id}

    def line(self) -> str:
        if not self.present:
            return "attestations: none in this bundle (built before edgepack wrote a BOM and provenance)"
        sig = ("signed, signature checked (key " + str(self.key_id) + ")" if self.signature_checked else
               "signed, signature not checked (give --key)" if self.signed else "unsigned")
        return (f"attestations: CycloneDX ML-BOM ({self.components} components) and SLSA provenance "
                f"({self.subjects} subjects, {sig}) match the bundle's files")


def _load(bundle: Bundle, name: str) -> Any:
    try:
        return json.loads(bundle.path(name).read_bytes())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{name} cannot be read as JSON: {exc}", where=str(bundle.path(name)),
                             hint="rebuild the bundle") from None


def _fail(bundle: Bundle, name: str, message: str) -> IntegrityError:
    return IntegrityError(message, where=str(bundle.path(name)),
                          hint="the bundle's attestations do not describe its files: rebuild it")


def check_attestations(bundle: Bundle, key: PublicKey | None = None) -> AttestationReport:
    """Check both files against the bundle (IntegrityError / SignatureError naming what differs)."""
    if BOM_FILE not in bundle.files or PROVENANCE_FILE not in bundle.files:
        return AttestationReport(present=False)
    files = bundle.files
    bom = _load(bundle, BOM_FILE)
    if bom.get("bomFormat") != "CycloneDX" or bom.get("specVersion") != "1.6":
        raise _fail(bundle, BOM_FILE, "not a CycloneDX 1.6 BOM")
    by_ref = {c.get("bom-ref"): c for c in bom.get("components", []) if isinstance(c, dict)}
    for cand in bundle.candidates:
        comp = by_ref.get(f"candidate:{cand.id}")
        got = (comp or {}).get("hashes", [{}])[0].get("content")
        if comp is None or got != files.get(cand.file, {}).get("sha256"):
            raise _fail(bundle, BOM_FILE, f"the BOM's component for candidate {cand.id} does not carry "
                                          f"{cand.file}'s sha256")
    runtime_hash = hashlib.sha256(json.dumps({k: v for k, v in files.items() if k.startswith("runtime/")},
                                             sort_keys=True).encode()).hexdigest()
    if by_ref.get("edgepack-runtime", {}).get("hashes", [{}])[0].get("content") != runtime_hash:
        raise _fail(bundle, BOM_FILE, "the BOM's runtime component does not match the bundle's runtime files")
    try:
        pins = {line.split("==")[0].strip().lower(): line.split("==")[1].split("#")[0].strip()
                for line in bundle.path("requirements.txt").read_text(encoding="utf-8").splitlines()
                if "==" in line and not line.lstrip().startswith("#")}
    except OSError:
        pins = {}
    for ref, comp in by_ref.items():
        if str(ref).startswith("pypi:") and pins.get(str(comp.get("name", "")).lower()) != comp.get("version"):
            raise _fail(bundle, BOM_FILE, f"the BOM pins {comp.get('name')}=={comp.get('version')}, "
                                          "requirements.txt does not")
    doc = _load(bundle, PROVENANCE_FILE)
    signed, checked, kid = "payloadType" in doc, False, None
    if signed:
        statement_bytes, checked, kid = _envelope(bundle, doc, key)
        doc = json.loads(statement_bytes)
    if doc.get("_type") != STATEMENT_TYPE or doc.get("predicateType") != PREDICATE_TYPE:
        raise _fail(bundle, PROVENANCE_FILE, "not an in-toto Statement with a SLSA v1 provenance predicate")
    subjects = {s.get("name"): s.get("digest", {}).get("sha256") for s in doc.get("subject", [])}
    want = {path: entry.get("sha256") for path, entry in files.items() if path not in _NOT_SUBJECTS}
    if subjects != want:
        differ = sorted(set(subjects.items()) ^ set(want.items()))
        raise _fail(bundle, PROVENANCE_FILE, f"the provenance's subjects differ from the bundle's files "
                                             f"({', '.join(str(d[0]) for d in differ[:3])})")
    return AttestationReport(True, len(by_ref), len(subjects), signed, checked, kid)


def _envelope(bundle: Bundle, doc: dict[str, Any], key: PublicKey | None) -> tuple[bytes, bool, str | None]:
    """The statement inside a DSSE envelope, with its signature checked when a key is given."""
    from .signing import key_id, raw_public_key
    where = str(bundle.path(PROVENANCE_FILE))
    try:
        payload = base64.b64decode(doc["payload"], validate=True)
        sigs = [(s.get("keyid"), base64.b64decode(s["sig"], validate=True)) for s in doc["signatures"]]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise IntegrityError(f"the provenance envelope is malformed ({exc})", where=where) from None
    if doc.get("payloadType") != PAYLOAD_TYPE:
        raise IntegrityError(f"the envelope's payloadType is {doc.get('payloadType')!r}", where=where)
    from .model_signing import is_ecdsa_key
    if key is None or is_ecdsa_key(key):  # an ECDSA key checked model.sig, which covers this file
        return payload, False, None
    raw = raw_public_key(key)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519
    public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    for _, sig in sigs:
        try:
            public.verify(sig, pae(PAYLOAD_TYPE, payload))
            return payload, True, key_id(raw)
        except InvalidSignature:
            continue
    raise SignatureError("the provenance is not signed by this key", where=where,
                         hint="give the public key of the build key (`edgepack build --sign`)")
