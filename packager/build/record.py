"""What a build derives from the user's model and data, stored so a rebuild need not call them.

The record (golden inputs, reference outputs, the bundle signature, the model and data keys, …)
is stored in the build cache under a key of the manifest (without its targets), the working
folder and edgepack's code, together with the :class:`~packager.input_trace.Fingerprint` of what
the entry points read. It is used only while that fingerprint is unchanged.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .cache import Entry, code_hash, make_key, npz_bytes
from .data import SampleSet
from .input_trace import Fingerprint
from .manifest import Manifest

LABEL = "inputs (model, data, reference outputs)"  # its name in the cache summary


def inputs_key(manifest: Manifest, needs_calibration: bool) -> str:
    """The record's slot: the manifest's content and place, whether calibration data is loaded,
    the working folder (relative paths in entry points) and edgepack's code."""
    import yaml
    manifest_file = Path(manifest.file).resolve()
    doc = yaml.safe_load(manifest_file.read_text(encoding="utf-8"))
    doc.pop("targets", None)  # the targets only matter through needs_calibration
    return make_key("inputs", str(manifest_file), doc, needs_calibration, str(Path.cwd()), code_hash())


def declared_inputs(manifest: Manifest) -> list[Path]:
    """Paths the manifest names directly: native readers (TensorFlow's SavedModel loader) do not
    go through Python's open(), so the trace alone could miss them."""
    path = getattr(manifest.source, "path", None)
    return [Path(path)] if path and Path(path).exists() else []


@dataclass
class InputsRecord:
    """The shared state of a build that comes from calling the model and data entry points."""

    golden: SampleSet
    reference: dict[str, np.ndarray]
    reference_accuracy: float | None
    evaluation_samples: int | None
    source_info: dict[str, str]
    scores: dict[str, bool]
    signature: dict[str, Any]
    data_key: str
    source_key: str
    warnings: list[str]

    @classmethod
    def of(cls, state: Any) -> InputsRecord:
        """The record of an object carrying these fields as attributes (the Builder)."""
        return cls(**{f.name: getattr(state, f.name) for f in fields(cls)})

    def entry(self, fingerprint: Fingerprint) -> Entry:
        g = self.golden
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("golden", "reference")}
        meta.update(fingerprint=fingerprint.to_dict(),
                    golden={"names": list(g.arrays), "batched": g.batched, "source": g.source, "random": g.random})
        return Entry(meta, {"golden.npz": npz_bytes(g.arrays), "reference.npz": npz_bytes(self.reference)})

    @classmethod
    def from_entry(cls, entry: Entry, output_names: list[str]) -> InputsRecord:
        meta = entry.meta
        golden = np.load(io.BytesIO(entry.blobs["golden.npz"]), allow_pickle=False)
        reference = np.load(io.BytesIO(entry.blobs["reference.npz"]), allow_pickle=False)
        g = meta["golden"]
        return cls(golden=SampleSet({n: golden[n] for n in g["names"]}, g["batched"], g["source"], g["random"]),
                   reference={n: reference[n] for n in output_names},
                   **{f.name: meta[f.name] for f in fields(cls) if f.name not in ("golden", "reference")})
