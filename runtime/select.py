"""Choose the candidate that really works on this device, and record why others were not used.

Each candidate is tried in bundle order (a preferred one first): is the backend importable, are
the providers present, does the session come up, and does it run on the providers asked for?
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from .backends import Backend, get_backend
from .bundle import Bundle, Candidate
from .errors import NoCandidateError, RuntimeBundleError, UnknownCandidateError
from .signature import TensorSpec

# A candidate's decision state in the selection table.
DecisionStatus = Literal["selected", "available-not-chosen", "skipped", "not-tried"]
SELECTED: DecisionStatus = "selected"
AVAILABLE: DecisionStatus = "available-not-chosen"
SKIPPED: DecisionStatus = "skipped"
NOT_TRIED: DecisionStatus = "not-tried"


@dataclass
class Decision:
    """One row of the selection table."""

    candidate: str
    status: DecisionStatus
    reason: str
    backend: str = ""
    precision: str | None = None
    providers_asked: list[str] = field(default_factory=list)
    providers_in_use: list[str] = field(default_factory=list)
    degraded: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. a delegate that failed to load

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def order_candidates(bundle: Bundle, prefer: str | None) -> list[Candidate]:
    """Bundle order, with ``prefer`` moved to the front."""
    cands = list(bundle.candidates)
    if prefer is None:
        return cands
    chosen = bundle.candidate(prefer)
    if chosen is None:
        ids = [c.id for c in cands]
        close = difflib.get_close_matches(prefer, ids, n=1)
        raise UnknownCandidateError(
            "no such candidate in this bundle", where=prefer,
            hint=(f"did you mean {close[0]!r}? " if close else "") + f"candidates are {ids}")
    return [chosen] + [c for c in cands if c is not chosen]


def try_candidate(bundle: Bundle, cand: Candidate, *,
                  strict: bool = False) -> tuple[Backend | None, Decision]:
    """Open one candidate. Returns the open backend (or None) and the decision explaining it."""
    dec = Decision(candidate=cand.id, status=SKIPPED, reason="", backend=cand.backend,
                   precision=cand.precision, providers_asked=list(cand.providers))
    cls = get_backend(cand.backend)
    if cls is None:
        dec.reason = f"backend {cand.backend} not supported by this runtime version"
        return None, dec
    ok, why = cls.available()
    if not ok:
        dec.reason = why
        return None, dec
    path = bundle.path(cand.file)
    if not path.is_file():
        dec.reason = f"artifact {cand.file} is missing"
        return None, dec
    io_problem = _io_map_problem(bundle, cand)
    if io_problem:
        dec.reason = io_problem
        return None, dec
    inputs, outputs = artifact_specs(bundle, cand)
    backend = cls()
    try:
        backend.open(path, providers=cand.providers, provider_options=cand.provider_options,
                     threads=cand.threads, options=MappingProxyType(cand.raw),
                     inputs=inputs, outputs=outputs)
    except RuntimeBundleError as exc:
        _close_quietly(backend)
        dec.reason = _with_memory_note(exc.message)
        return None, dec
    except MemoryError as exc:  # a device too small for this candidate: try the next one
        _close_quietly(backend)
        detail = " ".join(str(exc).split())
        dec.reason = _with_memory_note("session creation failed: MemoryError"
                                       + (f": {detail}" if detail else ""))
        return None, dec
    except Exception as exc:  # a backend bug must not stop the walk; record it
        _close_quietly(backend)
        dec.reason = _with_memory_note(f"session creation failed: {type(exc).__name__}: {exc}")
        return None, dec
    dec.providers_in_use = backend.providers_in_use
    dec.notes = list(backend.notes) + _dtype_notes(bundle, cand)
    problem = _signature_problem(bundle, backend, cand)
    if problem:
        backend.close()
        dec.reason = problem
        return None, dec
    if backend.providers_pick_one:  # degraded only when not on the first device asked
        lost = [p for p in cand.providers[:1] if p not in dec.providers_in_use]
    else:
        lost = [p for p in cand.providers if p not in dec.providers_in_use]
    why = f" ({'; '.join(dec.notes)})" if dec.notes else ""
    if lost:
        text = (f"asked providers [{', '.join(cand.providers)}], session runs on "
                f"[{', '.join(dec.providers_in_use)}]{why}")
        if strict:
            backend.close()
            dec.reason = text + " (refused: --strict)"
            return None, dec
        dec.degraded = True
        dec.reason = text
    else:
        dec.reason = (f"runs on [{', '.join(dec.providers_in_use)}]" if dec.providers_in_use
                      else "loaded") + why
    dec.status = SELECTED
    return backend, dec


# How frameworks word an allocation failure: Python, C++ (std::bad_alloc), onnxruntime, TFLite.
_OOM_MARKERS = ("memoryerror", "bad allocation", "bad_alloc", "out of memory",
                "cannot allocate memory", "failed to allocate", "allocation failed")
MEMORY_NOTE = "out of memory: this device has too little free memory for this candidate"


def looks_out_of_memory(text: str) -> bool:
    """Whether an error text is an allocation failure (so the report can say so plainly)."""
    low = text.lower()
    return any(m in low for m in _OOM_MARKERS)


def _with_memory_note(reason: str) -> str:
    return f"{reason} ({MEMORY_NOTE})" if looks_out_of_memory(reason) else reason


def _close_quietly(backend: Backend) -> None:
    """Free whatever a failed ``open`` left behind; a second failure must not hide the first."""
    try:
        backend.close()
    except Exception:
        pass


def artifact_specs(bundle: Bundle, cand: Candidate
                   ) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The signature's specs, in order, as the artifact has them: renamed through ``io_map``,
    with the dtypes its converter chose (the Model converts between the two)."""
    return ([replace(s, name=cand.artifact_input(s.name), dtype=cand.io_input_dtypes.get(s.name, s.dtype))
             for s in bundle.signature.inputs],
            [replace(s, name=cand.artifact_output(s.name), dtype=cand.io_output_dtypes.get(s.name, s.dtype))
             for s in bundle.signature.outputs])


