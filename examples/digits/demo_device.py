"""The device half of `make demo`: use a built bundle the way a device would, in separate processes.

    python examples/digits/demo_device.py DIST [--name digits-cnn] [--target rpi4]

It unpacks the bundle's .tar.gz into a fresh folder (as if copied to the device), then runs the
bundle's own runtime from inside it: info, verify, run and bench; for a bundle that pre-processes
images (digits-cnn), also `run --input digit.png`, which prints the top labels. On a real device
the same commands run after `pip install -r requirements.txt`.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np


def sh(args: list[str], cwd: Path) -> int:
    print(f"\n$ {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable if a == "python" else a for a in args], cwd=cwd).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("--name", default="digits-cnn", help="the manifest's model name")
    parser.add_argument("--target", default="rpi4")
    args = parser.parse_args()
    archive = args.dist / f"{args.name}-{args.target}.tar.gz"
    if not archive.is_file():
        print(f"error: {archive} not found; run: edgepack build manifests/{args.name}.yaml --out {args.dist}",
              file=sys.stderr)
        return 2
    device = Path(tempfile.mkdtemp(prefix="edgepack-device-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(device, filter="data")
        bundle = device / archive.name.removesuffix(".tar.gz")
        print(f"unpacked {archive} into {bundle} (a stand-in for the device)")
        with np.load(bundle / "golden" / "inputs.npz") as g:
            np.save(device / "x.npy", g[g.files[0]][:4])  # the model's one input
        codes = [sh(["python", "-m", "runtime", "info"], bundle),
                 sh(["python", "-m", "runtime", "verify"], bundle),
                 sh(["python", "-m", "runtime", "run", "--input", str(device / "x.npy"),
                     "--output", str(device / "y.npz")], bundle),
                 sh(["python", "-m", "runtime", "bench", "--runs", "200"], bundle)]
        pngs = sorted((Path(__file__).resolve().parent / "images").glob("*.png"))[:2]
        if (bundle / "processing").is_dir() and pngs:  # PNG in, label out (the file name says the digit)
            codes.append(sh(["python", "-m", "runtime", "run", *(a for p in pngs for a in ("--input", str(p)))],
                            bundle))
        with np.load(device / "y.npz") as y:
            print(f"\npredicted digits for 4 golden images: {y[y.files[0]].argmax(axis=1).tolist()}")
        ok = all(c == 0 for c in codes)
        print("\ndemo: " + ("OK - the bundle verified against the build's golden outputs" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        shutil.rmtree(device, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
