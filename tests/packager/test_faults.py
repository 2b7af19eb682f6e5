"""Faults during a build: interrupted (SIGINT) or killed (SIGKILL) builds never leave a partial or
mixed bundle at the output path, the next build succeeds and matches a clean one, and two builds
into one folder at once end with one whole bundle. Also: signed bundles."""
from __future__ import annotations

import base64
import hashlib
import json
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

import pytest

from runtime.bundle import open_bundle

from ..conftest import REPO

pytestmark = pytest.mark.slow
NAME = "tiny-x86-cpu"


def start_build(manifest: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "packager", "build", str(manifest), "--out", str(out), "-q",
                             *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_whole_or_absent(out: Path) -> None:
    """At the output path: no bundle, or a bundle whose every file checks out; an archive, if
    there is one, holds exactly that bundle's bundle.json (never a mix of two builds)."""
    folder, archive = out / NAME, out / f"{NAME}.tar.gz"
    if folder.exists():
        open_bundle(folder).verify()
        if archive.exists():
            with tarfile.open(archive) as tar:
                member = tar.extractfile(f"{NAME}/bundle.json")
                assert member is not None and member.read() == (folder / "bundle.json").read_bytes()
    else:
        assert not archive.exists(), "an archive without its folder"


@pytest.fixture(scope="module")
def clean_archive(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], str]:
    cache: dict[str, str] = {}

    def get(manifest: Path) -> str:
        if "sha" not in cache:
            out = tmp_path_factory.mktemp("clean")
            proc = start_build(manifest, out)
            assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
            cache["sha"] = sha(out / f"{NAME}.tar.gz")
        return cache["sha"]
    return get


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_build_never_leaves_a_partial_bundle(tiny_project: Callable[..., Path], tmp_path: Path,
                                                         clean_archive: Callable[[Path], str],
                                                         sig: signal.Signals) -> None:
    manifest = tiny_project()
    clean = clean_archive(manifest)
    rng = random.Random(int(sig))
    out = tmp_path / "out"
    for attempt in range(3):
        proc = start_build(manifest, out)
        time.sleep(rng.uniform(1.0, 6.0))  # somewhere in: export, quantize, parity, writing
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
        assert_whole_or_absent(out)
        err = proc.stderr.read() if proc.stderr else ""
        if sig == signal.SIGINT and code not in (0, -signal.SIGINT):  # 0: it had finished already;
            # -SIGINT: Ctrl-C during interpreter start-up, before anything was built
            assert code == 130 and "interrupted" in err, (code, err[-2000:])
            assert not list(out.glob(".*-tmp-*")), "an interrupted build cleans up its temp folder"
    # the next build succeeds, clears what killed builds left, and equals a clean build
    proc = start_build(manifest, out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert not list(out.glob(".*-tmp-*"))
    assert sha(out / f"{NAME}.tar.gz") == clean
    assert_whole_or_absent(out)


def test_two_builds_into_one_folder_end_with_one_whole_bundle(tiny_project: Callable[..., Path],
                                                              tmp_path: Path,
                                                              clean_archive: Callable[[Path], str]) -> None:
    manifest = tiny_project()
    out = tmp_path / "out"
    procs = [start_build(manifest, out) for _ in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0], [p.stderr.read() if p.stderr else "" for p in procs]
    assert_whole_or_absent(out)
    assert (out / NAME).is_dir() and sha(out / f"{NAME}.tar.gz") == clean_archive(manifest)


def test_signed_bundle(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    keys = tmp_path / "keys"
    gen = subprocess.run([sys.executable, "-m", "packager", "keygen", str(keys), "--json"], cwd=REPO,
                         capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    paths = json.loads(gen.stdout)
    assert (Path(paths["private_key"]).stat().st_mode & 0o777) == 0o600
    again = subprocess.run([sys.executable, "-m", "packager", "keygen", str(keys)], cwd=REPO,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "never overwritten" in again.stderr
    proc = start_build(tiny_project(), tmp_path / "out", "--sign", paths["private_key"])
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    bundle = tmp_path / "out" / NAME
    sig = json.loads((bundle / "bundle.sig").read_text())
    assert sig["algorithm"] == "ed25519"
    public = load_pem_public_key(Path(paths["public_key"]).read_bytes())
    public.verify(base64.b64decode(sig["signature"]), (bundle / "bundle.json").read_bytes())  # raises if bad
    assert "cryptography==" in (bundle / "requirements.txt").read_text()
    open_bundle(bundle).verify()  # bundle.sig is not an unexpected file
    import runtime
    from runtime.errors import SignatureError
    with runtime.load(bundle, public_key=paths["public_key"]) as model:  # the device-side check agrees
        assert model.candidate["id"]
    other = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "packager", "keygen", str(other)], cwd=REPO, check=True,
                   capture_output=True)
    with pytest.raises(SignatureError):
        runtime.load(bundle, public_key=str(other / "edgepack-signing.pub"))
    verify = subprocess.run([sys.executable, "-m", "runtime", "verify", "--key", paths["public_key"]],
                            cwd=bundle, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    shown = subprocess.run([sys.executable, "-m", "packager", "inspect", str(bundle), "--key", paths["public_key"],
                            "--json"], cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0 and json.loads(shown.stdout)["signature"]["checked"] is True
    wrong = subprocess.run([sys.executable, "-m", "packager", "inspect", str(bundle), "--key",
                            str(other / "edgepack-signing.pub")], cwd=REPO, capture_output=True, text=True)
    assert wrong.returncode == 2 and "another key" in wrong.stderr


def test_bad_signing_key_fails_before_building(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "not-a-key.pem").write_text("hello")
    proc = start_build(tiny_project(), tmp_path / "out", "--sign", str(tmp_path / "not-a-key.pem"))
    assert proc.wait(timeout=120) == 2
    err = proc.stderr.read() if proc.stderr else ""
    assert "not a PEM private key" in err and "edgepack keygen" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
