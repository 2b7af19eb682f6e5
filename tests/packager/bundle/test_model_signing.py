"""OpenSSF model-signing, both ways, with the real ``model_signing`` command (from its own
environment, scripts/side_env.py): a bundle built with ``--sign`` of an ECDSA key carries a
model.sig that ``model_signing verify key`` accepts, and a bundle signed by ``model_signing sign
key`` is accepted by the runtime (``open_bundle(public_key=...)``, ``python -m runtime verify
--key``). A changed file, another key, and a planted model.sig are refused by both."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packager.bundle.signing import SigningError, generate_keypair, load_signing_keys
from packager.pipeline import build
from runtime.bundle import open_bundle
from runtime.errors import SignatureError

from ...conftest import side_env_python

pytestmark = pytest.mark.slow


def model_signing(*args: str | Path) -> subprocess.CompletedProcess[str]:
    python = side_env_python("model-signing")
    return subprocess.run([str(python), "-m", "model_signing", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A bundle built with an ed25519 and an ECDSA key; (bundle folder, ed25519 public, ECDSA public)."""
    from ...conftest import TINY_MODEL, tiny_manifest
    folder = tmp_path_factory.mktemp("model-signing")
    (folder / "tiny.py").write_text(TINY_MODEL)
    ed_private, ed_public = generate_keypair(folder / "keys")
    ec_private, ec_public = generate_keypair(folder / "keys", model_signing=True)
    result = build(tiny_manifest(folder, targets=["x86-cpu"]), folder / "out", sign=[ed_private, ec_private])
    assert result.ok
    return folder / "out" / "tiny-x86-cpu", ed_public, ec_public


def test_model_signing_accepts_the_bundle_edgepack_signed(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, _, ec_public = built
    assert (root / "model.sig").is_file() and (root / "bundle.sig").is_file()
    done = model_signing("verify", "key", "--signature", root / "model.sig", "--public_key", ec_public, root)
    assert done.returncode == 0 and "Verification succeeded" in done.stdout + done.stderr, done.stderr
    copy = tmp_path / "changed"
    shutil.copytree(root, copy)
    (copy / "README.md").write_text("changed after signing\n")
    done = model_signing("verify", "key", "--signature", copy / "model.sig", "--public_key", ec_public, copy)
    assert done.returncode != 0 and "README.md" in done.stdout + done.stderr  # the tool names the file


def test_the_runtime_checks_model_sig_with_an_ecdsa_key(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, ed_public, ec_public = built
    assert open_bundle(root, public_key=str(ec_public)).signed_by.algorithm.startswith("ecdsa-secp256r1")
    assert open_bundle(root, public_key=str(ed_public)).signed_by.algorithm == "ed25519"  # and bundle.sig too
    done = subprocess.run([sys.executable, "-m", "runtime", "verify", ".", "--key", str(ec_public), "--json"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "changed"
    shutil.copytree(root, copy)
    doc = json.loads((copy / "bundle.json").read_text())
    doc["description"] = "changed after signing"
    (copy / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="bundle.json is not the one model.sig signed"):
        open_bundle(copy, public_key=str(ec_public))
    _, other = generate_keypair(tmp_path / "other", model_signing=True)
    with pytest.raises(SignatureError, match="made with another key"):
        open_bundle(root, public_key=str(other))


def test_a_bundle_signed_by_model_signing_is_accepted_by_the_runtime(built: tuple[Path, Path, Path],
                                                                     tmp_path: Path) -> None:
    """The tool signs a bundle (bundle.sig removed: the tool's signature alone), the runtime checks
    it; a model.sig by the tool over another folder is refused (it does not list this bundle.json)."""
    root, _, _ = built
    copy = tmp_path / "bundle"
    shutil.copytree(root, copy)
    (copy / "model.sig").unlink()
    (copy / "bundle.sig").unlink()
    private, public = generate_keypair(tmp_path / "keys", model_signing=True)
    done = model_signing("sign", "key", "--private_key", private, "--signature", copy / "model.sig", copy)
    assert done.returncode == 0, done.stderr
    bundle = open_bundle(copy, public_key=str(public))
    bundle.verify()
    assert bundle.signed_by is not None and "model-signing" in bundle.signed_by.algorithm
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"\0" * 64)
    done = model_signing("sign", "key", "--private_key", private, "--signature", other / "model.sig", other)
    assert done.returncode == 0, done.stderr
    shutil.copy(other / "model.sig", copy / "model.sig")  # planted: a good signature, of something else
    with pytest.raises(SignatureError, match="bundle.json is not the one model.sig signed"):
        open_bundle(copy, public_key=str(public))


def test_keys_of_other_kinds_or_two_of_a_kind_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    k1, _ = generate_keypair(tmp_path / "a")
    k2, _ = generate_keypair(tmp_path / "b")
    with pytest.raises(SigningError, match="two ed25519 keys"):
        load_signing_keys([k1, k2])
    odd = tmp_path / "k1.pem"
    odd.write_bytes(ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(SigningError, match="secp256k1") as info:
        load_signing_keys([odd])
    assert "P-256" in info.value.hint
