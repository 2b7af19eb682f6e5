"""Write the digits example's PNG images (examples/digits/images/): held-out test digits as files
a camera or an app would send, for the PNG-in, label-out path and the end-to-end golden check.

Each 8x8 digit (values 0..16, ink bright) is scaled to 0..255 and enlarged 4x to 32x32 (every
pixel a 4x4 block), so the manifest's ``resize: [8, 8]`` with the ``box`` filter gives back the
8x8 image the model was trained on. The files are committed; this script is how they were made:

    python examples/digits/make_images.py [--count 64]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    from data import _split  # type: ignore[import-not-found]  # run as a script from this folder
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--out", type=Path, default=HERE / "images")
    args = parser.parse_args()
    _, x_test, _, y_test = _split()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):
        old.unlink()
    for i in range(args.count):
        pixels = np.rint(x_test[i, 0] * 255).astype(np.uint8)  # x_test is digits / 16, in [0, 1]
        big = np.kron(pixels, np.ones((4, 4), dtype=np.uint8))
        Image.fromarray(big, mode="L").save(args.out / f"{i:03d}-digit{y_test[i]}.png", optimize=True)
    print(f"wrote {args.count} images to {args.out}")


if __name__ == "__main__":
    main()
