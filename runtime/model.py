"""``load`` a bundle into a ``Model``: verified files, the candidate that works, checked feeds.

``load`` is the one place a ``Model`` is built (the CLI, ``tune`` and the packager's host check
all call it; ``candidate=`` opens exactly one candidate, without fallback or tuned choice), and
``Model.verify(golden)`` is the one golden-parity check.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import Backend
from .backends.base import copy_into
from .bundle import BUNDLE_FILE, Bundle, Candidate, open_bundle
from .errors import BackendError, BundleFormatError, FeedError, SignatureError
from .select import AVAILABLE, NOT_TRIED, Decision, no_candidate_error, order_candidates, try_candidate, walk
from .signature import FeedValidator, TensorSpec
from .signing import PublicKey, verify_signature

if TYPE_CHECKING:  # imported when load() runs: `import runtime` stays small
    from .compare import ParityReport
    from .golden import GoldenData
    from .tuning.tuned import TunedLookup


class Model:
    """A loaded bundle. ``run`` may be called from several threads at once."""

    def __init__(self, bundle: Bundle, backend: Backend, candidate: Candidate,
                 decisions: list[Decision], tuning: TunedLookup | None = None) -> None:
        self.bundle = bundle
        self._tuning = tuning
        self._backend: Backend | None = backend
        self._candidate = candidate
        self._decisions = decisions
        self._validate = FeedValidator(bundle.signature.inputs)
        self._raw_validate: FeedValidator | None = None
        self._output_names = tuple(s.name for s in bundle.signature.outputs)
        # Signature name -> artifact name; None when io_map renames nothing (the hot path).
        in_map = {s.name: candidate.artifact_input(s.name) for s in bundle.signature.inputs}
        self._in_map = in_map if any(k != v for k, v in in_map.items()) else None
        self._out_pairs = tuple((n, candidate.artifact_output(n)) for n in self._output_names)
        # dtypes the artifact's converter changed (int64 ids -> int32): converted, range-checked
        self._casts = candidate.io_casts(bundle.signature)
        # Axes the converter fixed (litert-torch compiles a symbolic sequence length as the example's)
        self._static_axes = tuple((name, int(axis), length) for name, axes in candidate.static_axes.items()
                                  for axis, length in axes.items())
        # An artifact compiled for a fixed batch (litert-torch's TFLite, say) runs in slices.
        static = candidate.raw.get("static_batch")
        self._static_batch = static if isinstance(static, int) and not isinstance(static, bool) \
            and static > 0 else None
        # The hot path: ``backend.ordered(names)`` gives a function returning the outputs as a
        # list in signature order, so run() builds one dict and nothing else (io_map renaming
        # done inside); a fixed-batch artifact takes it for its own batch.
        self._ordered: Any = None
        try:
            self._ordered = backend.ordered([art for _, art in self._out_pairs],
                                            {v: k for k, v in in_map.items()} if self._in_map else None)
        except KeyError:  # an output the backend lacks: the general path reports it
            self._ordered = None

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self.bundle.signature.inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self.bundle.signature.outputs)

    @property
    def candidate(self) -> dict[str, Any]:
        """The chosen candidate as written in bundle.json."""
        return dict(self._candidate.raw)

    @property
    def candidate_spec(self) -> Candidate:
        """The chosen candidate as a typed object (tolerances parsed)."""
        return self._candidate

    @property
    def providers(self) -> list[str]:
        """Providers the session actually runs on (may be fewer than asked unless strict)."""
        return self._backend.providers_in_use if self._backend is not None else []

    @property
    def backend_version(self) -> str | None:
        return self._backend.version if self._backend is not None else None

    @property
    def degraded(self) -> bool:
        return any(d.degraded for d in self._decisions if d.candidate == self._candidate.id)

    @property
    def decisions(self) -> list[Decision]:
        """The selection table's rows (``explain()`` gives them as dicts)."""
        return list(self._decisions)

    def explain(self) -> list[dict[str, Any]]:
        """The selection table: every candidate, its status and why (the selected row also says
        whether a tuned choice was used, in its reason or notes)."""
        return [d.to_dict() for d in self._decisions]

    @property
    def tuning(self) -> dict[str, Any]:
        """Whether the choice came from ``X.tuned.json`` beside the bundle, and why (not)."""
        if self._tuning is None:
            from .tuning.tuned import NOT_LOOKED_UP
            return NOT_LOOKED_UP.to_dict()
        return self._tuning.to_dict()

    def verify(self, golden: GoldenData) -> ParityReport:
        """Golden parity: run the golden inputs (``runtime.golden.load_golden(bundle)``) and
        compare with the golden outputs under this candidate's tolerances."""
        from .compare import compare
        from .golden import run_golden

        cand = self._candidate
        names = list(self._output_names)
        missing_ref = [n for n in names if n not in golden.outputs]
        if missing_ref:
            raise BundleFormatError(f"golden outputs lack {missing_ref}", where=str(self.bundle.root))
        missing_tol = [n for n in names if n not in cand.tolerance]
        if missing_tol:
            raise BundleFormatError(f"no tolerance for output(s) {missing_tol}",
                                    where=f"candidate {cand.id}",
                                    hint="rebuild the bundle; every output needs a tolerance")
        got = run_golden(self, golden.inputs, golden.batched)
        scores = {s.name: s.scores for s in self.bundle.signature.outputs if s.scores is not None}
        return compare({n: golden.outputs[n] for n in names}, got, cand.tolerance, scores=scores)

    def run(self, feeds: Mapping[str, np.ndarray], *, validate: bool = True,
            raw: bool = False, check_finite: bool = False) -> dict[str, np.ndarray]:
        """One inference; outputs keyed by the bundle's output names, in signature order.

        ``raw=True`` feeds and returns the artifact's own dtypes (int8 for a full-integer TFLite
        model whose signature says float32) instead of the float arrays the runtime
        (de)quantizes for you; feeds are then checked against those dtypes.

        ``check_finite=True`` refuses float feeds holding NaN or inf (FeedError naming the input
        and how many values): an int8 model would turn them into ordinary-looking outputs. It
        reads every value, so it is off by default (``runtime.finite.check_finite(feeds)`` does
        the same check on its own, e.g. once per batch before a loop of runs).
        """
        backend = self._backend
        if backend is None:
            raise BackendError("model is closed", where=self._candidate.id,
                               hint="load the bundle again")
        if validate:
            if raw:
                self._raw_validator(backend)(feeds)
            else:
                self._validate(feeds)
        if check_finite:
            from .finite import check_finite as _check_finite
            _check_finite(feeds)
        if self._static_axes:
            self._check_static_axes(feeds)
        casts = None if raw else self._casts
        if casts is not None:
            return casts.results(self._run(backend, casts.feeds(feeds), raw))
        return self._run(backend, feeds, raw)

    def _run(self, backend: Backend, feeds: Mapping[str, np.ndarray], raw: bool) -> dict[str, np.ndarray]:
        ordered = self._ordered
        if ordered is not None and (self._static_batch is None
                                    or _batch_of(feeds) == self._static_batch):
            return dict(zip(self._output_names, ordered(feeds, raw), strict=True))
        if self._in_map is not None:
            feeds = {self._in_map.get(k, k): v for k, v in feeds.items()}
        if self._static_batch is not None:
            out = self._run_in_slices(backend, feeds, raw)
        else:
            out = backend.run(feeds, raw=True) if raw else backend.run(feeds)
        try:
            return {name: out[art] for name, art in self._out_pairs}
        except KeyError as exc:
            raise BackendError(f"backend returned no output {exc.args[0]!r}",
                               where=self._candidate.id) from None

    def run_into(self, feeds: Mapping[str, np.ndarray], out: Mapping[str, np.ndarray], *,
                 validate: bool = True) -> dict[str, np.ndarray]:
        """One inference written into ``out``: arrays you allocated once (one per output, the
        signature's dtype, C-contiguous, the shape this batch gives) and reuse call after call.

        onnxruntime writes into them directly (IOBinding: inputs bound to their memory, no output
        allocated per call, so memory stays flat with big outputs; on a CPU it is not faster
        than ``run``); other backends run as usual and copy. Returns a dict of the same arrays.
        """
        backend = self._backend
        if backend is None:
            raise BackendError("model is closed", where=self._candidate.id,
                               hint="load the bundle again")
        if validate:
            self._validate(feeds)
            self._check_out(out)
        if self._static_axes:
            self._check_static_axes(feeds)
        if self._casts is not None:  # the artifact's dtypes differ: run, convert, copy
            for name, arr in self.run(feeds, validate=False).items():
                copy_into(out[name], arr, name)
            return {name: out[name] for name, _ in self._out_pairs}
        if self._in_map is not None:
            feeds = {self._in_map.get(k, k): v for k, v in feeds.items()}
        art_out = {art: out[name] for name, art in self._out_pairs}
        if self._static_batch is not None and _batch_of(feeds) != self._static_batch:
            got = self._run_in_slices(backend, feeds, False)
            for art, arr in art_out.items():
                copy_into(arr, got[art], art)
        else:
            backend.run_into(feeds, art_out)
        return {name: out[name] for name, _ in self._out_pairs}

    def _check_static_axes(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Feeds must have the lengths the artifact was compiled for, on the axes it fixed."""
        for name, axis, length in self._static_axes:
            arr = feeds.get(name)
            shape = getattr(arr, "shape", ())
            if len(shape) > axis and shape[axis] != length:
                raise FeedError(f"axis {axis} is {shape[axis]}; candidate {self._candidate.id} was compiled for "
                                f"{length} there (its converter fixes that axis)", where=f"input {name!r}",
                                hint=f"pad or cut axis {axis} to {length}, or load a candidate with that axis "
                                     "dynamic (an onnx one: runtime.load(bundle, prefer=...))")

    def _check_out(self, out: Mapping[str, np.ndarray]) -> None:
        names = [n for n, _ in self._out_pairs]
        if set(out) != set(names):
            missing, extra = sorted(set(names) - set(out)), sorted(set(out) - set(names))
            raise FeedError(f"out must have exactly the outputs {names}"
                            + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""),
                            where="out", hint="allocate one array per output, e.g. "
                                              "np.empty(shape, dtype) from model.outputs")
        for spec in self.bundle.signature.outputs:
            arr = out[spec.name]
            if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(spec.dtype):
                raise FeedError(f"needs a numpy array of dtype {spec.dtype}, got "
                                f"{getattr(arr, 'dtype', type(arr).__name__)}", where=f"out[{spec.name!r}]",
                                hint=f"np.empty(shape, dtype=np.{spec.dtype})")
            if not arr.flags.c_contiguous or not arr.flags.writeable:
                raise FeedError("needs a C-contiguous, writeable array", where=f"out[{spec.name!r}]",
                                hint="allocate it with np.empty(shape, dtype); not a slice or a view")

    def _run_in_slices(self, backend: Backend, feeds: Mapping[str, np.ndarray],
                       raw: bool) -> dict[str, np.ndarray]:
        """Run a batch of n through a fixed-batch artifact, ``static_batch`` rows at a time."""
        size = self._static_batch
        assert size is not None
        n = len(next(iter(feeds.values())))
        if n == size:
            return backend.run(feeds, raw=True) if raw else backend.run(feeds)
        if n % size:
            raise FeedError(f"batch of {n} does not split into the artifact's fixed batch of {size}",
                            where=self._candidate.id, hint=f"send a multiple of {size} samples")
        parts = []
        for start in range(0, n, size):
            chunk = {k: v[start:start + size] for k, v in feeds.items()}
            parts.append(backend.run(chunk, raw=True) if raw else backend.run(chunk))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _raw_validator(self, backend: Backend) -> FeedValidator:
        """The feed check with the artifact's raw input dtypes (built on first raw run)."""
        if self._raw_validate is None:
            dtypes = {self._candidate.artifact_input(k): v for k, v in self._candidate.io_input_dtypes.items()}
            dtypes.update(backend.raw_input_dtypes)
            specs = [replace(s, dtype=dtypes.get(self._candidate.artifact_input(s.name), s.dtype))
                     for s in self.bundle.signature.inputs]
            self._raw_validate = FeedValidator(specs)
        return self._raw_validate

    def close(self) -> None:
        backend, self._backend = self._backend, None
        self._ordered = None
        if backend is not None:
            backend.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Model({self.bundle.name!r}, candidate={self._candidate.id!r}, "
                f"providers={self.providers})")


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int:
    """The first feed's batch (axis 0), or -1 when there is none to read."""
    try:
        return len(next(iter(feeds.values())))
    except Exception:
        return -1


def choose(bundle: Bundle, *, prefer: str | None = None, strict: bool = False,
           probe_all: bool = False, tuned: bool = True
           ) -> tuple[tuple[Backend, Candidate] | None, list[Decision], TunedLookup]:
    """The candidate to run: the tuned choice when it applies and loads, else ``walk``'s.

    ``prefer`` wins over a tuned choice (the caller asked for a candidate by name).
    """
    from .tuning.tuned import TunedLookup, tuned_choice
    lookup = tuned_choice(bundle, prefer=prefer, tuned=tuned)
    if lookup.candidate is not None:
        cand = bundle.candidate(lookup.candidate)
        assert cand is not None  # lookup_tuned checked it
        backend, dec = try_candidate(bundle, cand, strict=strict)
        if backend is not None:
            dec.reason = f"{lookup.text}; {dec.reason}"
            decisions = [dec]
            for other in order_candidates(bundle, None):
                if other is cand:
                    continue
                if probe_all:
                    b, d = try_candidate(bundle, other, strict=strict)
                    if b is not None:
                        b.close()
                        d.status = AVAILABLE
                else:
                    d = Decision(other.id, NOT_TRIED, f"{cand.id} was selected first (tuned)",
                                 other.backend, other.precision, list(other.providers))
                decisions.append(d)
            return (backend, cand), decisions, lookup
        lookup = TunedLookup(None, "tuned-fails",
                             f"no tuned choice: tuned candidate {cand.id} from "
                             f"{Path(lookup.path or '').name} does not load now ({dec.reason})",
                             lookup.path, lookup.entry)
    chosen, decisions = walk(bundle, prefer=prefer, strict=strict, probe_all=probe_all)
    if chosen is not None:
        for d in decisions:
            if d.candidate == chosen[1].id:
                d.notes.append(lookup.text)
    return chosen, decisions, lookup


def check_opened_signature(bundle: Bundle, public_key: PublicKey) -> None:
    """Signature check for a Bundle opened earlier without a key: the bytes on disk must be
    signed and must still be what the Bundle was parsed from."""
    path = bundle.root / BUNDLE_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read: {exc.strerror or exc}", where=str(path)) from exc
    info = verify_signature(bundle.root, public_key, data=data)
    try:
        same = json.loads(data.decode("utf-8")) == bundle.raw
    except (UnicodeDecodeError, ValueError, RecursionError):
        same = False
    if not same:
        raise SignatureError("bundle.json changed on disk after this Bundle was opened",
                             where=str(path), hint="open the bundle again with the key")
    object.__setattr__(bundle, "signed_by", info)  # frozen dataclass: record the check


def load(path: str | os.PathLike[str] | Bundle, *, prefer: str | None = None,
         candidate: str | None = None, strict: bool = False, verify_hashes: bool = True,
         probe_all: bool = False, tuned: bool = True, public_key: PublicKey | None = None) -> Model:
    """Open a bundle (dir or .tar.gz), check its files, and load the best working candidate.

    With ``public_key`` (a PEM path, PEM text, or base64 raw ed25519 key), bundle.sig must be a
    good signature by that key over bundle.json (else SignatureError), checked first. Hashes are
    checked before any artifact is loaded, so a tampered bundle never runs. "Best" is the tuned
    choice recorded by ``python -m runtime tune`` for this device when one applies
    (``tuned=False`` ignores it), else the first candidate that loads in the bundle's order.

    ``candidate=ID`` loads that candidate and no other (no tuned choice, no fallback): a
    NoCandidateError whose ``decisions`` say why when it does not load here.
    """
    if prefer is not None and candidate is not None:
        raise TypeError("load() takes prefer= or candidate=, not both")
    if isinstance(path, Bundle):
        bundle = path
        if public_key is not None:
            check_opened_signature(bundle, public_key)
    else:
        bundle = open_bundle(path, public_key=public_key)
    if verify_hashes:
        bundle.verify()
    if candidate is not None:
        from .tuning.tuned import tuned_choice
        cand = order_candidates(bundle, candidate)[0]  # UnknownCandidateError when absent
        backend, dec = try_candidate(bundle, cand, strict=strict)
        if backend is None:
            raise no_candidate_error(bundle, [dec])
        return Model(bundle, backend, cand, [dec], tuning=tuned_choice(bundle, candidate=cand.id))
    chosen, decisions, lookup = choose(bundle, prefer=prefer, strict=strict,
                                       probe_all=probe_all, tuned=tuned)
    if chosen is None:
        raise no_candidate_error(bundle, decisions)
    return Model(bundle, chosen[0], chosen[1], decisions, tuning=lookup)
