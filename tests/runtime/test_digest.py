"""runtime.digest: the builtin SHA-256 for small inputs, OpenSSL's for big ones, same digests."""
from __future__ import annotations

import hashlib
import subprocess
import sys

from runtime.digest import SMALL, sha256

from ..conftest import REPO


def test_same_digest_either_way() -> None:
    data = bytes(range(256)) * 1000
    small = sha256(data)
    big = sha256(data, size_hint=SMALL)
    assert small.hexdigest() == big.hexdigest() == hashlib.sha256(data).hexdigest()
    assert type(big) is type(hashlib.sha256())  # OpenSSL's, for a big input
    chunked = sha256(size_hint=len(data))
    for i in range(0, len(data), 4096):
        chunked.update(data[i:i + 4096])
    assert chunked.hexdigest() == small.hexdigest()


def test_import_runtime_does_not_load_openssl() -> None:
    code = "import sys, runtime; print('_hashlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr
