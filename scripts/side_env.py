"""Tools the tests drive as users do, each in an environment of its own, because installing them
into .venv would move its pins: the KServe SDK (kubernetes, fastapi, protobuf 6) and OpenSSF
model-signing (sigstore, a newer pydantic). Each is created once in ~/.cache/edgepack/<name>
($XDG_CACHE_HOME is honoured; $EDGEPACK_<NAME>_ENV moves it: the tests point $EDGEPACK_CACHE_DIR
at temporary folders, so it is not that); `make test` creates them, and a test finds the
environment's Python with ``python_path(NAME)``.

    python scripts/side_env.py kserve          # create it (nothing to do when it exists), print its Python
    python scripts/side_env.py model-signing
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# name: (folder under the cache, the requirements installed; the first one stamps the environment)
ENVS = {
    "kserve": ("kserve-client", ["kserve==0.21.0", "numpy"]),
    # model_signing 1.1.1 imports OpenSSL (pyOpenSSL) without requiring it
    "model-signing": ("model-signing", ["model-signing==1.1.1", "pyopenssl"]),
}


def env_dir(name: str) -> Path:
    override = os.environ.get(f"EDGEPACK_{name.upper().replace('-', '_')}_ENV")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack" / ENVS[name][0]


def python_path(name: str) -> Path | None:
    """The environment's Python when it was made completely (its stamp names the requirements)."""
    folder = env_dir(name)
    stamp, python = folder / "installed.txt", folder / "bin" / "python"
    want = " ".join(ENVS[name][1])
    return python if python.is_file() and stamp.is_file() and stamp.read_text().strip() == want else None


def ensure(name: str) -> Path:
    found = python_path(name)
    if found is not None:
        return found
    folder = env_dir(name)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *ENVS[name][1]], check=True)
    (folder / "installed.txt").write_text(" ".join(ENVS[name][1]) + "\n")
    return folder / "bin" / "python"


if __name__ == "__main__":
    for arg in sys.argv[1:] or list(ENVS):
        print(ensure(arg))
