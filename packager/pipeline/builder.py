"""The build's scheduler: one manifest -> one verified bundle per target.

It looks each candidate's route up, runs the route's steps once per key (every ONNX precision
starts from one base model; a variant shared by several targets is made and checked once), takes
what the cache or the worker processes already made, and hands each target's artifacts to the
policy and the bundle writer. What a step does lives in ``packager.steps``, running a chain of them in
``chain`` and choosing a route (and its fallback) in ``routing``; loading the inputs,
host checks, the candidate policy and bundle.json assembly live beside this module.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.compare import compare

from ..bundle.signing import SigningKeys
from ..cache import BuildCache, Entry
from ..config.manifest import Manifest
from ..config.targets import CandidateSpec, Target
from ..errors import ConversionError, EdgepackError, UnsupportedError
from ..metrics import budget_miss
from ..progress import Progress
from ..results import Artifact, BuildResult, Made, TargetResult
from ..steps import ROUTES, ArtifactStep, ModelStep, Route, step_key, variant_of
from .chain import Chain, run_steps
from .checks import check
from .document import bundled_processing, document, tool_versions
from .explain import debug_table, float_twin, probes, refuse_unexplainable, table_for
from .inputs import Inputs, outcome
from .output import remove_stale, write_bundle
from .policy import choose
from .pool import Pending, Prebuilt, StepJob, prebuild, weight_bytes
from .routing import made_by_fallback, mixed_retry, refused, route_of, variant

if TYPE_CHECKING:
    import onnx

BASE_LABEL = "onnx base model"  # the model steps' result in the cache summary


class Builder:
    """Runs one manifest's build; shared work is memoised across targets."""

    def __init__(self, manifest: Manifest, targets: list[Target], out_dir: Path, *,
                 allow_parity_failure: bool = False, progress: Progress | None = None,
                 keys: SigningKeys | None = None, cache: BuildCache | None = None, jobs: int | None = 1,
                 reload_inputs: bool = False) -> None:
        self.manifest = manifest
        self.targets = targets
        self.out_dir = out_dir
        self.allow_parity_failure = allow_parity_failure
        self.progress = progress or Progress(quiet=True)
        self.keys = keys or SigningKeys()
        self.cache = cache or BuildCache(enabled=False)
        self.jobs = jobs  # worker processes for independent steps: None = as many as cores allow
        self.reload_inputs = reload_inputs
        self.steps: list[dict[str, Any]] = []  # the model steps' records (provenance)
        self.warnings: list[str] = []
        self.exporter = "none"
        self._models: dict[str, Chain | EdgepackError] = {}
        self._artifacts: dict[str, Artifact | EdgepackError] = {}
        self._prebuilt = Prebuilt()
        self._made = 0

    # -- keys: every one from steps.keys.step_key --------------------------------------------------
    def _key(self, step: ModelStep | ArtifactStep, input_key: str, config: dict[str, Any]) -> str:
        data = {"data": self.inputs.record.data_key} if step.reads else {}
        return step_key(step.name, input_key, {**config, **data}, step.tools)

    def _chain_key(self, steps: tuple[ModelStep, ...]) -> str:
        key = self._source_key
        for step in steps:
            key = self._key(step, key, step.config(self.manifest))
        return key

    def _artifact_key(self, route: Route, spec: CandidateSpec, target: Target) -> str:
        config = route.make.config(self.manifest, spec, target)
        if route.fallback is not None:  # what a failure of the first step would make instead
            config = dict(config, fallback=route.fallback.make.config(self.manifest, spec, target))
        return self._key(route.make, self._chain_key(route.model_steps), config)

    # -- model steps: source -> ONNX model, once per chain key --------------------------------------
    def _model(self, steps: tuple[ModelStep, ...]) -> onnx.ModelProto:
        """The model steps' output, made once (or its error, once); its records join the provenance."""
        key = self._chain_key(steps)
        if key not in self._models:
            self._models[key] = outcome(lambda: self._cached_model(steps, key))
            made = self._models[key]
            if isinstance(made, Chain):
                self._record(made)
        found = self._models[key]
        if isinstance(found, EdgepackError):
            raise found
        import onnx
        assert isinstance(found.model, onnx.ModelProto)
        return found.model

    def _record(self, chain: Chain) -> None:
        """A chain's records into the build's, each once (chains that share steps share records)."""
        if chain.exporter != "none":
            self.exporter = chain.exporter
        seen = {json.dumps(r, sort_keys=True, default=str) for r in self.steps}
        self.steps.extend(r for r in chain.steps if json.dumps(r, sort_keys=True, default=str) not in seen)
        self.warnings.extend(w for w in dict.fromkeys(chain.warnings) if w not in self.warnings)

    def _prefix(self, steps: tuple[ModelStep, ...]) -> int:
        """How many of ``steps`` form the longest other route's chain they start with (0: none), so
        a route that adds a step (an opset upgrade) starts from the shared model, made once."""
        chains = {r.model_steps for r in ROUTES.values()}
        return max((n for n in range(1, len(steps)) if steps[:n] in chains), default=0)

    def _cached_model(self, steps: tuple[ModelStep, ...], key: str) -> Chain:
        """From the cache, or made and stored (the steps' records travel with it)."""
        import onnx

        from ..onnx_utils import serialize
        start = self._prefix(steps)
        label = " + ".join([BASE_LABEL, *map(str, steps[start:])]) if start else BASE_LABEL
        hit = self.cache.get(key, label)
        if hit is not None:
            self.progress.note(f"  {label} ... cached")
            return Chain(onnx.load_from_string(hit.blobs["model.onnx"]), hit.meta["steps"], hit.meta["warnings"],
                         hit.meta["exporter"])
        if start:
            self._model(steps[:start])
            base = self._models[self._chain_key(steps[:start])]
            assert isinstance(base, Chain)
            chain = base.copy()
        else:
            chain = Chain(self.inputs.source(), [], [], "none")
        chain = run_steps(chain, steps[start:], self.inputs, self.progress)
        assert isinstance(chain.model, onnx.ModelProto)
        self.cache.put(key, Entry({"exporter": chain.exporter, "steps": chain.steps, "warnings": chain.warnings},
                                  {"model.onnx": serialize(chain.model)}))
        return chain

    # -- artifacts: one per variant, checked on this host ---------------------------------------------
    def artifact(self, spec: CandidateSpec, target: Target) -> Artifact | EdgepackError:
        """The artifact for a candidate, made once per variant; a failure is remembered too."""
        name = variant(self.manifest, spec, target)
        if name not in self._artifacts:
            self._made += 1
            label = f"make {name} + parity ({self._made}/{self._variant_total})"

            def make() -> Artifact:
                with self.progress.step(label):
                    return self._make(spec, target, name)
            self._artifacts[name] = outcome(make)
        return self._artifacts[name]

    def _make(self, spec: CandidateSpec, target: Target, variant: str) -> Artifact:
        route = route_of(self.manifest, spec)  # an unsupported route is not a cache miss
        key = self._artifact_key(route, spec, target)
        hit = self.cache.get(key, f"artifact {variant}")
        if hit is not None:
            self.progress.detail(f"{variant}: taken from the cache ({key[:12]})")
            made = Made(hit.blobs["artifact"], **hit.meta)
            if route.model_steps:
                self._model(route.model_steps)  # its record (exporter, steps) belongs in the provenance
        else:
            try:
                made = self._prebuilt.take(variant) or route.make.run(
                    self._model(route.model_steps) if route.model_steps else self.inputs.source(), self.inputs, spec,
                    target)
            except (ConversionError, UnsupportedError) as exc:
                if (fallback := route.fallback) is None:
                    raise
                made = made_by_fallback(fallback, lambda: self._model(fallback.model_steps), self.inputs, spec,
                                        target, exc, self.warnings)
        outputs, acc, latency = check(spec, made, self.inputs, self.cache)
        record = self.inputs.record
        tolerances = {o.name: self.manifest.tolerance_for(spec.precision, o.name) for o in self.manifest.outputs}
        parity = compare(record.reference, outputs, tolerances, scores=record.scores)
        if hit is None and (retry := mixed_retry(route, spec, made, parity)) is not None:
            made = made_by_fallback(retry[0], lambda: self._model(retry[0].model_steps), self.inputs, spec, target,
                                    retry[1], self.warnings)
            outputs, acc, latency = check(spec, made, self.inputs, self.cache)
            parity = compare(record.reference, outputs, tolerances, scores=record.scores)
        if hit is None:  # what the candidate ended with (a repaired artifact is not made twice)
            self.cache.put(key, Entry({"suffix": made.suffix, "step": made.step, "details": made.details,
                                       "notes": made.notes, "extras": made.extras, "converter": made.converter},
                                      {"artifact": made.data}))
        explained = None if parity.passed else table_for(  # with the failure
            spec, made.data, made.details, made.extras, lambda: self._float_model(spec),
            partial(float_twin, self.artifact, spec, target), self.inputs)
        return Artifact(variant=variant, precision=spec.precision, data=made.data,
                        passes=[{"step": made.step, "details": made.details}], notes=made.notes,
                        parity=parity, accuracy=acc, host_latency_ms=latency, suffix=made.suffix,
                        extras=made.extras, converter=made.converter or f"{self.exporter} + {made.step}",
                        cached=hit is not None, explained=explained)

    # -- worker processes ----------------------------------------------------------------------------
    def _pending(self) -> list[Pending]:
        """Artifacts the cache does not have, one per variant (a route that does not exist is skipped)."""
        pending: dict[str, Pending] = {}
        for target in self.targets:
            for spec in target.candidates:
                route_key = (self.manifest.source.framework, spec.format, variant_of(spec))
                route = ROUTES.get(route_key)
                if route is None or route.make.variant(spec, target) in pending or refused(self.manifest, spec) or \
                        self.cache.has(self._artifact_key(route, spec, target)):
                    continue
                pending[route.make.variant(spec, target)] = Pending(route.make.variant(spec, target), route_key,
                                                                    spec, target)
        return list(pending.values())

    def _job(self, p: Pending, base: bytes | None) -> StepJob:
        return StepJob(p.route, self.manifest, p.spec, p.target, self.inputs.golden(), self.inputs.calibration(),
                       self.inputs.record.source_key, base, self.inputs.evaluation(), self.inputs.reference_metric())

    def _base_bytes(self, steps: tuple[ModelStep, ...]) -> bytes | None:
        from ..onnx_utils import serialize
        got = outcome(lambda: serialize(self._model(steps)))
        return None if isinstance(got, EdgepackError) else got  # each candidate reports the error itself

    # -- the build -------------------------------------------------------------------------------------
    def _build_target(self, target: Target) -> TargetResult:
        m = self.manifest
        result, chosen = choose(target, self.artifact, m.name, allow_parity_failure=self.allow_parity_failure,
                                warnings=self.warnings, budget=partial(budget_miss, m.evaluation,
                                                                       self.inputs.record.reference_accuracy))
        bundle_name = f"{m.name}-{target.name}"
        if result.status == "failed":
            result.message = (result.message or "") + remove_stale(self.out_dir, bundle_name)
            return result
        made = probes(target, chosen, self._float_model, lambda spec: float_twin(self.artifact, spec, target),
                      self.inputs, self.warnings)
        with self.progress.step(f"write bundle {bundle_name}"):
            doc = document(m, target, chosen, result, self.inputs.record, root=self.out_dir / bundle_name,
                           exporter=self.exporter, steps=self.steps, warnings=self.warnings,
                           explains={cid: p.record for cid, p in made.items()})
            bundle_dir, archive = write_bundle(self.out_dir, m, target, chosen, doc, self.inputs.record.golden,
                                               self.inputs.record.reference, self.keys, probes=made)
        result.bundle_dir, result.archive = str(bundle_dir), str(archive)
        return result

    def _float_model(self, spec: CandidateSpec) -> onnx.ModelProto | None:
        """The float ONNX model ``spec``'s artifact was made from (None for a route without one)."""
        route = route_of(self.manifest, spec)
        return self._model(route.model_steps) if route.model_steps else None

    def _start(self) -> None:
        """Load (or restore) the inputs and key the source: what every step starts from."""
        m = self.manifest
        self._variant_total = len({variant(m, s, t) for t in self.targets for s in t.candidates})
        needs_calibration = m.golden_from_calibration or any(
            c.quantization and c.quantization.mode == "static" for t in self.targets for c in t.candidates)
        self.inputs = Inputs(m, needs_calibration, self.cache, self.progress, reload=self.reload_inputs)
        bundled_processing(m, self.inputs.record.signature)  # a labels file that does not fit: fail before the work
        self.warnings.extend(self.inputs.record.warnings)
        self._source_key = step_key("source", self.inputs.record.source_key, {
            "framework": m.source.framework, "inputs": [s.to_dict() for s in m.inputs],
            "outputs": [o.name for o in m.outputs]}, ("edgepack",))

    def explain(self, spec: CandidateSpec, target: Target) -> tuple[Artifact, dict[str, Any]]:
        """One ONNX or TFLite int8 candidate, made (or taken from the cache) and checked, with its
        per-node table whether or not it passed (``edgepack debug``)."""
        refuse_unexplainable(spec, target)
        self._start()
        art = self.artifact(spec, target)
        if isinstance(art, EdgepackError):
            raise art
        return art, debug_table(spec, art, lambda: self._float_model(spec),
                                partial(float_twin, self.artifact, spec, target), self.inputs)

    def run(self) -> BuildResult:
        m = self.manifest
        self._start()
        record = self.inputs.record
        self._prebuilt = prebuild(self._pending(), self.jobs, job_for=self._job, base_bytes=self._base_bytes,
                                  weight_bytes=lambda: weight_bytes(self.inputs.source()), progress=self.progress,
                                  warnings=self.warnings)
        results = []
        for target in self.targets:
            self.progress.note(f"target {target.name}")
            results.append(self._build_target(target))
        return BuildResult(name=m.name, manifest=m.file, targets=results, steps=self.steps,
                           # a cache write failure is this host's matter, not the bundles'
                           warnings=self.warnings + ([self.cache.write_error] if self.cache.write_error else []),
                           reference_accuracy=record.reference_accuracy,
                           metric=m.evaluation.metric_name if m.evaluation else "accuracy",
                           golden={"samples": len(record.golden), "source": record.golden.source},
                           cache=self.cache.summary(), parallel=self._prebuilt.summary,
                           tools=tool_versions(m.source.framework, {c.format for t in self.targets
                                                                     for c in t.candidates}))
