"""Per-target candidate policy: which candidates go into a target's bundle, in which order.

A candidate whose artifact failed parity, or whose evaluation metric fell further below the
original model's than ``evaluation.max_accuracy_drop`` allows, is dropped for the next one
(``precision_fallback``), kept with a warning (``--allow-parity-failure``) or fails the target; a
quantized candidate not faster than fp32 on the host can be dropped (``drop_slower_quantized``); an
unsupported route is shown, not a failure.
"""
from __future__ import annotations

from collections.abc import Callable

from ..config.targets import CandidateSpec, Target
from ..errors import EdgepackError, UnsupportedError
from ..results import Artifact, CandidateResult, TargetResult

Chosen = list[tuple[CandidateSpec, Artifact, CandidateResult]]


def error_text(exc: EdgepackError, *, where: bool = True) -> str:
    return exc.message + (f" ({exc.where})" if where and exc.where else "") + (f"; {exc.hint}" if exc.hint else "")


def choose(target: Target, artifact: Callable[[CandidateSpec, Target], Artifact | EdgepackError], model_name: str, *,
           allow_parity_failure: bool, warnings: list[str],
           budget: Callable[[float | None], str | None] = lambda _: None) -> tuple[TargetResult, Chosen]:
    """The target's result and the candidates for its bundle (none when the target failed)."""
    result = TargetResult(target=target.name, status="ok")
    chosen: Chosen = []
    for i, spec in enumerate(target.candidates):
        cr = CandidateResult(id=spec.id, format=spec.format, precision=spec.precision, status="ok")
        result.candidates.append(cr)
        art = artifact(spec, target)
        if isinstance(art, UnsupportedError):
            cr.status, cr.message = "unsupported", error_text(art, where=False)
            continue
        if isinstance(art, EdgepackError):
            cr.status, cr.message = "failed", error_text(art)
            continue
        cr.file = f"models/{model_name}.{art.filename}"
        cr.size, cr.parity, cr.accuracy = len(art.data), art.parity, art.accuracy
        cr.host_latency_ms, cr.notes, cr.cached = art.host_latency_ms, list(art.notes), art.cached
        cr.explained = art.explained
        miss = budget(art.accuracy)
        if not art.parity.passed or miss:
            reasons = "; ".join(f"{o.name}: {', '.join(o.failures)}" for o in art.parity.outputs if not o.passed)
            why = "; ".join(x for x in (f"parity failed ({reasons})" if reasons else "",
                                        f"accuracy budget missed ({miss})" if miss else "") if x)
            nxt = next((c.id for c in target.candidates[i + 1:]), None)
            if allow_parity_failure:
                cr.status = "parity-failed-allowed"
                cr.message = f"{why}; kept because --allow-parity-failure"
            elif target.precision_fallback and nxt:
                cr.status, cr.message = "dropped", f"{why}; fell back to {nxt}"
                reason = f"parity failed: {reasons}" if not miss else why
                result.fallbacks.append({"candidate": spec.id, "reason": reason, "next": nxt})
                continue
            else:
                cr.status, cr.message = "parity-failed", why
                continue
        chosen.append((spec, art, cr))

    chosen = speed_guard(target, chosen, result)
    hard = [c for c in result.candidates if c.status == "parity-failed"]
    # "unsupported" is a route this source cannot take (a torch model has no TFLite route without
    # litert-torch, say): shown and recorded, but not a failure; "failed" is a real error
    broken = [c for c in result.candidates if c.status == "failed"]
    if hard or not chosen:
        result.status = "failed"
        result.message = ("parity failed for " + ", ".join(c.id for c in hard) +
                          " (set precision_fallback: true in the target, or pass --allow-parity-failure)"
                          if hard else "no candidate could be built")
        return result, []
    # candidates kept despite failing parity go after every candidate that passed
    chosen.sort(key=lambda item: item[2].status == "parity-failed-allowed")
    for _, _, cr in chosen:
        if cr.status == "parity-failed-allowed":
            warnings.append(f"{target.name}: {cr.id} FAILED parity and is in the bundle only "
                            "because of --allow-parity-failure")
    if broken:
        result.status = "partial"
        result.message = "built without " + ", ".join(f"{c.id} ({c.status})" for c in broken)
    skipped = [c.id for c in result.candidates if c.status == "unsupported"]
    if skipped and not broken:
        result.message = "skipped (route not supported for this source): " + ", ".join(skipped)
    return result, chosen


def speed_guard(target: Target, chosen: Chosen, result: TargetResult) -> Chosen:
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
