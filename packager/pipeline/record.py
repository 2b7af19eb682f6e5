"""What a build derives from the user's model and data, stored so a rebuild need not call them.

The record (golden inputs, reference outputs, the bundle signature, the model and data keys, …)
is stored in the build cache under a key of the manifest (without its targets), the working
folder and edgepack's code, together with the :class:`~packager.inputs.trace.Fingerprint` of what
the entry points read. It is used only while that fingerprint is unchanged.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.compare import looks_like_scores
from runtime.signature import Signature, TensorSpec

from ..cache import Entry, hash_arrays, npz_bytes
from ..config.manifest import Manifest
from ..inputs.data import EvaluationSet, SampleSet
from ..inputs.trace import Fingerprint
from ..parity import metric, run_samples
from ..progress import Progress
from ..sources import Source
from ..steps.keys import step_key

LABEL = "inputs (model, data, reference outputs)"  # its name in the cache summary


def inputs_key(manifest: Manifest, needs_calibration: bool) -> str:
    """The record's slot: the manifest's content and place, whether calibration data is loaded,
    the working folder (relative paths in entry points) and edgepack's code."""
    import yaml
    manifest_file = Path(manifest.file).resolve()
    doc = yaml.safe_load(manifest_file.read_text(encoding="utf-8"))
    doc.pop("targets", None)  # the targets only matter through needs_calibration
    return step_key("inputs", None, {"manifest": str(manifest_file), "doc": doc, "calibration": needs_calibration,
                                     "cwd": str(Path.cwd())})  # edgepack's code is in every key


def data_key(manifest: Manifest, calibration: SampleSet | None, golden: SampleSet,
             evaluation: EvaluationSet | None) -> str:
    """What steps that read data depend on besides their input model and config: the real data."""
    ev = evaluation
    return step_key("data", None, {
        "calibration": hash_arrays(calibration.arrays) if calibration else None,
        "batch_size": manifest.calibration.batch_size, "golden": hash_arrays(golden.arrays),
        "golden_raw": hashlib.sha256(b"".join(hashlib.sha256(d).digest() for _, d in golden.raw)).hexdigest(),
        "evaluation": hash_arrays(ev.feeds) if ev else None,
        "labels": hash_arrays([{"labels": batch} for batch in ev.labels]) if ev else None,
        "metric": _metric_key(manifest) if ev else None})


def _metric_key(manifest: Manifest) -> str | None:
    """The evaluation metric, its direction and budget (the mixed search stops by them) and, for
    an entry point in a file, that file's content."""
    spec = manifest.evaluation
    if spec is None:
        return None
    content = ""
    if spec.metric != "accuracy":
        module = spec.metric.rpartition(":")[0]
        path = manifest.base_dir / module
        content = hashlib.sha256(path.read_bytes()).hexdigest() if module.endswith(".py") and path.is_file() else ""
    return f"{spec.metric}|{content}|{spec.higher_is_better}|{spec.max_drop}"


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
    signature: Signature
    data_key: str
    source_key: str
    warnings: list[str]

    def entry(self, fingerprint: Fingerprint) -> Entry:
        g = self.golden
        meta: dict[str, Any] = {
            "reference_accuracy": self.reference_accuracy, "evaluation_samples": self.evaluation_samples,
            "source_info": self.source_info, "scores": self.scores, "signature": self.signature.to_dict(),
            "data_key": self.data_key, "source_key": self.source_key, "warnings": self.warnings,
            "fingerprint": fingerprint.to_dict(),
            "golden": {"names": list(g.arrays), "batched": g.batched, "source": g.source, "random": g.random,
                       "raw": [name for name, _ in g.raw]}}
        raw = {f"raw-{i}": data for i, (_, data) in enumerate(g.raw)}
        return Entry(meta, {"golden.npz": npz_bytes(g.arrays), "reference.npz": npz_bytes(self.reference), **raw})

    @classmethod
    def from_entry(cls, entry: Entry, output_names: list[str]) -> InputsRecord:
        meta = entry.meta
        golden = np.load(io.BytesIO(entry.blobs["golden.npz"]), allow_pickle=False)
        reference = np.load(io.BytesIO(entry.blobs["reference.npz"]), allow_pickle=False)
        g = meta["golden"]
        raw = tuple((name, entry.blobs[f"raw-{i}"]) for i, name in enumerate(g.get("raw", [])))
        return cls(golden=SampleSet({n: golden[n] for n in g["names"]}, g["batched"], g["source"], g["random"],
                                    raw=raw),
                   reference={n: reference[n] for n in output_names},
                   reference_accuracy=meta["reference_accuracy"], evaluation_samples=meta["evaluation_samples"],
                   source_info=meta["source_info"], scores=meta["scores"],
                   signature=Signature.from_dict(meta["signature"], where="build cache: inputs record"),
                   data_key=meta["data_key"], source_key=meta["source_key"], warnings=list(meta["warnings"]))


def derive_record(manifest: Manifest, source: Source, golden: SampleSet, calibration: SampleSet | None,
                  evaluation: EvaluationSet | None, progress: Progress, *,
                  warnings: list[str] | None = None) -> InputsRecord:
    """Reference outputs, the bundle signature and the data key, from the loaded inputs."""
    m = manifest
    warnings = list(warnings or [])
    if calibration is not None and calibration.random:
        warnings.append("calibration data is RANDOM (manifest asked for random: true); "
                        "int8 artifacts and golden checks do not reflect real inputs")
    evaluated = evaluation if evaluation and m.evaluation else None
    total = len(golden) + (len(evaluated) if evaluated else 0)
    with progress.step("reference outputs (original model)", total=total) as bar:
        reference = run_samples(source.reference, golden, on_rows=bar.advance)
        reference_accuracy = (metric(source.reference, evaluated, m, on_rows=bar.advance)
                              if evaluated and m.evaluation else None)
    scores = {o.name: (o.scores if o.scores is not None else
                       looks_like_scores(reference[o.name] if golden.batched else reference[o.name][0]))
              for o in m.outputs}
    signature = Signature(
        inputs=m.inputs,  # the manifest's inputs are the bundle's TensorSpecs already
        outputs=tuple(TensorSpec(name=o.name, dtype=str(reference[o.name].dtype),
                                 shape=tuple(_output_shape(o.shape, reference[o.name], golden.batched,
                                                           m.symbolic_batch())),
                                 layout=o.layout or None, scores=scores[o.name]) for o in m.outputs))
    return InputsRecord(golden=golden, reference=reference, reference_accuracy=reference_accuracy,
                        evaluation_samples=len(evaluation) if evaluation else None,
                        source_info={"sha256": source.sha256, "description": source.description},
                        scores=scores, signature=signature,
                        data_key=data_key(m, calibration, golden, evaluation), source_key=source.cache_key,
                        warnings=warnings)


def _output_shape(declared: tuple[int | str, ...] | None, ref: np.ndarray, batched: bool,
                  batch: str | None) -> list[int | str]:
    """An output's shape for the signature: declared, else observed with the batch dim symbolic."""
    if declared is not None:
        return list(declared)
    shape: list[int | str] = list(ref.shape[1:]) if not batched else list(ref.shape)
    if batched and batch and shape:
        shape[0] = batch
    return shape
