"""A build: one manifest -> one verified bundle per target.

Target-independent work (loading the source, data, reference outputs, export, simplify) runs
once; each artifact variant (e.g. int8 static) is made and checked once and shared by every
target that asks for it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import SCHEMA_VERSION
from runtime.compare import Tolerance, compare, looks_like_scores

from . import __version__
from .bundle import BundleWriter, remove_stale_temps
from .cache import BuildCache, Entry, hash_arrays, make_key, npz_bytes
from .cache import tool_versions as cache_tool_versions
from .data import SampleSet, golden_samples, load_evaluation, load_samples
from .errors import BuildError, EdgepackError, OutputError, TargetError, UnsupportedError, disk_error
from .input_trace import Fingerprint, tracing
from .inputs_record import LABEL as INPUTS_LABEL
from .inputs_record import InputsRecord, declared_inputs, inputs_key
from .manifest import Manifest, load_manifest
from .onnx_utils import node_count, serialize
from .parity import RuntimeRunner, accuracy, first_feed, host_latency_ms, run_samples
from .passes import PassResult
from .progress import Progress
from .quiet import quiet
from .results import Artifact, BuildResult, CandidateResult, Made, TargetResult
from .signing import cryptography_pin, load_private_key
from .sources import Source, load_source
from .targets import CandidateSpec, Target, load_target
from .texts import bundle_readme, requirements_txt

SUPPORTED_FORMATS = {"torch": ("onnx", "tflite", "torchscript"), "tensorflow": ("onnx", "tflite"),
                     "onnx": ("onnx",)}
UNSUPPORTED_ROUTES = {
    ("tensorflow", "torchscript"): "TorchScript is PyTorch's format: a TensorFlow model cannot be "
                                   "turned into TorchScript",
    ("onnx", "tflite"): "ONNX -> TFLite is not supported: its only converter, onnx2tf, pins old "
                        "tensorflow/numpy/onnx releases that cannot be installed beside edgepack's; "
                        "give the original PyTorch or TensorFlow model as the source instead",
    ("onnx", "torchscript"): "ONNX -> TorchScript is not supported: there is no maintained converter; "
                             "give the original PyTorch model as the source instead",
}


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


# A framework conversion goes to a worker process only when -j asks for workers explicitly, or
# for a model at least this big on a host with at least this many cores: the worker must import
# torch/TensorFlow and load the model again (6 s for Keras MobileNetV2 here), and on a 2-core host
# `-j 2` made a MobileNetV2 rpi4 build slower (21.6 s against 17.8 s serial).
PARALLEL_CONVERT_MIN_BYTES = 32 * 1024**2
PARALLEL_CONVERT_MIN_CORES = 4


class StaleInputsError(BuildError):
    """The entry points gave other results than the inputs record said, although nothing they
    were seen reading changed: the whole build stops (steps already taken from the cache may
    be stale), never a mixed bundle."""


class Builder:
    """Runs one manifest's build; shared work is memoised across targets."""

    def __init__(self, manifest: Manifest, targets: list[Target], out_dir: Path, *,
                 allow_parity_failure: bool = False, progress: Progress | None = None,
                 sign_key: Any = None, cache: BuildCache | None = None, jobs: int | None = 1,
                 reload_inputs: bool = False) -> None:
        self.manifest = manifest
        self.reload_inputs = reload_inputs
        self.jobs = jobs  # worker processes for independent passes: None = as many as cores allow
        self._prebuilt: dict[str, Any] = {}
        self.parallel: dict[str, Any] = {}
        self.sign_key = sign_key
        self.cache = cache or BuildCache(enabled=False)
        self.targets = targets
        self.out_dir = out_dir
        self.allow_parity_failure = allow_parity_failure
        self.progress = progress or Progress(quiet=True)
        self.steps: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._artifacts: dict[str, Artifact | EdgepackError] = {}
        self.output_names = [o.name for o in manifest.outputs]
        self.exporter = "none"

    # -- shared, target-independent steps ----------------------------------------------------
    def _prepare_shared(self) -> None:
        m = self.manifest
        self.needs_cal = m.golden_from_calibration or any(
            c.quantization and c.quantization.mode == "static" for t in self.targets for c in t.candidates)
        self._inputs_loaded = False
        self._base: Any = None
        self._base_error: EdgepackError | None = None
        key = inputs_key(self.manifest, self.needs_cal)
        if not self.reload_inputs and self._restore_inputs(key):
            return
        with tracing() as trace:
            self._load_inputs()
        self._derive()
        self._store_inputs(key, Fingerprint.of(trace, declared_inputs(self.manifest)))

    def _load_inputs(self) -> None:
        """Call the user's entry points / read the files: the model, calibration, golden and
        evaluation data (the slow part of a rebuild, hence traced and cached)."""
        m = self.manifest
        with self.progress.step(f"load {m.source.framework} source"):
            self._source: Source = load_source(m)
        self._calibration: SampleSet | None = None
        if self.needs_cal:
            with self.progress.step("load calibration data"):
                self._calibration = load_samples(m.calibration, m, "calibration")
        with self.progress.step("load golden data"):
            self.golden = golden_samples(m, self._calibration)
        self._evaluation = load_evaluation(m)
        self._inputs_loaded = True

    def _derive(self) -> None:
        """Reference outputs, the bundle signature and the cache keys, from the loaded inputs."""
        m = self.manifest
        if self._calibration is not None and self._calibration.random:
            self.warnings.append("calibration data is RANDOM (manifest asked for random: true); "
                                 "int8 artifacts and golden checks do not reflect real inputs")
        evaluated = self._evaluation if self._evaluation and m.evaluation else None
        total = len(self.golden) + (len(evaluated) if evaluated else 0)
        with self.progress.step("reference outputs (original model)", total=total) as bar:
            self.reference = run_samples(self._source.reference, self.golden, on_rows=bar.advance)
            self.reference_accuracy = (accuracy(self._source.reference, evaluated, m.evaluation.output,
                                                on_rows=bar.advance) if evaluated and m.evaluation else None)
        self.evaluation_samples = len(self._evaluation) if self._evaluation else None
        self.source_info = {"sha256": self._source.sha256, "description": self._source.description}
        self.scores: dict[str, bool] = {o.name: (o.scores if o.scores is not None else
                                looks_like_scores(self.reference[o.name]) if self.golden.batched else
                                looks_like_scores(self.reference[o.name][0]))
                       for o in m.outputs}
        self.signature = {
            "inputs": [s.to_dict() for s in m.inputs],
            "outputs": [dict(o.to_dict(), shape=_output_shape(o.shape, self.reference[o.name], self.golden.batched,
                                                             m.symbolic_batch()),
                             dtype=str(self.reference[o.name].dtype), scores=self.scores[o.name])
                        for o in m.outputs],
        }
        self.source_key = self._source.cache_key
        self.data_key = self._data_key()
        self.model_key = self._model_key(self.source_key)

    def _data_key(self) -> str:
        """What cached steps depend on besides the model and their own config: the real data."""
        m = self.manifest
        cal, ev = self._calibration, self._evaluation
        return make_key(hash_arrays(cal.arrays) if cal else None,
                        m.calibration.batch_size, hash_arrays(self.golden.arrays),
                        hash_arrays(ev.feeds) if ev else None,
                        hash_arrays([{"labels": batch} for batch in ev.labels]) if ev else None)

    def _model_key(self, source_key: str) -> str:
        """The model (weights and code, ``source_key``) with what shapes its export: computed
        afresh on every build, so a tool upgrade is never hidden behind a cached record."""
        m = self.manifest
        return make_key(source_key, m.source.framework, [s.to_dict() for s in m.inputs],
                             [o.name for o in m.outputs], m.opset, m.exporter, m.torchscript,
                             cache_tool_versions("torch", "onnxscript", "onnx", "onnxsim", "onnxruntime", "tensorflow",
                                                 "tensorflow-cpu", "keras", "tf2onnx", "ai-edge-litert", "litert-torch",
                                                 "edgepack"))

    # -- the inputs' record: skip the entry points when nothing they read changed --------------
    def _restore_inputs(self, key: str) -> bool:
        hit = self.cache.peek(key)
        if hit is None:
            return False
        fingerprint = hit.meta["fingerprint"]
        why = Fingerprint.from_dict(fingerprint).changed()
        if why is not None:
            self.progress.note(f"  inputs changed ({why}): calling the entry points")
            return False
        self.cache.hits.append(INPUTS_LABEL)
        record = InputsRecord.from_entry(hit, self.output_names)
        for name, value in vars(record).items():
            if name != "warnings":
                setattr(self, name, value)
        self.warnings.extend(record.warnings)
        self.model_key = self._model_key(self.source_key)
        self.progress.note(f"  inputs unchanged ({len(fingerprint['files'])} files traced): "
                           "model and data entry points not called")
        for path in fingerprint["files"]:
            self.progress.detail(f"unchanged: {path}")
        return True

    def _store_inputs(self, key: str, fingerprint: Fingerprint) -> None:
        if not self.cache.enabled:
            return
        if not self.reload_inputs:
            self.cache.misses.append(INPUTS_LABEL)
        for path in [*fingerprint.files, *fingerprint.dirs]:
            self.progress.detail(f"input recorded for the next build: {path}")
        self.cache.put(key, InputsRecord.of(self).entry(fingerprint), replace=True)

    def _ensure_inputs(self) -> None:
        """A step the cache did not have needs the real model or data: load them now, and make
        sure they are what the cached keys said (else the trace missed a change)."""
        if self._inputs_loaded:
            return
        self.progress.note("  a step is not cached: calling the model and data entry points")
        self._load_inputs()
        if (self._data_key(), self._source.cache_key) != (self.data_key, self.source_key):
            self.cache.drop(inputs_key(self.manifest, self.needs_cal))
            raise StaleInputsError("the model or data changed although no file their entry points read did "
                             "(they depend on something edgepack cannot trace: an environment variable, "
                             "the clock, a native reader)", where=f"{self.manifest.file}",
                             hint="run the build again (the stale record is removed), and use "
                                  "--reload-inputs whenever such an input changes")

    @property
    def source(self) -> Source:
        self._ensure_inputs()
        return self._source

    @property
    def calibration(self) -> SampleSet | None:
        self._ensure_inputs()
        return self._calibration

    @property
    def evaluation(self) -> Any:
        self._ensure_inputs()
        return self._evaluation

    def _record(self, result: PassResult) -> None:
        self.steps.append({"step": result.name, "details": result.details, "notes": result.notes})

    def onnx_base(self) -> Any:
        """The fp32 ONNX model every ONNX candidate starts from, made once (or its error, once)."""
        if self._base is None and self._base_error is None:
            try:
                self._base = self._cached_base_model()
            except StaleInputsError:
                raise
            except EdgepackError as exc:
                self._base_error = exc
        if self._base_error is not None:
            raise self._base_error
        return self._base

    def _cached_base_model(self) -> Any:
        """The base model from the cache, or made and stored (its step records travel with it)."""
        import onnx
        key = make_key("onnx-base", self.model_key)
        hit = self.cache.get(key, "onnx base model")
        if hit is not None:
            self.progress.note("  onnx base model ... cached")
            self.exporter = hit.meta["exporter"]
            self.steps.extend(hit.meta["steps"])
            self.warnings.extend(hit.meta["warnings"])
            return onnx.load_from_string(hit.blobs["model.onnx"])
        steps_before, warnings_before = len(self.steps), len(self.warnings)
        model = self._base_model()
        self.cache.put(key, Entry({"exporter": self.exporter, "steps": self.steps[steps_before:],
                                   "warnings": self.warnings[warnings_before:]},
                                  {"model.onnx": serialize(model)}))
        return model

    def _base_model(self) -> Any:
        """Source -> ONNX (export or load), prepared and simplified: the fp32 starting point."""
        m = self.manifest
        from .passes.prepare import prepare
        from .passes.simplify import simplify
        if m.source.framework == "tensorflow":
            from .convert.tf_to_onnx import tf_to_onnx
            with self.progress.step("convert tensorflow -> onnx (tf2onnx)"):
                model, how = tf_to_onnx(self.source, m.opset)  # type: ignore[arg-type]
            self.exporter = how
            self.steps.append({"step": "export", "details": {"exporter": how, "nodes": node_count(model)},
                               "notes": []})
        elif m.source.framework == "torch":
            from .convert.torch_to_onnx import export_torch
            with self.progress.step("export torch -> onnx"):
                exported = export_torch(self.source.module, m, first_feed_batch(self.golden))  # type: ignore[attr-defined]
            self.exporter = exported.exporter
            self.steps.append({"step": "export", "details": {"exporter": exported.exporter,
                                                             "nodes": node_count(exported.model)},
                               "notes": exported.notes})
            self.warnings.extend(exported.notes)
            model = exported.model
        else:
            self.exporter = "none (onnx source)"
            model = self.source.model  # type: ignore[attr-defined]
        with self.progress.step("prepare onnx (check, opset, shapes)"):
            prepared = prepare(model, m.opset, f"{m.file}: source")
        self._record(prepared)
        with self.progress.step("simplify (onnxsim)"):
            simplified = simplify(prepared.model)
        self._record(simplified)
        self.warnings.extend(simplified.notes)
        return simplified.model

    # -- per variant ---------------------------------------------------------------------------
    def _make_variant(self, spec: CandidateSpec, target: Target) -> Artifact:
        self._check_route(spec)  # an unsupported route is not a cache miss
        variant = self._variant_key(spec, target)
        key = self._artifact_key(spec, target)
        hit = self.cache.get(key, f"artifact {variant}")
        if hit is not None:
            self.progress.detail(f"{variant}: taken from the cache ({key[:12]})")
            made = Made(hit.blobs["artifact"], **hit.meta)
            if spec.format == "onnx":
                self.onnx_base()  # its record (exporter, steps) belongs in the provenance; a cache hit too
        else:
            made = self._take_prebuilt(variant) or self._convert(spec, target)
            self.cache.put(key, Entry({"suffix": made.suffix, "step": made.step, "details": made.details,
                                       "notes": made.notes, "extras": made.extras, "converter": made.converter},
                                      {"artifact": made.data}))
        outputs, acc, latency = self._check(spec, made)
        tolerances = {o: self.manifest.tolerance_for(spec.precision, o) for o in self.output_names}
        parity = compare(self.reference, outputs, tolerances, scores=self.scores)
        return Artifact(variant=variant, precision=spec.precision, data=made.data,
                        passes=[{"step": made.step, "details": made.details}], notes=made.notes,
                        parity=parity, accuracy=acc, host_latency_ms=latency, suffix=made.suffix,
                        extras=made.extras, converter=made.converter or f"{self.exporter} + {made.step}",
                        cached=hit is not None)

    def _artifact_key(self, spec: CandidateSpec, target: Target) -> str:
        return make_key("artifact", self.model_key, self.data_key, self._variant_key(spec, target), spec.format,
                        spec.precision, spec.quantization.to_dict() if spec.quantization else None, spec.io)

    def _prebuild(self) -> None:
        """Run the steps that different targets need side by side in worker processes: the ONNX
        precision passes (fp16, int8 dynamic/static), and, with an explicit ``-j N`` or for a big
        model on a many-core host, the TFLite/TorchScript conversions (the worker loads the source
        itself, which costs a framework import and a model load: see PARALLEL_CONVERT_MIN_BYTES).
        A conversion is submitted first so it runs while this process exports the base ONNX model."""
        from .parallel import ConvertJob, PassJob, worker_count
        if self.jobs is not None and self.jobs <= 1:
            return
        passes: dict[str, CandidateSpec] = {}
        converts: dict[str, tuple[CandidateSpec, Target]] = {}
        for target in self.targets:
            for spec in target.candidates:
                if spec.format not in SUPPORTED_FORMATS[self.manifest.source.framework] or \
                        self.cache.has(self._artifact_key(spec, target)):
                    continue
                if spec.format == "onnx":
                    if spec.precision != "fp32":
                        passes.setdefault(self._variant_key(spec, target), spec)
                else:
                    converts.setdefault(self._variant_key(spec, target), (spec, target))
        weights = self._weight_bytes() if converts else 0
        if self.jobs is None and (weights < PARALLEL_CONVERT_MIN_BYTES
                                  or (os.cpu_count() or 1) < PARALLEL_CONVERT_MIN_CORES):
            converts = {}
        if len(passes) + len(converts) < 2:
            return
        workers = worker_count(len(passes) + len(converts), self.jobs, max(weights, 1),
                               per_worker=(900 if converts else 400) * 1024**2)
        if workers <= 1:
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from .parallel import run_convert, run_pass
        cal = self.calibration
        batches = list(cal.batches(self.manifest.calibration.batch_size)) if cal is not None else None
        futures: dict[str, Any] = {}
        label = " + ".join(x for x in (f"{len(passes)} onnx precision passes" if passes else "",
                                       f"{len(converts)} conversions" if converts else "") if x)
        with self.progress.step(f"{label} on {workers} worker processes"), \
                ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for key, (spec, target) in converts.items():
                futures[key] = pool.submit(run_convert, ConvertJob(self.manifest, target, spec, cal, self.golden,
                                                                   self.source_key))
            base = None
            if passes:
                try:
                    base = serialize(self.onnx_base())
                except StaleInputsError:
                    raise
                except EdgepackError:
                    pass  # each candidate reports the base model's error itself
            if base is not None:
                for key, spec in passes.items():
                    job = PassJob(key, spec.precision, spec.quantization,
                                  batches if spec.quantization and spec.quantization.mode == "static" else None,
                                  bool(cal and cal.random))
                    futures[key] = pool.submit(run_pass, base, job)
            for key, future in futures.items():
                try:
                    got = future.result()
                except EdgepackError as exc:
                    self._prebuilt[key] = exc
                    continue
                except Exception as exc:  # a crashed worker (killed, out of memory): redo it here
                    self.warnings.append(f"worker process for {key} failed ({type(exc).__name__}: {exc}); "
                                         "made in the main process instead")
                    continue
                if isinstance(got, Made):
                    self._prebuilt[key] = got
                else:
                    data, name, details, notes = got
                    self._prebuilt[key] = Made(data, ".onnx", name, details, notes,
                                               converter=f"{self.exporter} + {name}")
        # in the build report, not the bundles: a bundle is the same bytes whatever -j was
        self.parallel = {"passes": sorted(k for k in futures if k in passes),
                         "conversions": sorted(k for k in futures if k in converts), "workers": workers}

    def _weight_bytes(self) -> int:
        """The source model's weights in bytes (0 when unknown): decides whether a conversion
        is worth a worker process."""
        src = self.source
        module = getattr(src, "module", None)
        if module is not None and hasattr(module, "parameters"):
            return int(sum(p.numel() * p.element_size() for p in module.parameters()))
        model = getattr(src, "model", None)
        weights = getattr(model, "weights", None) or getattr(model, "variables", None) or []
        try:
            return int(sum(int(np.prod(w.shape)) * w.dtype.size for w in weights))
        except Exception:
            return 0

    def _take_prebuilt(self, variant: str) -> Made | None:
        found = self._prebuilt.pop(variant, None)
        if isinstance(found, EdgepackError):
            raise found
        return found

    def _convert(self, spec: CandidateSpec, target: Target) -> Made:
        route = (self.manifest.source.framework, spec.format)
        if spec.format == "onnx":
            return self._onnx_variant(spec)
        if route == ("torch", "torchscript"):
            return self._torchscript_variant(spec, target)
        if route == ("tensorflow", "tflite"):
            return self._tflite_variant(spec)
        if route == ("torch", "tflite"):
            return self._litert_variant(spec)
        raise AssertionError(f"route {route} passed _check_route")

    def _check_route(self, spec: CandidateSpec) -> None:
        framework = self.manifest.source.framework
        if spec.format not in SUPPORTED_FORMATS[framework]:
            raise UnsupportedError(UNSUPPORTED_ROUTES[(framework, spec.format)], where=f"candidate {spec.id}",
                                   hint=f"use {' or '.join(SUPPORTED_FORMATS[framework])} candidates for "
                                        f"{framework} models")

    def _check(self, spec: CandidateSpec, made: Made) -> tuple[dict[str, np.ndarray], float | None, float | None]:
        """Golden outputs, accuracy and host latency of an artifact, through the runtime's backend.

        Cached by the artifact's bytes, the data and this host (latency is a host measurement)."""
        key = make_key("check", hashlib.sha256(made.data).hexdigest(), self.data_key, self.signature,
                       spec.format, spec.backend, spec.precision, made.extras, platform.machine(),
                       platform.processor(), cache_tool_versions("onnxruntime", "ai-edge-litert", "torch", "numpy"))
        hit = self.cache.get(key, f"check {spec.variant}")
        if hit is not None:
            with np.load(io.BytesIO(hit.blobs["outputs.npz"]), allow_pickle=False) as npz:
                outputs = {k: npz[k] for k in npz.files}
            return outputs, hit.meta["accuracy"], hit.meta["latency"]
        runner = RuntimeRunner(spec, made, self.signature, f"candidate {spec.id}")
        with quiet():  # backends print on the C++ side (e.g. LiteRT's delegate line)
            try:
                outputs = run_samples(runner, self.golden)
                acc = (accuracy(runner, self.evaluation, self.manifest.evaluation.output)
                       if self.evaluation and self.manifest.evaluation else None)
                latency = host_latency_ms(runner, first_feed(self.golden))
            finally:
                runner.close()
        self.cache.put(key, Entry({"accuracy": acc, "latency": latency}, {"outputs.npz": npz_bytes(outputs)}))
        return outputs, acc, latency

    def _onnx_variant(self, spec: CandidateSpec) -> Made:
        from .passes import quantize
        base = self.onnx_base()
        if spec.precision == "fp32":
            result = PassResult(base, "fp32", modified=False)
        elif spec.precision == "fp16":
            result = quantize.to_fp16(base)
        elif spec.quantization and spec.quantization.mode == "dynamic":
            result = quantize.int8_dynamic(base)
        else:
            assert spec.quantization is not None and self.calibration is not None
            batches = list(self.calibration.batches(self.manifest.calibration.batch_size))
            result = quantize.int8_static(base, spec.quantization, batches,
                                          random_data=self.calibration.random)
        return Made(serialize(result.model), ".onnx", result.name, result.details, result.notes,
                    converter=f"{self.exporter} + {result.name}")

    def _torchscript_variant(self, spec: CandidateSpec, target: Target) -> Made:
        from .convert.torch_to_torchscript import to_torchscript
        if spec.precision == "int8" and spec.quantization and spec.quantization.mode == "static":
            raise UnsupportedError("TorchScript int8 is dynamic quantization only", where=f"candidate {spec.id}",
                                   hint="use quantization: {mode: dynamic}, or an onnx int8 static candidate")
        result = to_torchscript(self.source.module, self.manifest, first_feed_batch(self.golden),  # type: ignore[attr-defined]
                                precision=spec.precision, arch=target.arch, method=self.manifest.torchscript)
        engine = result.details.get("quantized_engine")
        extras = {"quantized_engine": engine} if "quantized_engine" in result.details else {}
        return Made(result.data, ".pt", "torchscript", result.details, result.notes, extras, result.method)

    def _tflite_variant(self, spec: CandidateSpec) -> Made:
        from .convert.tf_to_tflite import to_tflite
        batches = (list(self.calibration.batches(self.manifest.calibration.batch_size))
                   if self.calibration is not None else None)
        mode = spec.quantization.mode if spec.quantization else None
        result = to_tflite(self.source, precision=spec.precision, mode=mode, io=spec.io,  # type: ignore[arg-type]
                           calibration=batches, random_data=bool(self.calibration and self.calibration.random))
        return Made(result.data, ".tflite", "tflite", result.details, result.notes, {"io_map": result.io_map},
                    result.details["converter"])

    def _litert_variant(self, spec: CandidateSpec) -> Made:
        from .convert.torch_to_tflite import torch_to_tflite
        batches = list((self.calibration or self.golden).batches(self.manifest.calibration.batch_size))
        result = torch_to_tflite(self.source.module, self.manifest, batches,  # type: ignore[attr-defined]
                                 precision=spec.precision, quantization=spec.quantization, io=spec.io)
        return Made(result.data, ".tflite", "tflite", result.details, result.notes,
                    {"io_map": result.io_map, "static_batch": result.details["static_batch"]},
                    result.details["converter"])

    def _variant_key(self, spec: CandidateSpec, target: Target) -> str:
        """Candidates with the same key share one artifact (torchscript int8 depends on the CPU)."""
        if spec.format == "torchscript" and spec.precision == "int8":
            from .convert.torch_to_torchscript import quantized_engine_for
            return f"{spec.variant}-{quantized_engine_for(target.arch)}"
        return spec.variant

    def artifact(self, spec: CandidateSpec, target: Target) -> Artifact:
        """The artifact for a candidate, made once per variant; a failure is remembered too."""
        key = self._variant_key(spec, target)
        if key not in self._artifacts:
            self._made_count += 1
            try:
                with self.progress.step(f"make {key} + parity ({self._made_count}/{self._variant_total})"):
                    self._artifacts[key] = self._make_variant(spec, target)
            except StaleInputsError:
                raise
            except EdgepackError as exc:
                self._artifacts[key] = exc
        found = self._artifacts[key]
        if isinstance(found, EdgepackError):
            raise found
        return found

    # -- per target ----------------------------------------------------------------------------
    def _build_target(self, target: Target) -> TargetResult:
        result = TargetResult(target=target.name, status="ok")
        chosen: list[tuple[CandidateSpec, Artifact, CandidateResult]] = []
        for i, spec in enumerate(target.candidates):
            cr = CandidateResult(id=spec.id, format=spec.format, precision=spec.precision, status="ok")
            result.candidates.append(cr)
            try:
                art = self.artifact(spec, target)
            except UnsupportedError as exc:
                cr.status, cr.message = "unsupported", exc.message + (f"; {exc.hint}" if exc.hint else "")
                continue
            except StaleInputsError:
                raise
            except EdgepackError as exc:
                cr.status = "failed"
                cr.message = (exc.message + (f" ({exc.where})" if exc.where else "")
                              + (f"; {exc.hint}" if exc.hint else ""))
                continue
            cr.file = f"models/{self.manifest.name}.{art.filename}"
            cr.size, cr.parity, cr.accuracy = len(art.data), art.parity, art.accuracy
            cr.host_latency_ms, cr.notes, cr.cached = art.host_latency_ms, list(art.notes), art.cached
            if not art.parity.passed:
                reasons = "; ".join(f"{o.name}: {', '.join(o.failures)}" for o in art.parity.outputs if not o.passed)
                nxt = next((c.id for c in target.candidates[i + 1:]), None)
                if self.allow_parity_failure:
                    cr.status = "parity-failed-allowed"
                    cr.message = f"parity failed ({reasons}); kept because --allow-parity-failure"
                elif target.precision_fallback and nxt:
                    cr.status, cr.message = "dropped", f"parity failed ({reasons}); fell back to {nxt}"
                    result.fallbacks.append({"candidate": spec.id, "reason": f"parity failed: {reasons}", "next": nxt})
                    continue
                else:
                    cr.status, cr.message = "parity-failed", f"parity failed ({reasons})"
                    continue
            chosen.append((spec, art, cr))

        chosen = self._speed_guard(target, chosen, result)
        hard = [c for c in result.candidates if c.status == "parity-failed"]
        # "unsupported" is a route this source cannot take (a torch model has no TFLite route without
        # litert-torch, say): shown and recorded, but not a failure; "failed" is a real error
        broken = [c for c in result.candidates if c.status == "failed"]
        if hard or not chosen:
            result.status = "failed"
            result.message = ("parity failed for " + ", ".join(c.id for c in hard) +
                              " (set precision_fallback: true in the target, or pass --allow-parity-failure)"
                              if hard else "no candidate could be built")
            result.message += self._remove_stale(f"{self.manifest.name}-{target.name}")
            return result
        # candidates kept despite failing parity go after every candidate that passed
        chosen.sort(key=lambda item: item[2].status == "parity-failed-allowed")
        for _, _, cr in chosen:
            if cr.status == "parity-failed-allowed":
                self.warnings.append(f"{target.name}: {cr.id} FAILED parity and is in the bundle only "
                                     "because of --allow-parity-failure")
        if broken:
            result.status = "partial"
            result.message = "built without " + ", ".join(f"{c.id} ({c.status})" for c in broken)
        skipped = [c.id for c in result.candidates if c.status == "unsupported"]
        if skipped and not broken:
            result.message = "skipped (route not supported for this source): " + ", ".join(skipped)
        with self.progress.step(f"write bundle {self.manifest.name}-{target.name}"):
            bundle_dir, archive = self._write(target, chosen, result)
        result.bundle_dir, result.archive = str(bundle_dir), str(archive)
        return result

    def _speed_guard(self, target: Target, chosen: list[tuple[CandidateSpec, Artifact, CandidateResult]],
                     result: TargetResult) -> list[tuple[CandidateSpec, Artifact, CandidateResult]]:
        """Show each quantized candidate's host speed against fp32 of its format; with the target's
        drop_slower_quantized, drop one that is not faster ("quantized but slower").

        Host latency only hints at the device's; ``python -m runtime tune`` decides there."""
        fp32 = {spec.format: art.host_latency_ms for spec, art, _ in chosen if spec.precision == "fp32"}
        kept = []
        for spec, art, cr in chosen:
            base = fp32.get(spec.format)
            if spec.precision != "fp32" and base and art.host_latency_ms:
                cr.speedup = base / art.host_latency_ms
                if target.drop_slower_quantized and cr.speedup <= 1.0 and len(chosen) > 1:
                    cr.status = "dropped"
                    cr.message = (f"{spec.precision} is not faster than fp32 on the build host "
                                  f"({art.host_latency_ms:.3f} ms vs {base:.3f} ms); drop_slower_quantized")
                    result.fallbacks.append({"candidate": spec.id, "reason": cr.message, "next": "-"})
                    continue
            kept.append((spec, art, cr))
        return kept

    def _remove_stale(self, bundle_name: str) -> str:
        """A failed target must not leave an older bundle at its path that still verifies."""
        removed = []
        for path in (self.out_dir / bundle_name, self.out_dir / f"{bundle_name}.tar.gz"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                removed.append(path.name)
            elif path.exists():
                path.unlink()
                removed.append(path.name)
        return f"; removed the previous bundle ({', '.join(removed)}) built from other inputs" if removed else ""

    def _write(self, target: Target, chosen: list[tuple[CandidateSpec, Artifact, CandidateResult]],
               result: TargetResult) -> tuple[Path, Path]:
        m = self.manifest
        bundle_name = f"{m.name}-{target.name}"
        payload = sum({cr.file: len(art.data) for _, art, cr in chosen if cr.file}.values())
        writer = BundleWriter(self.out_dir, bundle_name, expected_bytes=payload)
        try:
            written: set[str] = set()
            for _spec, art, cr in chosen:
                if cr.file and cr.file not in written:
                    writer.write_bytes(cr.file, art.data)
                    written.add(cr.file)
            writer.write_npz("golden/inputs.npz", self.golden.arrays)
            writer.write_npz("golden/outputs.npz", self.reference)
            extra = [cryptography_pin()] if self.sign_key is not None else []
            writer.write_text("requirements.txt",
                              requirements_txt(target, {spec.backend for spec, _, _ in chosen}, extra))
            writer.write_text("README.md", bundle_readme(m, target, bundle_name, [c.id for _, _, c in chosen]))
            document = self._document(target, chosen, result)
            return writer.finish(document, sign_key=self.sign_key)
        except BaseException:
            writer.discard()
            raise

    def _document(self, target: Target, chosen: list[tuple[CandidateSpec, Artifact, CandidateResult]],
                  result: TargetResult) -> dict[str, Any]:
        m = self.manifest
        signature = self.signature
        candidates = []
        for spec, art, cr in chosen:
            tolerances: dict[str, Tolerance] = {o: m.tolerance_for(spec.precision, o) for o in self.output_names}
            candidates.append({
                "id": spec.id, "file": cr.file, "format": spec.format, "precision": spec.precision,
                "quantization": dict(spec.quantization.to_dict(), **{
                    k: v for k, v in art.passes[0]["details"].items() if k == "calibration_samples"})
                if spec.quantization else None,
                "backend": spec.backend, "providers": list(spec.providers),
                "provider_options": [dict(o) for o in spec.provider_options] or [{} for _ in spec.providers],
                "threads": target.threads,
                "tolerance": {o: t.to_dict() for o, t in tolerances.items()},
                "parity": dict(art.parity.to_dict(), checked_on="host CPUExecutionProvider"),
                "accuracy": art.accuracy,
                "size": len(art.data),
                "status": cr.status,
                "notes": cr.notes,
                "converter": art.converter,
                "conversion": art.passes[0]["details"],
                **({"io": "int8" if str(art.passes[0]["details"].get("io", "")).startswith("int8") else "float"}
                   if spec.format == "tflite" else {}),
                **art.extras,
            })
        skipped = [{"candidate": c.id, "status": c.status, "reason": c.message or ""}
                   for c in result.candidates if c.status in ("failed", "unsupported")]
        warnings = list(self.warnings) + [f"candidate {s['candidate']} not built: {s['reason']}" for s in skipped]
        return {
            "schema_version": SCHEMA_VERSION,
            "name": m.name,
            "description": m.description,
            "target": target.to_dict(),
            "signature": signature,
            "candidates": candidates,
            "golden": {"inputs": "golden/inputs.npz", "outputs": "golden/outputs.npz",
                       "samples": len(self.golden), "batched": self.golden.batched,
                       "source": self.golden.source},
            "fallbacks": result.fallbacks,
            "skipped": skipped,
            "warnings": warnings,
            "evaluation": {"reference_accuracy": self.reference_accuracy,
                           "samples": self.evaluation_samples}
            if self.evaluation_samples else None,
            "provenance": {
                "edgepack": __version__,
                "tools": tool_versions(m.source.framework, {spec.format for spec, _, _ in chosen}),
                "source": {"framework": m.source.framework, "sha256": self.source_info["sha256"],
                           "description": self.source_info["description"]},
                "exporter": self.exporter,
                "steps": self.steps,
                "host": {"platform": platform.platform(), "machine": platform.machine()},
            },
        }

    def run(self) -> BuildResult:
        self._made_count = 0
        self._variant_total = len({self._variant_key(s, t) for t in self.targets for s in t.candidates})
        self._prepare_shared()
        self._prebuild()
        results = []
        for target in self.targets:
            self.progress.note(f"target {target.name}")
            results.append(self._build_target(target))
        return BuildResult(name=self.manifest.name, manifest=self.manifest.file, targets=results,
                           # a cache write failure is this host's matter, not the bundles'
                           steps=self.steps, warnings=self.warnings + ([self.cache.write_error]
                                                                       if self.cache.write_error else []),
                           reference_accuracy=self.reference_accuracy,
                           golden={"samples": len(self.golden), "source": self.golden.source},
                           cache=self.cache.summary(), parallel=self.parallel,
                           tools=tool_versions(self.manifest.source.framework,
                                               {c.format for t in self.targets for c in t.candidates}))


def first_feed_batch(samples: SampleSet) -> dict[str, np.ndarray]:
    """Example inputs for export: up to 2 samples, so a symbolic batch dim is not specialised."""
    return next(samples.batches(2))


def _output_shape(declared: Any, ref: np.ndarray, batched: bool, batch: str | None) -> list[Any]:
    """An output's shape for the signature: declared, else observed with the batch dim symbolic."""
    if declared is not None:
        return list(declared)
    shape: list[Any] = list(ref.shape[1:]) if not batched else list(ref.shape)
    if batched and batch and shape:
        shape[0] = batch
    return shape


def check_out_dir(out_dir: Path) -> None:
    """Fail before the slow work when the output folder cannot be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(f"output path {out_dir} exists and is not a folder", where="--out",
                         hint="pass a folder (it is created if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as exc:
        raise disk_error(exc, "writing", out_dir, cls=OutputError, where="--out",
                         option="--out") from None


def build(manifest_path: str | Path, out_dir: str | Path, *, targets: list[str] | None = None,
          allow_parity_failure: bool = False, progress: Progress | None = None,
          sign: str | Path | None = None, cache: BuildCache | None = None, jobs: int | None = 1,
          on_loaded: Callable[[Manifest, list[Target]], None] | None = None,
          reload_inputs: bool = False) -> BuildResult:
    """Build every target of a manifest (or only ``targets``) into ``out_dir``; with ``sign`` (an
    ed25519 private key PEM) every bundle.json is signed. ``reload_inputs``: call the model and
    data entry points even when nothing they read has changed (see ``input_trace``)."""
    sign_key = load_private_key(Path(sign)) if sign is not None else None  # fail before the slow work
    manifest = load_manifest(manifest_path)
    from .init import check_placeholders
    check_placeholders(manifest)  # a fresh `edgepack init` manifest: say what to fill in, first
    names = targets or list(manifest.targets)
    loaded = []
    for i, name in enumerate(names):
        try:
            loaded.append(load_target(name, manifest.base_dir))
        except TargetError as exc:
            if targets is None and exc.where == name:  # name the manifest field, not just the name
                exc.where = f"{manifest.file}: targets[{i}]"
            raise
    check_out_dir(Path(out_dir))
    stale = remove_stale_temps(Path(out_dir))
    if on_loaded:
        on_loaded(manifest, loaded)
    result = Builder(manifest, loaded, Path(out_dir), allow_parity_failure=allow_parity_failure,
                     progress=progress, sign_key=sign_key, cache=cache, jobs=jobs,
                     reload_inputs=reload_inputs).run()
    if stale:
        result.warnings.append(f"removed temp folders of interrupted builds: {', '.join(stale)}")
    write_reports(result, Path(out_dir))
    return result


def write_reports(result: BuildResult, out_dir: Path) -> None:
    """``<name>.build.json`` and the self-contained ``<name>.report.html`` beside the bundles
    (each written whole, then renamed into place)."""
    from runtime.report_html import render_build_report
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"{result.name}.report.html"
    result.report = str(html)
    doc = result.to_dict()
    for path, text in ((out_dir / f"{result.name}.build.json", json.dumps(doc, indent=2, sort_keys=True) + "\n"),
                       (html, render_build_report(doc))):
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:  # a full or failing disk: the bundles are in place, say so
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise disk_error(exc, f"writing the build report {path.name} (the bundles were written)",
                             out_dir, needed=len(text.encode()), cls=OutputError, where="--out",
                             option="--out") from exc
