"""bundle.json of one target, assembled as the runtime's own typed ``Bundle`` (never a dict literal),
so what the packager writes is exactly what the device reads back."""
from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path
from typing import Any

from runtime.bundle import Bundle, Candidate, Golden
from runtime.bundle_json import io_map_fields
from runtime.compare import Tolerance
from runtime.errors import BundleFormatError
from runtime.prepost import check_labels
from runtime.probe_record import ExplainData
from runtime.processing import Processing
from runtime.signature import Signature

from .. import __version__
from ..config.manifest import Manifest
from ..config.targets import CandidateSpec, Target
from ..errors import ManifestError
from ..inputs.data import SampleSet
from ..results import Artifact, CandidateResult, TargetResult
from .policy import Chosen
from .record import InputsRecord


def tool_versions(framework: str, formats: set[str]) -> dict[str, str]:
    """Versions of the distributions that shaped this bundle's artifacts (from package metadata,
    so the record depends on what was used, not on what happened to be imported)."""
    from importlib import metadata
    names = ["numpy", "onnx", "onnxruntime", "onnxsim"]
    names += {"torch": ["torch", "onnxscript"], "tensorflow": ["tensorflow-cpu", "keras"], "onnx": []}[framework]
    if framework == "tensorflow" and "onnx" in formats:
        names.append("tf2onnx")
    if "tflite" in formats:
        names += ["ai-edge-litert"] + (["litert-torch"] if framework == "torch" else [])
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "tensorflow-cpu":
                try:
                    out["tensorflow"] = metadata.version("tensorflow")
                except metadata.PackageNotFoundError:
                    pass
    return out


def candidate(manifest: Manifest, target: Target, spec: CandidateSpec, art: Artifact,
              cr: CandidateResult, explain: ExplainData | None = None) -> Candidate:
    """One candidate's entry: how to run the artifact, its tolerances, and the build's record of it."""
    assert cr.file is not None
    # the per-op table is the build's diagnosis (build JSON: explained), not the bundle's record
    conversion = {k: v for k, v in art.passes[0]["details"].items() if k != "per_op"}
    tolerance: dict[str, Tolerance] = {o.name: manifest.tolerance_for(spec.precision, o.name)
                                       for o in manifest.outputs}
    quantization = (dict(spec.quantization.to_dict(), **{k: v for k, v in conversion.items()
                                                         if k == "calibration_samples"})
                    if spec.quantization else None)
    io_map = art.extras.get("io_map") or {}
    known = {"io_map", "static_batch", "quantized_engine", "static_axes"}
    return Candidate(
        id=spec.id, file=cr.file, format=spec.format, backend=spec.backend, precision=spec.precision,
        providers=tuple(spec.providers),
        provider_options=tuple(dict(o) for o in spec.provider_options) or tuple({} for _ in spec.providers),
        threads=target.threads, tolerance=tolerance,
        **io_map_fields(io_map or None, where=f"candidate {spec.id}: io_map"),
        quantization=quantization, parity=dict(art.parity.to_dict(), checked_on="host CPUExecutionProvider"),
        accuracy=art.accuracy, size=len(art.data), status=cr.status, notes=cr.notes, converter=art.converter,
        conversion=conversion,
        io=("int8" if str(conversion.get("io", "")).startswith("int8") else "float") if spec.format == "tflite"
        else None,
        static_batch=art.extras.get("static_batch"), quantized_engine=art.extras.get("quantized_engine"),
        static_axes=dict(art.extras.get("static_axes") or {}), explain=explain,
        extra={**{k: v for k, v in art.extras.items() if k not in known},
               # kept despite failing parity (--allow-parity-failure): where its error starts, for inspect
               **({"explained": cr.explained} if cr.explained is not None else {})})


