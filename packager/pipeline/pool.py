"""Steps that different targets need, run side by side in worker processes.

A worker runs one route's artifact step (the same ``run`` the main process would) on what the
parent sends: the base ONNX model's bytes for a precision pass, or, for a TFLite/TorchScript
conversion, nothing but the manifest (it loads the source model itself, which pays only for big
models). ONNX passes need onnx/onnxruntime and never torch or TensorFlow (forking a process that
has them loaded is not safe, hence ``spawn``). Workers are bounded by cores and by memory; host
checks and timings stay in the main process, one at a time, so latencies are not measured under
contention.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..config.manifest import Manifest
from ..config.targets import CandidateSpec, Target
from ..errors import ConversionError, EdgepackError
from ..inputs.data import EvaluationSet, SampleSet
from ..progress import Progress
from ..results import Made
from ..sources import Source, load_source
from ..steps import ROUTES, ModelStep, RouteKey

# A framework conversion goes to a worker process only when -j asks for workers explicitly, or
# for a model at least this big on a host with at least this many cores: the worker must import
# torch/TensorFlow and load the model again (6 s for Keras MobileNetV2 here), and on a 2-core host
# `-j 2` made a MobileNetV2 rpi4 build slower (21.6 s against 17.8 s serial).
PARALLEL_CONVERT_MIN_BYTES = 32 * 1024**2
PARALLEL_CONVERT_MIN_CORES = 4


@dataclass(frozen=True)
class StepJob:
    """One artifact step for a worker: its route, candidate, input and data. The data comes from
    the parent (its arrays pickle cheaply; calling the data entry points again would not)."""

    route: RouteKey
    manifest: Manifest
    spec: CandidateSpec
    target: Target
    golden: SampleSet
    calibration: SampleSet | None
    source_key: str
    base: bytes | None = None  # the route's ONNX base model, when its step starts from one
    evaluation: EvaluationSet | None = None  # for a mixed search with an accuracy budget
    reference_metric: float | None = None


class WorkerContext:
    """A worker's ``StepContext``: the parent's data, and the source loaded only if a step needs it."""

    def __init__(self, job: StepJob) -> None:
        self.manifest = job.manifest
        self.progress = Progress(quiet=True)
        self._job = job
        self._source: Source | None = None

    def source(self) -> Source:
        if self._source is None:
            source = load_source(self.manifest)
            if source.cache_key != self._job.source_key:
                raise ConversionError("the model loaded in the worker process differs from the build's "
                                      "(its entry point is not deterministic)", where=f"candidate {self._job.spec.id}",
                                      hint="make the model entry point return the same weights every call "
                                           "(seed it), or build with -j 1")
            self._source = source
        return self._source

    def golden(self) -> SampleSet:
        return self._job.golden

    def calibration(self) -> SampleSet | None:
        return self._job.calibration

    def evaluation(self) -> EvaluationSet | None:
        return self._job.evaluation

    def reference_metric(self) -> float | None:
        return self._job.reference_metric


def run_step(job: StepJob) -> Made:
    """The worker's function: the route's artifact step, as a serial build runs it."""
    from ..quiet import quiet
    route = ROUTES[job.route]
    ctx = WorkerContext(job)
    with quiet():
        if job.base is not None:
            import onnx
            return route.make.run(onnx.load_from_string(job.base), ctx, job.spec, job.target)
        return route.make.run(ctx.source(), ctx, job.spec, job.target)


@dataclass
class Pending:
    """An artifact the cache does not have: made in a worker when it is worth one."""

    variant: str
    route: RouteKey
    spec: CandidateSpec
    target: Target

    @property
    def needs_base(self) -> bool:
        return bool(ROUTES[self.route].model_steps)


@dataclass
class Prebuilt:
    """What the workers made (or the error they raised), by variant, and the report's summary."""

    made: dict[str, Made | EdgepackError] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # in the build report, not the bundles

    def take(self, variant: str) -> Made | None:
        found = self.made.pop(variant, None)
        if isinstance(found, EdgepackError):
            raise found
        return found


