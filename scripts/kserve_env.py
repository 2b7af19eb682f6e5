"""The KServe SDK's v2 REST client in an environment of its own, for tests/runtime/serve: kserve
brings kubernetes, fastapi and protobuf 6, which would move pins in .venv (TensorFlow's protobuf
among them). Created once (about 1.5 minutes, 450 MB) in ~/.cache/edgepack/kserve-client
($XDG_CACHE_HOME is honoured; $EDGEPACK_KSERVE_ENV moves it: the tests point $EDGEPACK_CACHE_DIR at
temporary folders, so it is not that); `make test` runs this script, and the test finds the client's
Python with ``python_path()``.

    python scripts/kserve_env.py     # create it (nothing to do when it exists), print its Python
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REQUIREMENT = "kserve==0.21.0"


def env_dir() -> Path:
    if os.environ.get("EDGEPACK_KSERVE_ENV"):
        return Path(os.environ["EDGEPACK_KSERVE_ENV"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack" / "kserve-client"


def python_path() -> Path | None:
    """The environment's Python when it was made completely (its stamp names the requirement)."""
    stamp = env_dir() / "installed.txt"
    python = env_dir() / "bin" / "python"
    return python if python.is_file() and stamp.is_file() and stamp.read_text().strip() == REQUIREMENT else None


def ensure() -> Path:
    found = python_path()
    if found is not None:
        return found
    folder = env_dir()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", REQUIREMENT, "numpy"], check=True)
    (folder / "installed.txt").write_text(REQUIREMENT + "\n")
    return folder / "bin" / "python"


if __name__ == "__main__":
    print(ensure())
