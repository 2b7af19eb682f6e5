"""The one place where tolerance maths lives, shared by the host build and the device check.

The packager imports this module to judge artifacts at build time and the runtime uses it on
the device, so both sides always agree on what "passes" means.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from .errors import BundleFormatError

_REL_FLOOR = 1e-6  # denominator floor for the (informational) relative error
HISTOGRAM_BINS = 20  # bars in each output's error histogram
HISTOGRAM_DECADES = 16  # widest span (powers of ten) the histogram's bins cover


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria for one output. ``None`` switches a criterion off.

    atol/rtol: every finite element must satisfy |cand - ref| <= atol + rtol * |ref|.
    min_cosine: cosine similarity of the flattened outputs.
    min_top1: share of rows whose argmax agrees (only for outputs that are class scores).
    max_mismatch: share of elements allowed to differ for integer/bool outputs.
    max_range_error: max |cand - ref| as a share of the reference's value range; catches what
      cosine misses (an output with a large offset, or one big row hiding bad ones).
    """

    atol: float | None = None
    rtol: float = 0.0
    min_cosine: float | None = None
    min_top1: float | None = None
    max_mismatch: float = 0.0
    max_range_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "tolerance") -> Tolerance:
        if not isinstance(data, Mapping):
            raise BundleFormatError(f"a tolerance must be an object, got {type(data).__name__}",
                                    where=where, hint="e.g. {\"atol\": 1e-4, \"rtol\": 1e-3}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise BundleFormatError(
                f"unknown tolerance key(s) {unknown}", where=where,
                hint=f"use only {sorted(known)}")
        for key, value in data.items():
            nullable = key not in ("rtol", "max_mismatch")
            if (value is None and not nullable) or (value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float)))):
                raise BundleFormatError(f"tolerance {key} must be a number{' or null' if nullable else ''}, "
                                        f"got {value!r}", where=where)
        return cls(**dict(data))

    def merged(self, overrides: Mapping[str, Any]) -> Tolerance:
        """A copy with some fields replaced (manifest overrides on top of a precision default)."""
        values = self.to_dict()
        values.update(overrides)
        return Tolerance.from_dict(values)


# Defaults per precision: fp32 is judged tightly, fp16 looser, int8 by cosine and top-1 agreement
# (element-wise bounds on int8 outputs give false failures).
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3, min_cosine=0.99999),
    "fp16": Tolerance(atol=1e-2, rtol=1e-2, min_cosine=0.999),
    "int8": Tolerance(atol=None, min_cosine=0.98, min_top1=0.95, max_mismatch=0.05, max_range_error=0.1),
}


def default_tolerance(precision: str) -> Tolerance:
    """The default tolerance for a precision name (``fp32``, ``fp16``, ``int8``)."""
    try:
        return DEFAULT_TOLERANCES[precision]
    except KeyError:
        raise BundleFormatError(f"no default tolerance for precision {precision!r}",
                                hint=f"use one of {sorted(DEFAULT_TOLERANCES)}") from None


@dataclass
class OutputReport:
    """Statistics and verdict for one output."""

    name: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    shape: list[int] | None = None
    dtype: str | None = None
    max_abs: float | None = None
    mean_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    top1: float | None = None
    mismatch: float | None = None
    nonfinite: int = 0
    notes: list[str] = field(default_factory=list)
    error_histogram: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputReport:
        return cls(**dict(data))


