"""Calibration and golden data from a text file (``texts: FILE``, one sample per line).

Each line is tokenized by the runtime's own WordPiece (``runtime.tokenizer``) into the model's id
inputs, exactly as the device will tokenize what it is sent; the texts are kept with the samples,
so golden texts can travel in the bundle for the end-to-end check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.tokenizer import WordPiece

from ..config.manifest import Manifest
from ..errors import DataError


def load_texts(path: Path, manifest: Manifest, limit: int, batched: bool, where: str
               ) -> tuple[dict[str, np.ndarray], tuple[tuple[str, bytes], ...], str]:
    """At most ``limit`` non-blank lines of ``path``, tokenized: (the arrays, each row's
    (name, UTF-8 text), where they came from)."""
    where = f"{where}.texts"
    text = manifest.processing.text
    assert text is not None  # the manifest allows texts only with a tokenizer
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise DataError(f"texts file {path} not found", where=where,
                        hint="paths in a manifest are relative to the manifest's folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path.name} as UTF-8 text: {exc}", where=where) from None
    texts = [line for line in lines if line]
    if not texts:
        raise DataError(f"{path.name} holds no text (blank lines are left out)", where=where,
                        hint="write one sample per line")
    wordpiece = vocabulary(manifest)
    picked = texts[:limit]
    encoded = wordpiece.encode(picked, text.length)
    specs = {s.name: s for s in manifest.inputs}
    arrays = {}
    for role, name in text.inputs.items():
        rows = encoded[role].astype(specs[name].dtype)
        arrays[name] = rows if batched else rows[:, None]
    shown = f"{len(picked)} of {len(texts)}" if len(texts) > len(picked) else str(len(texts))
    raw = tuple((f"{i:04d}.txt", t.encode("utf-8")) for i, t in enumerate(picked))
    return arrays, raw, f"texts {path.name} ({shown} lines)"


def vocabulary(manifest: Manifest) -> WordPiece:
    """The manifest's WordPiece vocabulary (DataError naming the file when it cannot be read)."""
    text = manifest.processing.text
    assert text is not None
    where = f"{manifest.file}: tokenizer.vocab"
    try:
        lines = Path(text.vocab).read_text(encoding="utf-8").splitlines()
        return WordPiece.from_lines(lines, lowercase=text.lowercase)
    except FileNotFoundError:
        raise DataError(f"vocabulary {text.vocab} not found", where=where,
                        hint="paths in a manifest are relative to the manifest's folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read the vocabulary {Path(text.vocab).name}: {exc}", where=where,
                        hint="give the model's WordPiece vocab.txt (one token per line)") from None
