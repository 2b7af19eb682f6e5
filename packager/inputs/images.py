"""Calibration and golden data from a folder of images (``images: DIR``).

Each file is pre-processed by the runtime's own code (``runtime.prepost``), exactly as the device
will pre-process what it is sent; the raw bytes are kept with the samples, so golden images can
travel in the bundle for the end-to-end check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.errors import FeedError
from runtime.prepost import IMAGE_SUFFIXES, image_tensor

from ..config.manifest import Manifest
from ..errors import DataError


def image_files(folder: Path, where: str) -> list[Path]:
    """The folder's image files, sorted by name (other files are not data: they are left out)."""
    if not folder.is_dir():
        raise DataError(f"images folder {folder} not found", where=where,
                        hint="paths in a manifest are relative to the manifest's folder")
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise DataError(f"cannot list {folder}: {exc.strerror or exc}", where=where) from None
    if not files:
        raise DataError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})", where=where,
                        hint="put the JPEG/PNG files directly in that folder")
    return files


def load_images(folder: Path, manifest: Manifest, limit: int, batched: bool, where: str
                ) -> tuple[dict[str, np.ndarray], tuple[tuple[str, bytes], ...], str]:
    """At most ``limit`` images of ``folder`` (in name order), pre-processed for the model's one
    input: (the arrays, each row's (file name, bytes), where they came from)."""
    where = f"{where}.images"
    (name,) = manifest.processing.inputs  # the manifest allows images only for one input with preprocess
    pre = manifest.processing.inputs[name]
    spec = manifest.inputs[0]
    files = image_files(folder, where)
    total = len(files)
    rows, raw = [], []
    for path in files[:limit]:
        try:
            data = path.read_bytes()
            rows.append(image_tensor(data, pre, spec, where=f"{where} ({path.name})"))
        except OSError as exc:
            raise DataError(f"cannot read {path.name}: {exc.strerror or exc}", where=where) from None
        except FeedError as exc:
            raise DataError(exc.message, where=exc.where,
                            hint=f"fix or remove {path.name}" + (f"; {exc.hint}" if exc.hint else "")) from None
        raw.append((path.name, data))
    arrays = {name: np.concatenate(rows) if batched else np.stack(rows)}
    shown = f"{len(rows)} of {total}" if total > len(rows) else str(total)
    return arrays, tuple(raw), f"images {folder.name}/ ({shown} files)"