def _io_map_problem(bundle: Bundle, cand: Candidate) -> str | None:
    """io_map keys must be signature names and the renamed names must stay distinct."""
    for kind, mapping, dtypes, specs in (
            ("inputs", cand.io_inputs, cand.io_input_dtypes, bundle.signature.inputs),
            ("outputs", cand.io_outputs, cand.io_output_dtypes, bundle.signature.outputs)):
        names = [s.name for s in specs]
        for key, named in ((kind, mapping), (f"{kind[:-1]}_dtypes", dtypes)):
            unknown = sorted(set(named) - set(names))
            if unknown:
                return f"io_map.{key} names {unknown}, which are not signature {kind} {names}"
        renamed = [mapping.get(n, n) for n in names]
        if len(set(renamed)) != len(renamed):
            return f"io_map.{kind} makes two signature {kind} share a name: {renamed}"
    return None


def _dtype_notes(bundle: Bundle, cand: Candidate) -> list[str]:
    """What Model.run converts for this artifact (shown with the decision: nothing silent)."""
    casts = cand.io_casts(bundle.signature)
    return casts.describe() if casts is not None else []


def _signature_problem(bundle: Bundle, backend: Backend, cand: Candidate) -> str | None:
    """The artifact's IO names must be the bundle's (after io_map), or run() would feed the
    wrong tensors."""
    want_in = sorted(cand.artifact_input(s.name) for s in bundle.signature.inputs)
    want_out = sorted(cand.artifact_output(s.name) for s in bundle.signature.outputs)
    got_in, got_out = sorted(backend.input_names), sorted(backend.output_names)
    if got_in and got_in != want_in:
        return f"artifact inputs {got_in} differ from the signature's {want_in}"
    if got_out and not set(want_out) <= set(got_out):
        return f"artifact outputs {got_out} lack the signature's {want_out}"
    return None


def walk(bundle: Bundle, *, prefer: str | None = None, strict: bool = False,
         probe_all: bool = False) -> tuple[tuple[Backend, Candidate] | None, list[Decision]]:
    """Try candidates in order; return the first that loads (or None) and the decision table.

    ``probe_all`` also opens (and closes) the remaining candidates, so the table says which
    would have worked ("available-not-chosen"). With ``strict`` and ``prefer``, only the
    preferred candidate is acceptable: no fallback to another one.
    """
    ordered = order_candidates(bundle, prefer)
    decisions: list[Decision] = []
    chosen: tuple[Backend, Candidate] | None = None
    for i, cand in enumerate(ordered):
        if chosen is not None and not probe_all:
            decisions.append(Decision(cand.id, NOT_TRIED, f"{chosen[1].id} was selected first",
                                      cand.backend, cand.precision, list(cand.providers)))
            continue
        if chosen is None and strict and prefer is not None and i > 0:
            decisions.append(Decision(cand.id, NOT_TRIED,
                                      f"--strict with --prefer {prefer}: no fallback",
                                      cand.backend, cand.precision, list(cand.providers)))
            continue
        backend, dec = try_candidate(bundle, cand, strict=strict)
        if backend is not None:
            if chosen is None:
                chosen = (backend, cand)
            else:
                backend.close()
                dec.status = AVAILABLE
        decisions.append(dec)
    return chosen, decisions


def select(bundle: Bundle, *, prefer: str | None = None, strict: bool = False,
           probe_all: bool = False) -> tuple[Backend, Candidate, list[Decision]]:
    """Like ``walk`` but raises NoCandidateError, with the whole table, when nothing loads."""
    chosen, decisions = walk(bundle, prefer=prefer, strict=strict, probe_all=probe_all)
    if chosen is None:
        raise no_candidate_error(bundle, decisions)
    return chosen[0], chosen[1], decisions


def no_candidate_error(bundle: Bundle, decisions: list[Decision]) -> NoCandidateError:
    hint = ("install the requirements.txt of this bundle, or build a bundle for this device's "
            "target")
    if any(looks_out_of_memory(d.reason) for d in decisions):
        hint = ("free memory (stop other processes) or build a smaller candidate (int8) for "
                "this device; otherwise " + hint)
    return NoCandidateError("no candidate could be loaded on this device:\n"
                            + format_decisions(decisions, indent="  "),
                            where=str(bundle.root), hint=hint, decisions=decisions)


def format_decisions(decisions: list[Decision], indent: str = "") -> str:
    """A fixed-width table: candidate, status, precision, providers in use, reason."""
    rows = [("candidate", "status", "precision", "reason")]
    for d in decisions:
        status = d.status + (" (degraded)" if d.degraded else "")
        rows.append((d.candidate, status, d.precision or "-", d.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(indent + "  ".join([r[i].ljust(widths[i]) for i in range(3)] + [r[3]])
                     .rstrip() for r in rows)
