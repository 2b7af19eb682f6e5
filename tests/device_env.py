"""A stand-in for a device's Python: `python -S` with only some installed packages visible.

Used to prove a bundle stands alone: numpy plus ONE backend, and never the packager, torch or
onnxsim unless the backend itself is torch.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ONNXRUNTIME = ["numpy", "numpy.libs", "onnxruntime"]
LITERT = ["numpy", "numpy.libs", "ai_edge_litert"]
PILLOW = ["PIL", "pillow.libs"]  # the 'image' extra: decodes images for bundles that pre-process them
TORCH = ["numpy", "numpy.libs", "torch", "torchgen", "functorch", "typing_extensions.py",
         "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "filelock", "fsspec"]
PROBE = ("import importlib.util as u; print([n for n in ('torch', 'packager', 'onnxsim', 'onnx', 'yaml', "
         "'onnxruntime', 'tensorflow', 'ai_edge_litert', 'tflite_runtime') if u.find_spec(n)])")


def only_these_packages(dest: Path, names: list[str]) -> Path:
    """A folder of symlinks to some site-packages entries: the PYTHONPATH for ``python -S``."""
    site = Path(np.__file__).resolve().parents[1]
    dest.mkdir()
    for name in names:
        if (site / name).exists():
            (dest / name).symlink_to(site / name)
    return dest


def run_isolated(root: Path, packages: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -S ARGS`` in ``root``: no site-packages (no editable packager), only ``packages``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(packages)
    return subprocess.run([sys.executable, "-S", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def importable(root: Path, packages: Path) -> list[str]:
    """Which of the heavy modules the isolated Python can find."""
    proc = run_isolated(root, packages, "-c", PROBE)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip())  # a list literal printed by PROBE


def verify_on_device(bundle: Path, tmp: Path, packages: list[str], expect_backend: str) -> dict:
    """Copy ``bundle`` to a fresh folder, prove only ``expect_backend`` (of the heavy modules) is
    importable there, run ``python -m runtime verify --json`` from inside it, and return the report."""
    import json
    import shutil
    device = tmp / "device" / bundle.name
    shutil.copytree(bundle, device)
    site = only_these_packages(tmp / "site", packages)
    assert importable(device, site) == [expect_backend]
    proc = run_isolated(device, site, "-m", "runtime", "verify", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)
