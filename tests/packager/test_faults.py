"""Faults during a build: interrupted (SIGINT) or killed (SIGKILL) builds never leave a partial or
mixed bundle at the output path nor a torn cache entry, the next build succeeds and matches a clean
one, and two builds into one folder at once end with one whole bundle. Also: signed bundles.

The signals must really interrupt builds: every attempt builds on a COLD cache (a fresh
--cache-dir) into a folder that holds a previous bundle; the moments are spread over the measured
length of such a build, two more per signal land in the bundle write (right after the last
"make ... (n/n) ... done" progress line) and two in the move into place (right after the bundle
folder at the output path changed), where a few milliseconds decide; the test counts how many
attempts were really cut short (the process still running when the signal was sent)."""
from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.bundle import open_bundle

from ..conftest import REPO, TINY_MODEL, tiny_manifest

pytestmark = pytest.mark.slow
NAME = "tiny-x86-cpu"
SPREAD = 5  # attempts per signal at moments spread over the build
AT_WRITE = 2  # attempts per signal during the bundle write
AT_MOVE = 2  # ... and while it is moved into place
TEMPS = (".put-", ".trash-")  # the cache's temp folders (packager.cache.TEMP_PREFIXES)


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


def cache_entries(root: Path) -> int:
    """Check every entry of a build cache (see packager/cache.py): meta.json and exactly the blobs
    it lists, each matching its sha256. A killed build may leave no entry or a whole one, and a
    temp folder; never a torn entry. Returns how many entries there are."""
    if not root.exists():
        return 0
    for path in root.iterdir():
        assert (len(path.name) == 2 and path.is_dir()) or path.name.startswith(TEMPS), f"unexpected {path}"
    entries = list(root.glob("??/*"))
    for folder in entries:
        meta = json.loads((folder / "meta.json").read_text())  # a missing meta.json: a torn entry
        blobs = meta["_blobs"]
        assert {p.name for p in folder.iterdir()} == {"meta.json", *blobs}, f"torn entry {folder}"
        for name, digest in blobs.items():
            assert sha(folder / name) == digest, f"{folder}/{name} does not match its hash"
    return len(entries)


@dataclass
class Clean:
    """The tiny project and what a clean, cold build of it gives: its length and archive."""

    manifest: Path
    seconds: float  # wall time of `python -m packager build` on a cold cache
    sha: str  # of the archive
    bundle: Path  # its output folder


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """Timed clean builds on a cold cache: the length the signal moments are spread over. Two, and
    the shorter counts: the first process of a session pays for cold file caches; both must give
    the same bytes."""
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.py").write_text(TINY_MODEL)
    manifest = tiny_manifest(folder)
    runs = []
    for _ in range(2):
        out = tmp_path_factory.mktemp("clean")
        started = time.monotonic()
        proc = start_build(manifest, out, "--cache-dir", str(tmp_path_factory.mktemp("cold-cache")))
        _, err = proc.communicate(timeout=600)
        runs.append((time.monotonic() - started, out))
        assert proc.returncode == 0, err
    assert len({sha(out / f"{NAME}.tar.gz") for _, out in runs}) == 1, "two clean builds differ"
    seconds, out = min(runs)
    return Clean(manifest, seconds, sha(out / f"{NAME}.tar.gz"), out)


@pytest.fixture(scope="module")
def clean_archive(clean: Clean) -> Callable[[Path], str]:
    """The clean archive's sha256 for a tiny_project manifest (the same files as ``clean``'s)."""
    return lambda manifest: clean.sha


LAST_MADE = re.compile(r"\((\d+)/\1\) \.\.\. done")  # "make X + parity (3/3) ... done": the write is next