@dataclass
class ParityReport:
    """Verdict over all outputs: passes only when every output passes."""

    outputs: list[OutputReport]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "outputs": [o.to_dict() for o in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParityReport:
        return cls([OutputReport.from_dict(o) for o in data.get("outputs", [])])

    def format_table(self) -> str:
        return format_parity_rows(self.outputs)


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def format_parity_rows(outputs: list[OutputReport], indent: str = "") -> str:
    """A fixed-width table: one row per output with its statistics and verdict."""
    header = ("output", "max_abs", "mean_abs", "max_rel", "cosine", "top1", "status")
    rows = [header]
    for o in outputs:
        status = "PASS" if o.passed else "FAIL: " + "; ".join(o.failures)
        rows.append((o.name, _fmt(o.max_abs), _fmt(o.mean_abs), _fmt(o.max_rel),
                     _fmt(o.cosine, ".6f"), _fmt(o.top1, ".3f"), status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = []
    for r in rows:
        cells = [r[i].ljust(widths[i]) for i in range(len(widths))] + [r[-1]]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def error_histogram(errors: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """A small JSON histogram of absolute errors ``errors`` (finite, >= 0), on a log10 scale.

    Exact matches are counted apart (``zeros``: a log scale cannot show 0). The positive errors
    fall into ``bins`` equal-width bins in log10 space whose ``edges`` (bins + 1 values, rounded
    to 4 significant digits) run from the power of ten at or below the smallest positive error to
    the one at or above the largest, over at most HISTOGRAM_DECADES decades; a positive error
    below ``edges[0]`` (only when the span was cut) is counted in the first bin. A bin holds
    [edges[i], edges[i + 1]); the last one includes its right edge. With no positive error
    ``edges`` and ``counts`` are empty. ``total`` = ``zeros`` + sum(``counts``).
    """
    errors = np.asarray(errors).ravel()
    pos = errors[errors > 0]
    hist: dict[str, Any] = {"scale": "log10", "edges": [], "counts": [],
                            "zeros": int(errors.size - pos.size), "total": int(errors.size)}
    if pos.size == 0:
        return hist
    logs = np.log10(pos.astype(np.float64))
    hi = int(np.ceil(logs.max()))
    lo = max(int(np.floor(logs.min())), hi - HISTOGRAM_DECADES)
    if lo >= hi:  # every error is the same power of ten: show the decade above it
        hi = lo + 1
    idx = np.floor((logs - lo) * (bins / (hi - lo))).astype(np.int64)
    np.clip(idx, 0, bins - 1, out=idx)
    hist["edges"] = [float(f"{10.0 ** (lo + i * (hi - lo) / bins):.4g}") for i in range(bins + 1)]
    hist["counts"] = np.bincount(idx, minlength=bins).tolist()
    return hist


def looks_like_scores(array: np.ndarray) -> bool:
    """Class scores: a float (batch, classes) array with at least two classes."""
    return array.dtype.kind == "f" and array.ndim == 2 and array.shape[1] >= 2


def _cosine(ref: np.ndarray, cand: np.ndarray) -> float | None:
    nr, nc = float(np.linalg.norm(ref)), float(np.linalg.norm(cand))
    if nr == 0.0 or nc == 0.0:
        return None
    return float(np.dot(ref, cand) / (nr * nc))


def compare_output(name: str, ref: np.ndarray, cand: np.ndarray, tol: Tolerance,
                   *, scores: bool | None = None) -> OutputReport:
    """Compare one candidate output with its reference under ``tol``."""
    ref = np.asarray(ref)
    cand = np.asarray(cand)
    rep = OutputReport(name=name, passed=True, shape=list(ref.shape), dtype=str(ref.dtype))
    if ref.shape != cand.shape:
        rep.passed = False
        rep.failures.append(f"shape {list(cand.shape)} != reference {list(ref.shape)}")
        return rep

    if ref.dtype.kind in "iub" and cand.dtype.kind in "iub":
        return _compare_discrete(rep, ref, cand, tol)
    if ref.dtype.kind not in "iubf" or cand.dtype.kind not in "iubf":
        rep.passed = False
        rep.failures.append(f"cannot compare dtypes {ref.dtype} and {cand.dtype}")
        return rep

    r = ref.astype(np.float64).ravel()
    c = cand.astype(np.float64).ravel()
    r_fin, c_fin = np.isfinite(r), np.isfinite(c)
    rep.nonfinite = int((~c_fin).sum())
    if not (r_fin.all() and c_fin.all()):
        # Non-finite values must sit at the same places with the same value (NaN, +inf, -inf).
        same = (r_fin == c_fin) & (np.isnan(r) == np.isnan(c))
        same &= np.where(np.isinf(r) & np.isinf(c), np.sign(r) == np.sign(c), True)
        if not same.all():
            rep.passed = False
            rep.failures.append(f"{int((~same).sum())} non-finite value(s) differ from reference")
        else:
            rep.notes.append(f"{int((~r_fin).sum())} non-finite value(s) match the reference")
        keep = r_fin & c_fin
        r, c = r[keep], c[keep]

    if r.size == 0:
        rep.notes.append("no finite elements to compare")
        return rep

    diff = np.abs(c - r)
    rep.error_histogram = error_histogram(diff)
    rep.max_abs = float(diff.max())
    rep.mean_abs = float(diff.mean())
    rep.max_rel = float((diff / np.maximum(np.abs(r), _REL_FLOOR)).max())

    if tol.atol is not None:
        bound = tol.atol + tol.rtol * np.abs(r)
        bad = int((diff > bound).sum())
        if bad:
            rep.passed = False
            rep.failures.append(
                f"{bad} element(s) exceed atol={tol.atol:g} + rtol={tol.rtol:g}*|ref|")

    if tol.max_range_error is not None:
        span = max(float(r.max() - r.min()), float(np.abs(r).max()) if r.max() == r.min() else 0.0)
        share = rep.max_abs / span if span > 0 else (0.0 if rep.max_abs == 0 else float("inf"))
        if share > tol.max_range_error:
            rep.passed = False
            rep.failures.append(f"max abs error {rep.max_abs:.3g} is {share:.1%} of the reference's "
                                f"range (> {tol.max_range_error:.0%})")

    rep.cosine = _cosine(r, c)
    if rep.cosine is None:
        r_zero, c_zero = not r.any(), not c.any()
        if r_zero and c_zero:
            rep.notes.append("reference and candidate are all zeros: cosine undefined, outputs equal")
        elif tol.min_cosine is not None:
            rep.passed = False
            which = "reference" if r_zero else "candidate"
            rep.failures.append(f"{which} is all zeros, the other is not (cosine undefined)")
    elif tol.min_cosine is not None and rep.cosine < tol.min_cosine:
        rep.passed = False
        rep.failures.append(f"cosine {rep.cosine:.6f} < {tol.min_cosine:g}")

    if scores if scores is not None else looks_like_scores(ref):
        rep.top1 = float(np.mean(np.argmax(ref, axis=-1) == np.argmax(cand, axis=-1)))
        if tol.min_top1 is not None and rep.top1 < tol.min_top1:
            rep.passed = False
            rep.failures.append(f"top-1 agreement {rep.top1:.3f} < {tol.min_top1:g}")
    return rep


def _compare_discrete(rep: OutputReport, ref: np.ndarray, cand: np.ndarray,
                      tol: Tolerance) -> OutputReport:
    differ = ref != cand
    rep.mismatch = float(differ.mean()) if differ.size else 0.0
    diff = np.abs(ref.astype(np.int64) - cand.astype(np.int64))
    rep.error_histogram = error_histogram(diff)
    rep.max_abs = float(diff.max()) if diff.size else 0.0
    rep.mean_abs = float(diff.mean()) if diff.size else 0.0
    if rep.mismatch > tol.max_mismatch:
        rep.passed = False
        rep.failures.append(
            f"{int(differ.sum())} of {differ.size} element(s) differ "
            f"({rep.mismatch:.3%} > {tol.max_mismatch:.3%} allowed)")
    return rep


def compare(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
            tolerance: Tolerance | Mapping[str, Tolerance],
            *, scores: Mapping[str, bool] | None = None) -> ParityReport:
    """Compare every reference output with the candidate's; one report for all of them.

    ``tolerance`` is one Tolerance for all outputs or a dict name -> Tolerance.
    ``scores`` forces (or forbids) the top-1 check per output name.
    """
    reports = []
    for name, ref in reference.items():
        tol = tolerance if isinstance(tolerance, Tolerance) else tolerance.get(name)
        if tol is None:
            raise BundleFormatError(f"no tolerance for output {name!r}", where="tolerances",
                                    hint="give a tolerance for every output")
        if name not in candidate:
            reports.append(OutputReport(name=name, passed=False,
                                        failures=["missing from candidate outputs"]))
            continue
        reports.append(compare_output(name, ref, candidate[name], tol,
                                      scores=(scores or {}).get(name)))
    return ParityReport(reports)