def document(manifest: Manifest, target: Target, chosen: Chosen, result: TargetResult, record: InputsRecord, *,
             root: Path, exporter: str, steps: list[dict[str, Any]], warnings: list[str],
             explains: dict[str, ExplainData] | None = None) -> Bundle:
    """The target's bundle.json (its ``files`` are added when the bundle is complete)."""
    m = manifest
    skipped = [{"candidate": c.id, "status": c.status, "reason": c.message or ""}
               for c in result.candidates if c.status in ("failed", "unsupported")]
    return Bundle(
        root=root, name=m.name, description=m.description, target=target.to_dict(), signature=record.signature,
        candidates=tuple(candidate(m, target, spec, art, cr, (explains or {}).get(spec.id))
                         for spec, art, cr in chosen),
        golden=Golden(inputs="golden/inputs.npz", outputs="golden/outputs.npz", batched=record.golden.batched,
                      samples=len(record.golden), source=record.golden.source, raw=raw_golden_paths(record.golden)),
        processing=bundled_processing(m, record.signature)[0],
        files={}, fallbacks=list(result.fallbacks), skipped=skipped,
        warnings=list(warnings) + [f"candidate {s['candidate']} not built: {s['reason']}" for s in skipped],
        evaluation=_evaluation(m, record) if record.evaluation_samples else None,
        provenance={
            "edgepack": __version__,
            "tools": tool_versions(m.source.framework, {spec.format for spec, _, _ in chosen}),
            "source": {"framework": m.source.framework, "sha256": record.source_info["sha256"],
                       "description": record.source_info["description"]},
            "exporter": exporter,
            "steps": steps,
            "host": {"platform": platform.platform(), "machine": platform.machine()},
        })


def _evaluation(m: Manifest, record: InputsRecord) -> dict[str, Any]:
    """The bundle's evaluation record: the original model's metric, on how many samples, and
    which metric and budget (``reference_accuracy`` holds the metric's value, whatever it is)."""
    out: dict[str, Any] = {"reference_accuracy": record.reference_accuracy, "samples": record.evaluation_samples}
    if m.evaluation is not None:
        out["metric"] = m.evaluation.metric
        if not m.evaluation.higher_is_better:
            out["higher_is_better"] = False
        if m.evaluation.max_drop is not None:
            out["max_accuracy_drop"] = m.evaluation.max_drop
    return out


def raw_golden_paths(golden: SampleSet) -> tuple[str, ...]:
    """Where the golden images go in the bundle (numbered in sample order; the suffix kept)."""
    return tuple(f"golden/raw/{i:04d}{Path(name).suffix.lower()}" for i, (name, _) in enumerate(golden.raw))


def bundled_processing(m: Manifest, signature: Signature) -> tuple[Processing | None, dict[str, Path]]:
    """The manifest's processing as bundle.json records it (labels files at their place in the
    bundle), and the files to copy there (bundle path -> source). Each labels file must hold one
    label per class of its output."""
    if not m.processing:
        return None, {}
    outputs, files = {}, {}
    specs = {s.name: s for s in signature.outputs}
    for i, (name, post) in enumerate(m.processing.outputs.items()):
        if post.labels:
            source = Path(post.labels)
            where = f"{m.file}: outputs[{name}].postprocess.labels"
            try:
                check_labels(source.read_text(encoding="utf-8").splitlines(), specs[name], where)
            except FileNotFoundError:
                raise ManifestError(f"labels file {source} not found", where=where,
                                    hint="paths in a manifest are relative to the manifest's folder") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(f"cannot read the labels file {source}: {exc}", where=where) from None
            except BundleFormatError as exc:
                raise ManifestError(exc.message, where=where, hint=exc.hint) from None
            files[f"processing/labels-{i}.txt"] = source
            post = replace(post, labels=f"processing/labels-{i}.txt")
        outputs[name] = post
    text = m.processing.text
    if text is not None:
        files["processing/vocab.txt"] = Path(text.vocab)
        text = replace(text, vocab="processing/vocab.txt")
    return Processing(inputs=dict(m.processing.inputs), outputs=outputs, text=text), files