def prebuild(pending: list[Pending], jobs: int | None, *, job_for: Callable[[Pending, bytes | None], StepJob],
             base_bytes: Callable[[tuple[ModelStep, ...]], bytes | None], weight_bytes: Callable[[], int],
             progress: Progress,
             warnings: list[str]) -> Prebuilt:
    """Run the pending steps side by side: every precision pass on the base model, and, with an
    explicit ``-j N`` or for a big model on a many-core host, the conversions (see
    PARALLEL_CONVERT_MIN_BYTES). A conversion is submitted first so it runs while this process
    makes the base model."""
    out = Prebuilt()
    if jobs is not None and jobs <= 1:
        return out
    passes = {p.variant: p for p in pending if p.needs_base and ROUTES[p.route].make.parallel}
    converts = {p.variant: p for p in pending if not p.needs_base}
    weights = weight_bytes() if converts else 0
    if jobs is None and (weights < PARALLEL_CONVERT_MIN_BYTES or (os.cpu_count() or 1) < PARALLEL_CONVERT_MIN_CORES):
        converts = {}
    if len(passes) + len(converts) < 2:
        return out
    workers = worker_count(len(passes) + len(converts), jobs, max(weights, 1),
                           per_worker=(900 if converts else 400) * 1024**2)
    if workers <= 1:
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    futures: dict[str, Future[Made]] = {}
    label = " + ".join(x for x in (f"{len(passes)} onnx precision passes" if passes else "",
                                   f"{len(converts)} conversions" if converts else "") if x)
    with progress.step(f"{label} on {workers} worker processes"), \
            ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for variant, p in converts.items():
            futures[variant] = pool.submit(run_step, job_for(p, None))
        bases: dict[tuple[ModelStep, ...], bytes | None] = {}
        for variant, p in passes.items():
            steps = ROUTES[p.route].model_steps
            if steps not in bases:
                bases[steps] = base_bytes(steps)  # made here meanwhile, once per chain of model steps
            base = bases[steps]
            if base is not None:  # else each candidate reports the base model's error itself
                futures[variant] = pool.submit(run_step, job_for(p, base))
        for variant, future in futures.items():
            try:
                out.made[variant] = future.result()
            except EdgepackError as exc:
                out.made[variant] = exc
            except Exception as exc:  # a crashed worker (killed, out of memory): redo it here
                warnings.append(f"worker process for {variant} failed ({type(exc).__name__}: {exc}); "
                                "made in the main process instead")
    out.summary = {"passes": sorted(k for k in futures if k in passes),
                   "conversions": sorted(k for k in futures if k in converts), "workers": workers}
    return out


def weight_bytes(source: Source) -> int:
    """The source model's weights in bytes (0 when unknown): decides whether a conversion
    is worth a worker process."""
    import numpy as np
    module = getattr(source, "module", None)
    if module is not None and hasattr(module, "parameters"):
        return int(sum(p.numel() * p.element_size() for p in module.parameters()))
    model = getattr(source, "model", None)
    weights = getattr(model, "weights", None) or getattr(model, "variables", None) or []
    try:
        return int(sum(int(np.prod(w.shape)) * w.dtype.size for w in weights))
    except Exception:
        return 0


def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo), or None when unknown."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def worker_count(jobs: int, requested: int | None, model_bytes: int, *,
                 per_worker: int = 400 * 1024**2) -> int:
    """How many workers: the request (or the cores), never more than the jobs, and only as many
    as fit in memory (a worker holds a few copies of the model plus its libraries: onnxruntime
    ~400 MB, torch or TensorFlow ~900 MB, + 6x the model)."""
    want = requested if requested and requested > 0 else (os.cpu_count() or 1)
    n = min(want, jobs)
    free = available_memory()
    if free is not None:
        n = min(n, max(1, int(free // (per_worker + 6 * model_bytes))))
    return max(1, n)