@dataclass
class Attempt:
    """One build, and the signal sent to it."""

    when: str  # "at 0.42 of the build" or "4 ms after the last artifact"
    cache: Path
    alive: bool = False  # the build was still running when the signal was sent
    code: int | None = None
    stderr: str = ""


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def attempt(when: str, manifest: Path, out: Path, cache: Path, sig: signal.Signals, *,
            after: float | None = None, at_write: float | None = None, at_move: float | None = None) -> Attempt:
    """Start a cold build and send ``sig`` (if it is still running): ``after`` seconds, or
    ``at_write`` seconds after the last artifact's progress line (the bundle write starts right
    then), or ``at_move`` seconds after the bundle folder at the output path changed (the previous
    one moved away, or the new one in: the moment a non-atomic move would be half done)."""
    proc = subprocess.Popen([sys.executable, "-m", "packager", "build", str(manifest), "--out", str(out),
                             "--cache-dir", str(cache)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    lines: list[str] = []
    last_made = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if LAST_MADE.search(line):
                last_made.set()
        last_made.set()  # EOF: the build ended without that line

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if at_write is not None:
        last_made.wait(timeout=600)
        time.sleep(at_write)
    elif at_move is not None:
        before = inode(out / NAME)
        last_made.wait(timeout=600)
        while proc.poll() is None and inode(out / NAME) == before:
            time.sleep(0.0002)
        time.sleep(at_move)
    else:
        time.sleep(max(0.0, started + (after or 0.0) - time.monotonic()))
    result = Attempt(when, cache, alive=proc.poll() is None)
    if result.alive:
        proc.send_signal(sig)
    result.code = proc.wait(timeout=300)
    if sig == signal.SIGKILL and result.code == 0:
        # SIGKILL cannot be caught: a clean exit means the process ended between poll() and the
        # signal (Popen.send_signal sends nothing to a process it finds gone), so it finished
        result.alive = False
    reader.join(timeout=60)
    result.stderr = "".join(lines)
    return result


def cache_temps(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(TEMPS)] if root.exists() else []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_build_never_leaves_a_partial_bundle(clean: Clean, tmp_path: Path,
                                                         sig: signal.Signals) -> None:
    rng = random.Random(int(sig))
    out = tmp_path / "out"
    shutil.copytree(clean.bundle, out)  # a previous, whole bundle is at the output path
    plan: list[tuple[str, dict[str, float]]] = []
    for i in range(SPREAD):  # evenly over the build, a little seeded jitter
        moment = 0.1 + i * (0.95 - 0.1) / (SPREAD - 1) + rng.uniform(-0.03, 0.03)
        plan.append((f"at {moment:.2f} of the build", {"after": clean.seconds * moment}))
    for _ in range(AT_WRITE):
        delay = rng.uniform(0.0, 0.01)
        plan.append((f"{delay * 1000:.0f} ms after the last artifact", {"at_write": delay}))
    for _ in range(AT_MOVE):
        delay = rng.uniform(0.0, 0.002)
        plan.append((f"{delay * 1000:.1f} ms after the bundle folder changed", {"at_move": delay}))
    attempts = []
    for i, (when, moment) in enumerate(plan):
        a = attempt(when, clean.manifest, out, tmp_path / f"cache{i}", sig, **moment)
        attempts.append(a)
        try:
            assert_whole_or_absent(out)
        except Exception as exc:
            raise AssertionError(f"{sig.name} {when} (exit {a.code}) left a partial bundle: {exc}") from exc
        entries = cache_entries(a.cache)
        if not a.alive:  # it had finished: it must have succeeded
            assert a.code == 0 and entries, f"{when}: exit {a.code}, stderr:\n{a.stderr}"
        elif sig == signal.SIGKILL:
            assert a.code == -signal.SIGKILL, f"{when}: exit {a.code}, stderr:\n{a.stderr}"
        else:  # 0 or -SIGINT (Python's own exit on an uncaught Ctrl-C, the shell's 130 too) only
            # when the signal came as the process was exiting, after its work
            assert a.code in (0, 130, -signal.SIGINT), f"{when}: exit {a.code}, stderr:\n{a.stderr}"  # whole
            if a.code == 130:
                assert "interrupted" in a.stderr, a.stderr[-2000:]
                assert not list(out.glob(".*-tmp-*")), "an interrupted build cleans up its temp folder"
                assert not cache_temps(a.cache), "an interrupted build cleans up its cache temp folders"
    expected = -signal.SIGKILL if sig == signal.SIGKILL else 130
    cut = [a for a in attempts if a.alive and a.code == expected]
    report = (f"{sig.name}: {len(cut)}/{len(attempts)} attempts interrupted (clean cold build "
              f"{clean.seconds:.1f}s): " + "; ".join(f"{a.when}: {'running' if a.alive else 'finished'}"
                                                     f" -> exit {a.code}" for a in attempts))
    print(report)
    assert 3 * len(cut) >= 2 * len(attempts), report
    assert any(a in cut for a in attempts[SPREAD:SPREAD + AT_WRITE]), "none cut short in the write: " + report
    assert any(a in cut for a in attempts[SPREAD + AT_WRITE:]), "none cut short in the move: " + report
    # the next build, on the fullest cache a cut-short attempt left, clears what killed builds
    # left (temp folders at --out and in the cache) and equals a clean build byte for byte
    resume = max(cut, key=lambda a: cache_entries(a.cache)).cache
    proc = start_build(clean.manifest, out, "--cache-dir", str(resume))
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert not list(out.glob(".*-tmp-*"))
    assert not cache_temps(resume), "the next build removes the cache temp folders of killed builds"
    cache_entries(resume)
    assert sha(out / f"{NAME}.tar.gz") == clean.sha
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
