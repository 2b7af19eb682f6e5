"""The trusted verifier: a separately installed runtime (the edgepack-runtime wheel, and
`edgepack inspect`) treats a bundle's runtime/ as data, so it catches what the bundle's own
runtime cannot: a runtime edited to skip its own checks, and, with --key, a bundle.json rewritten
to match."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from packager.bundle.runtime_wheel import build_runtime_wheel

from ..device_env import ONNXRUNTIME, only_these_packages
from .conftest import write_bundle_json
from .test_signing import Keys, sign

REPO = Path(__file__).resolve().parents[2]
BACKDOORED = ["runtime/code_guard.py", "runtime/integrity.py", "runtime/select.py"]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime wheel pip-installed into a folder of its own, beside numpy and onnxruntime."""
    tmp = tmp_path_factory.mktemp("verifier")
    wheel = build_runtime_wheel(tmp / "wheel")
    site = only_these_packages(tmp / "site", ONNXRUNTIME)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                          "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    return site


def trusted(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`edgepack-runtime ARGS` (the wheel's console script) on a Python that sees only ``site``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([str(site / "bin" / "edgepack-runtime"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def own(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m runtime ARGS` inside the bundle: the bundle's own runtime copy runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=bundle, env=env,
                          capture_output=True, text=True, timeout=300)


def backdoor(bundle: Path, marker: Path) -> None:
    """What an attacker who can edit the bundle does: switch off the checks that run first, and
    plant code in a module that runs later."""
    rt = bundle / "runtime"
    for rel, func in (("code_guard.py", "protect"), ("integrity.py", "verify_files")):
        path = rt / rel
        text = path.read_text()
        edited = text.replace(f"def {func}(", f"def {func}(*_args, **_kwargs):\n    return None\n\n\n"
                                              f"def _original_{func}(", 1)
        assert edited != text
        path.write_text(edited)
    select = rt / "select.py"
    select.write_text(select.read_text() + f"\nimport pathlib as _p\n_p.Path({str(marker)!r}).write_text('ran')\n")


def test_clean_bundle_trusted_verifier_names_itself(bundle_dir: Path, wheel_site: Path, tmp_path: Path) -> None:
    proc = trusted(wheel_site, tmp_path, "verify", "--json", str(bundle_dir))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    verifier = json.loads(proc.stdout)["verifier"]
    assert verifier == {"kind": "independent", "version": verifier["version"], "trusted": True,
                        "location": str(wheel_site / "runtime"), "runtime_code_same": True,
                        "runtime_code_differs": []}
    mine = own(bundle_dir, "verify", "--json")
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout)["verifier"]["kind"] == "bundled"
    assert json.loads(mine.stdout)["verifier"]["trusted"] is False
    text = own(bundle_dir, "verify").stdout
    assert "this bundle's own runtime; it cannot vouch" in text and "edgepack-runtime verify --key" in text


def test_runtime_edited_to_skip_its_checks_passes_itself_but_not_the_trusted_verifier(
        bundle_dir: Path, wheel_site: Path, tmp_path: Path, kit: types.ModuleType) -> None:
    marker = tmp_path / "PWNED"
    backdoor(bundle_dir, marker)
    # the limit the README states: a runtime edited to skip its checks vouches for itself
    mine = own(bundle_dir, "verify")
    assert mine.returncode == 0 and "verify: PASS" in mine.stdout, mine.stderr
    assert marker.exists(), "the backdoored bundle ran its planted code"
    marker.unlink()
    # the trusted verifier hashes the runtime/ files as data and runs none of them
    for target in (bundle_dir, kit.make_archive(bundle_dir, tmp_path / "tiny-cpu.tar.gz")):
        proc = trusted(wheel_site, tmp_path, "verify", "--json", str(target))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["error"] == "bundle-integrity"
        for rel in BACKDOORED:
            assert f"{rel} (size" in doc["message"]
        assert not marker.exists()


def test_rewritten_bundle_json_is_caught_by_the_signature_and_shown_without_it(
        bundle_dir: Path, wheel_site: Path, tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys")
    sign(bundle_dir, keys)
    marker = tmp_path / "PWNED"
    backdoor(bundle_dir, marker)
    write_bundle_json(bundle_dir, json.loads((bundle_dir / "bundle.json").read_text()))  # re-hashed
    # with --key: refused before anything in bundle.json is used
    proc = trusted(wheel_site, tmp_path, "verify", "--json", "--key", str(keys.pub_path), str(bundle_dir))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["error"] == "bad-signature"
    shown = subprocess.run([sys.executable, "-m", "packager", "inspect", str(bundle_dir), "--key",
                            str(keys.pub_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 2 and "bundle.json" in shown.stderr, shown.stderr
    # without a key every hash matches, but the verifier says the runtime code is not its own
    proc = trusted(wheel_site, tmp_path, "verify", "--json", str(bundle_dir))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verifier"]["runtime_code_differs"] == BACKDOORED
    text = trusted(wheel_site, tmp_path, "verify", str(bundle_dir)).stdout
    assert "runtime code differs from this one's in runtime/code_guard.py" in text
    assert "only a signature checked with --key says who wrote it" in text
    inspected = subprocess.run([sys.executable, "-m", "packager", "inspect", str(bundle_dir), "--json"],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["verifier"]["runtime_code_differs"] == BACKDOORED
    assert not marker.exists()
