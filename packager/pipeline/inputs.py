"""The build's inputs: the user's model and data, loaded (traced) or restored from their record.

Calling the model and data entry points is the slow part of a rebuild, so it happens only when a
step the cache does not have needs them. ``Inputs`` is what steps read (it is a
``StepContext``); the derived, cacheable part is its ``record``, a typed object.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..cache import BuildCache
from ..config.manifest import Manifest
from ..errors import BuildError, EdgepackError
from ..inputs.data import (
    EvaluationSet,
    SampleSet,
    calibration_without_golden,
    golden_samples,
    load_evaluation,
    load_samples,
)
from ..inputs.trace import Fingerprint, tracing
from ..progress import Progress
from ..sources import Source, load_source
from .record import LABEL, InputsRecord, data_key, declared_inputs, derive_record, inputs_key

T = TypeVar("T")


class StaleInputsError(BuildError):
    """The entry points gave other results than the inputs record said, although nothing they
    were seen reading changed: the whole build stops (steps already taken from the cache may
    be stale), never a mixed bundle."""


class Inputs:
    """The model and data of one build, with the record derived from them."""

    def __init__(self, manifest: Manifest, needs_calibration: bool, cache: BuildCache, progress: Progress,
                 *, reload: bool = False) -> None:
        self.manifest = manifest
        self.progress = progress
        self.needs_calibration = needs_calibration
        self._cache = cache
        self._reload = reload
        self._loaded = False
        self._source: Source | None = None
        self._golden: SampleSet | None = None
        self._calibration: SampleSet | None = None
        self._evaluation: EvaluationSet | None = None
        self._overlap: str | None = None  # why golden and int8 calibration share samples, if they do
        self.record = self._prepare()

    def _prepare(self) -> InputsRecord:
        key = inputs_key(self.manifest, self.needs_calibration)
        restored = None if self._reload else self._restore(key)
        if restored is not None:
            return restored
        with tracing() as trace:
            self._load()
        assert self._source is not None and self._golden is not None
        record = derive_record(self.manifest, self._source, self._golden, self._calibration, self._evaluation,
                               self.progress, warnings=[self._overlap] if self._overlap else [])
        self._store(key, record, Fingerprint.of(trace, declared_inputs(self.manifest)))
        return record

    def _load(self) -> None:
        """Call the user's entry points / read the files: the model, calibration, golden and
        evaluation data."""
        m = self.manifest
        with self.progress.step(f"load {m.source.framework} source"):
            self._source = load_source(m)
        self._calibration = None
        if self.needs_calibration:
            with self.progress.step("load calibration data"):
                self._calibration = load_samples(m.calibration, m, "calibration")
        with self.progress.step("load golden data"):
            self._golden = golden_samples(m, self._calibration)
        self._calibration, self._overlap = calibration_without_golden(m, self._calibration)
        for note in dict.fromkeys((*(self._calibration.notes if self._calibration else ()), *self._golden.notes)):
            self.progress.note(f"  {note}")
        self._evaluation = load_evaluation(m)
        self._loaded = True

    def _restore(self, key: str) -> InputsRecord | None:
        hit = self._cache.peek(key)
        if hit is None:
            return None
        fingerprint = hit.meta["fingerprint"]
        why = Fingerprint.from_dict(fingerprint).changed()
        if why is not None:
            self.progress.note(f"  inputs changed ({why}): calling the entry points")
            return None
        self._cache.hits.append(LABEL)
        record = InputsRecord.from_entry(hit, [o.name for o in self.manifest.outputs])
        self.progress.note(f"  inputs unchanged ({len(fingerprint['files'])} files traced): "
                           "model and data entry points not called")
        for path in fingerprint["files"]:
            self.progress.detail(f"unchanged: {path}")
        return record

    def _store(self, key: str, record: InputsRecord, fingerprint: Fingerprint) -> None:
        if not self._cache.enabled:
            return
        if not self._reload:
            self._cache.misses.append(LABEL)
        for path in [*fingerprint.files, *fingerprint.dirs]:
            self.progress.detail(f"input recorded for the next build: {path}")
        self._cache.put(key, record.entry(fingerprint), replace=True)

    def ensure_loaded(self) -> None:
        """A step the cache did not have needs the real model or data: load them now, and make
        sure they are what the record said (else the trace missed a change)."""
        if self._loaded:
            return
        self.progress.note("  a step is not cached: calling the model and data entry points")
        self._load()
        assert self._source is not None and self._golden is not None
        now = (data_key(self.manifest, self._calibration, self._golden, self._evaluation), self._source.cache_key)
        if now != (self.record.data_key, self.record.source_key):
            self._cache.drop(inputs_key(self.manifest, self.needs_calibration))
            raise StaleInputsError("the model or data changed although no file their entry points read did "
                                   "(they depend on something edgepack cannot trace: an environment variable, "
                                   "the clock, a native reader)", where=f"{self.manifest.file}",
                                   hint="run the build again (the stale record is removed), and use "
                                        "--reload-inputs whenever such an input changes")

    # -- what steps read (StepContext) -----------------------------------------------------------
    def source(self) -> Source:
        self.ensure_loaded()
        assert self._source is not None
        return self._source

    def golden(self) -> SampleSet:
        return self.record.golden  # restored with the record: no entry point is called for it

    def calibration(self) -> SampleSet | None:
        self.ensure_loaded()
        return self._calibration

    def evaluation(self) -> EvaluationSet | None:
        self.ensure_loaded()
        return self._evaluation

    def reference_metric(self) -> float | None:
        return self.record.reference_accuracy


def outcome(make: Callable[[], T]) -> T | EdgepackError:
    """``make()``'s result, or the EdgepackError it raised (remembered by the caller and shown for
    each candidate that needed it). A StaleInputsError is the exception: it stops the whole build,
    and this is the one place that says so."""
    try:
        return make()
    except StaleInputsError:
        raise
    except EdgepackError as exc:
        return exc
