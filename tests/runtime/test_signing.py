"""bundle.sig: a bundle is checked against a public key before anything of it is used.

Bundles are signed here exactly as docs/bundle-format.md says (ed25519 over the exact bytes of
bundle.json, written as {"algorithm", "public_key", "signature"}), with keys made per test, so the
runtime is checked against the documented format rather than against the packager's code.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import runtime
from runtime.bundle import BUNDLE_FILE, list_bundle_files, open_bundle
from runtime.errors import BundleFormatError, IntegrityError, SignatureError
from runtime.model import load
from runtime.signing import SIGNATURE_FILE, key_id, raw_public_key, verify_signature

from .. import device_env

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers

class Keys:
    """An ed25519 key pair in the forms the runtime accepts, plus files in ``dest``."""

    def __init__(self, dest: Path, name: str = "key") -> None:
        self.private = ed25519.Ed25519PrivateKey.generate()
        self.public = self.private.public_key()
        self.raw = self.public.public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        self.b64 = base64.b64encode(self.raw).decode()
        self.pem = self.public.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self.private_pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        dest.mkdir(parents=True, exist_ok=True)
        self.pub_path = dest / f"{name}.pub.pem"
        self.pub_path.write_bytes(self.pem)
        self.priv_path = dest / f"{name}.pem"
        self.priv_path.write_bytes(self.private_pem)


def sign(root: Path, keys: Keys) -> Path:
    """Write bundle.sig as docs/bundle-format.md describes."""
    data = (root / BUNDLE_FILE).read_bytes()
    doc = {"algorithm": "ed25519", "public_key": keys.b64,
           "signature": base64.b64encode(keys.private.sign(data)).decode()}
    path = root / SIGNATURE_FILE
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys", "good")


@pytest.fixture
def other(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys", "other")


@pytest.fixture
def signed(bundle_dir: Path, keys: Keys) -> Path:
    sign(bundle_dir, keys)
    return bundle_dir


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- accepted

@pytest.mark.parametrize("form", ["path", "pathlike", "pem_text", "pem_bytes", "b64", "raw",
                                  "object"])
def test_signed_bundle_loads_with_its_key_in_every_form(signed: Path, keys: Keys,
                                                        form: str) -> None:
    key: Any = {"path": str(keys.pub_path), "pathlike": keys.pub_path,
                "pem_text": keys.pem.decode(), "pem_bytes": keys.pem, "b64": keys.b64,
                "raw": keys.raw, "object": keys.public}[form]
    with load(signed, public_key=key) as model:
        assert model.candidate["id"] == "onnx-fp32"
        assert model.bundle.signed_by is not None
        assert model.bundle.signed_by.key_id == key_id(keys.raw)
    info = verify_signature(signed, key)
    assert info.to_dict() == {"checked": True, "algorithm": "ed25519", "key_id": key_id(keys.raw)}


def test_key_file_holding_base64(signed: Path, keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "key.b64"
    path.write_text(keys.b64 + "\n")
    assert raw_public_key(str(path)) == keys.raw


def test_bundle_sig_is_a_legitimate_unlisted_file(signed: Path, keys: Keys) -> None:
    """Without a key a signed bundle loads as before; bundle.sig is not an 'extra' file."""
    assert SIGNATURE_FILE not in list_bundle_files(signed)
    open_bundle(signed).verify()
    with load(signed) as model:
        assert model.bundle.signed_by is None  # nothing was checked


def test_signed_archive(signed: Path, keys: Keys, other: Keys, tmp_path: Path,
                        kit: types.ModuleType) -> None:
    tar = kit.make_archive(signed, tmp_path / "signed.tar.gz")
    with load(tar, public_key=keys.pub_path) as model:
        assert model.bundle.signed_by is not None
    with pytest.raises(SignatureError) as info:
        load(tar, public_key=other.pub_path)
    # the error names the archive, not the temp dir it was unpacked to
    assert info.value.where == f"{tar.resolve()}:tiny-cpu/{SIGNATURE_FILE}"


def test_load_of_an_opened_bundle_checks_too(signed: Path, keys: Keys, other: Keys) -> None:
    bundle = open_bundle(signed)
    with pytest.raises(SignatureError, match="another key"):
        load(bundle, public_key=other.b64)
    with load(bundle, public_key=keys.b64) as model:
        assert model.bundle.signed_by is not None
    # bundle.json rewritten (and re-signed) after the Bundle was parsed: refused
    doc = json.loads((signed / BUNDLE_FILE).read_text())
    doc["warnings"] = ["changed"]
    (signed / BUNDLE_FILE).write_text(json.dumps(doc))
    sign(signed, keys)
    with pytest.raises(SignatureError, match="changed on disk"):
        load(bundle, public_key=keys.b64)


# --------------------------------------------------------------------------- refused

def test_unsigned_bundle_refused(bundle_dir: Path, keys: Keys) -> None:
    with pytest.raises(SignatureError, match=r"not signed \(no bundle.sig\)") as info:
        load(bundle_dir, public_key=keys.pub_path)
    assert info.value.code == "bad-signature"
    assert info.value.where.endswith(SIGNATURE_FILE) and "--sign" in info.value.hint


def test_signature_by_another_key_refused(signed: Path, keys: Keys, other: Keys) -> None:
    with pytest.raises(SignatureError, match="made with another key") as info:
        load(signed, public_key=other.pub_path)
    assert key_id(keys.raw) in info.value.message and key_id(other.raw) in info.value.message


def test_signature_forged_with_another_key_naming_ours_refused(signed: Path, keys: Keys,
                                                               other: Keys) -> None:
    """bundle.sig claims our public key but was signed by someone else."""
    doc = json.loads((signed / SIGNATURE_FILE).read_text())
    doc["signature"] = base64.b64encode(
        other.private.sign((signed / BUNDLE_FILE).read_bytes())).decode()
    (signed / SIGNATURE_FILE).write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="does not match bundle.json"):
        load(signed, public_key=keys.pub_path)


@pytest.mark.parametrize("edit", ["byte", "whitespace", "hashes"])
def test_bundle_json_modified_after_signing_refused(signed: Path, keys: Keys, edit: str,
                                                    kit: types.ModuleType) -> None:
    path = signed / BUNDLE_FILE
    if edit == "byte":
        path.write_text(path.read_text().replace('"tiny"', '"tinY"', 1))
    elif edit == "whitespace":  # same JSON value, other bytes: still refused
        path.write_bytes(path.read_bytes() + b"\n")
    else:  # an attacker swaps a file and rewrites the hashes to match
        (signed / "runtime" / "model.py").write_text("raise SystemExit('owned')\n")
        kit.write_bundle_json(signed, json.loads(path.read_text()))
    with pytest.raises(SignatureError, match="changed after signing"):
        load(signed, public_key=keys.pub_path)


@pytest.mark.parametrize("content,needle", [
    (b"", "malformed"),
    (b"{not json", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"algorithm": "rsa", "public_key": "", "signature": ""}', "algorithm 'rsa'"),
    (b'{"public_key": "", "signature": ""}', "algorithm None"),
    (b'{"algorithm": "ed25519", "signature": "AA=="}', "public_key must be a base64 string"),
    (b'{"algorithm": "ed25519", "public_key": "%%%", "signature": "AA=="}', "not base64"),
    (b'{"algorithm": "ed25519", "public_key": "AAAA", "signature": "AA=="}', "has 3 bytes"),
    (b'{"algorithm": "ed25519", "public_key": "KEY", "signature": 7}', "signature must be"),
    (b'{"algorithm": "ed25519", "public_key": "KEY", "signature": "AAAA"}',
     "signature has 3 bytes"),
])
def test_malformed_bundle_sig_refused(signed: Path, keys: Keys, content: bytes,
                                      needle: str) -> None:
    (signed / SIGNATURE_FILE).write_bytes(content.replace(b"KEY", keys.b64.encode()))
    with pytest.raises(SignatureError, match=needle) as info:
        load(signed, public_key=keys.pub_path)
    assert info.value.where == str(signed.resolve() / SIGNATURE_FILE)


def test_bundle_sig_symlink_refused(signed: Path, keys: Keys, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.sig"
    shutil.move(signed / SIGNATURE_FILE, real)
    (signed / SIGNATURE_FILE).symlink_to(real)
    with pytest.raises(SignatureError, match="symlink"):
        load(signed, public_key=keys.pub_path)
    with pytest.raises(IntegrityError, match=r"bundle.sig \(symlink\)"):
        open_bundle(signed).verify()  # and not accepted as a plain unlisted file either


@pytest.mark.parametrize("name", ["bundle.sig.py", "runtime/bundle.sig.py", "bundle.json.py"])
def test_only_the_exact_names_are_exempt(signed: Path, name: str) -> None:
    (signed / name).write_text("print('hi')\n")
    with pytest.raises(IntegrityError, match=f"unexpected: {name}"):
        open_bundle(signed).verify()


def test_signature_checked_before_hashes_and_before_parsing(bundle_dir: Path, keys: Keys,
                                                            other: Keys) -> None:
    (bundle_dir / "models" / "tiny.fp32.onnx").write_bytes(b"tampered")
    sign(bundle_dir, other)
    with pytest.raises(SignatureError):  # not IntegrityError: the signature comes first
        load(bundle_dir, public_key=keys.pub_path)
    (bundle_dir / BUNDLE_FILE).write_text("{broken json")
    with pytest.raises(SignatureError):  # not BundleFormatError: nothing parsed before it
        load(bundle_dir, public_key=keys.pub_path)
    with pytest.raises(BundleFormatError):
        load(bundle_dir)  # without a key the parse error is what shows


def test_signature_checked_before_any_backend_runs(bundle_dir: Path, keys: Keys, other: Keys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.backends.onnxruntime import OnnxRuntimeBackend

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a backend opened an artifact of an unverified bundle")

    monkeypatch.setattr(OnnxRuntimeBackend, "open", boom)
    sign(bundle_dir, other)
    with pytest.raises(SignatureError):
        load(bundle_dir, public_key=keys.pub_path)


@pytest.mark.parametrize("bad,needle", [
    ("private", "private key"),
    ("ecdsa", "no model.sig, but an ECDSA key"),  # an ECDSA key checks model.sig, which this bundle lacks
    ("garbage", "not a public key"),
    ("missing", "no such key file"),
    ("short_b64", "not a public key"),
    ("bad_pem", "not a readable PEM public key"),
    ("int", "unusable public key of type int"),
])
def test_unusable_keys_refused(signed: Path, keys: Keys, tmp_path: Path, bad: str,
                               needle: str) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key: Any = {"private": keys.priv_path, "ecdsa": ec_pem, "garbage": "hello world",
                "missing": str(tmp_path / "nope.pem"), "short_b64": "AAAA",
                "bad_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "int": 42}[bad]
    with pytest.raises(SignatureError, match=needle) as info:
        load(signed, public_key=key)
    assert info.value.hint


def test_missing_cryptography_is_a_clear_error(signed: Path, keys: Keys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cryptography", "cryptography.exceptions",
                 "cryptography.hazmat.primitives.serialization",
                 "cryptography.hazmat.primitives.asymmetric.ed25519"):
        monkeypatch.setitem(sys.modules, name, None)  # "import X" now raises ImportError
    with pytest.raises(SignatureError, match="'cryptography' package is not installed") as info:
        load(signed, public_key=keys.b64)
    assert "pip install cryptography" in info.value.hint


def test_runtime_imports_no_crypto_until_asked() -> None:
    code = ("import sys, runtime, runtime.__main__; "
            "print(sorted(m for m in sys.modules if m.startswith('cryptography')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("command", ["verify", "info", "run", "bench", "tune", "doctor"])
def test_cli_key_accepts_and_refuses(signed: Path, keys: Keys, other: Keys,
                                     command: str) -> None:
    extra = {"bench": ["--runs", "2", "--warmup", "0"], "tune": ["--no-write", "--runs", "2",
                                                               "--max-seconds", "0.2"]}
    args = [command, str(signed), "--json", *extra.get(command, [])]
    ok = cli(*args, "--key", str(keys.pub_path))
    # doctor exits 1 when this host is not the bundle's target; the check itself passed
    assert ok.returncode in ((0, 1) if command == "doctor" else (0,)), ok.stderr + ok.stdout
    doc = json.loads(ok.stdout)
    check = doc["bundle"]["signature_check"] if command == "doctor" else \
        doc.get("signature_check")
    if command != "tune":
        assert check == {"checked": True, "algorithm": "ed25519", "key_id": key_id(keys.raw)}
    bad = cli(*args, "--key", str(other.pub_path))
    assert bad.returncode == 2, bad.stderr + bad.stdout
    err = json.loads(bad.stdout)
    assert err["ok"] is False and err["error"] == "bad-signature"
    assert "another key" in err["message"]
    assert "Traceback" not in bad.stderr


def test_cli_verify_text_and_unsigned(bundle_dir: Path, keys: Keys) -> None:
    proc = cli("verify", str(bundle_dir), "--key", keys.b64)
    assert proc.returncode == 2
    assert "not signed" in proc.stderr and "hint:" in proc.stderr
    sign(bundle_dir, keys)
    proc = cli("verify", str(bundle_dir), "--key", keys.b64)
    assert proc.returncode == 0, proc.stderr
    assert f"signature: ok (ed25519, key {key_id(keys.raw)})" in proc.stdout
    assert "verify: PASS" in proc.stdout


def test_device_without_cryptography_says_how_to_fix(signed: Path, keys: Keys,
                                                     tmp_path: Path) -> None:
    """On a device with numpy + onnxruntime only: --key fails clearly, without a key it runs."""
    device = tmp_path / "device" / signed.name
    shutil.copytree(signed, device)
    site = device_env.only_these_packages(tmp_path / "site", device_env.ONNXRUNTIME)
    proc = device_env.run_isolated(device, site, "-m", "runtime", "verify", "--json",
                                   "--key", keys.b64)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["error"] == "bad-signature" and "pip install cryptography" in doc["hint"]
    proc = device_env.run_isolated(device, site, "-m", "runtime", "verify", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["signature_check"] == {"checked": False}


def test_public_api_exports() -> None:
    assert runtime.SignatureError.code == "bad-signature"
    assert runtime.verify_signature is verify_signature
