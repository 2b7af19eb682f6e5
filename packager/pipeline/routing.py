"""Which route makes a candidate, and what its fallback makes when the route's own step fails.

The route table (``packager.steps.routes``) says what exists; this module adds what depends on
the model at hand: an ONNX source whose onnxruntime-only ops a candidate's runtime cannot run is
refused for that candidate, and a fallback's result says which failure it replaced.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config.manifest import Manifest
from ..config.targets import CandidateSpec, Target
from ..errors import EdgepackError, UnsupportedError
from ..results import Made
from ..steps import ROUTES, Route, variant_of
from ..steps.routes import route_for
from .inputs import Inputs

if TYPE_CHECKING:
    import onnx

    from runtime.compare import ParityReport


def route_of(manifest: Manifest, spec: CandidateSpec) -> Route:
    """The candidate's route, or UnsupportedError: no route, or (ONNX sources) a model whose
    onnxruntime-only ops the candidate's runtime cannot run (the error names them)."""
    try:
        route, missing = route_for(manifest.source.framework, spec)[1], None
    except UnsupportedError as exc:
        route, missing = None, exc
    if manifest.source.framework == "onnx":
        from ..sources.onnx_source import runtime_refusal
        missing = runtime_refusal(manifest, spec, missing) or missing
    if missing is not None:
        raise missing
    assert route is not None
    return route


def refused(manifest: Manifest, spec: CandidateSpec) -> bool:
    try:
        route_of(manifest, spec)
    except UnsupportedError:
        return True
    return False


def variant(manifest: Manifest, spec: CandidateSpec, target: Target) -> str:
    """The name of the artifact a candidate needs (candidates of several targets may share one)."""
    route = ROUTES.get((manifest.source.framework, spec.format, variant_of(spec)))
    return route.make.variant(spec, target) if route else spec.variant


def made_by_fallback(route: Route, model: Callable[[], onnx.ModelProto], inputs: Inputs, spec: CandidateSpec,
                     target: Target, first: EdgepackError, warnings: list[str]) -> Made:
    """The candidate made by the route's fallback, with why (a note and a build warning); both
    reasons when it fails too."""
    try:
        made = route.make.run(model(), inputs, spec, target)
    except EdgepackError as exc:
        raise type(exc)(f"{first.message}; the fallback through the exported ONNX model failed too: "
                        f"{exc.message}", where=exc.where, hint=first.hint or exc.hint) from None
    install = f" ({first.hint})" if first.hint and "pip install" in first.hint else ""  # what would avoid it
    why = (f"{spec.id}: {first.message}{install}: made by {made.converter or route.make.name} from the "
           "exported ONNX model")
    warnings.append(why)
    return Made(made.data, made.suffix, made.step, dict(made.details, fallback_from=first.message),
                [why, *made.notes], made.extras, made.converter)


def mixed_retry(route: Route, spec: CandidateSpec, made: Made,
                parity: ParityReport) -> tuple[Route, UnsupportedError] | None:
    """The route that repairs a ``fallback: mixed`` TFLite candidate whose int8 missed parity, and
    why it is taken: the fallback through the exported ONNX model, where ai-edge-quantizer keeps
    the ops that add the error in float (litert-torch's and TFLiteConverter's int8 cannot). None
    when parity held, the candidate is not such a one, or that route made it (its search ran)."""
    q = spec.quantization
    if parity.passed or spec.format != "tflite" or q is None or q.mode != "static" or q.fallback != "mixed" or \
            route.fallback is None or "fallback_from" in made.details:
        return None
    missed = "; ".join(f"{o.name}: {', '.join(o.failures)}" for o in parity.outputs if not o.passed)
    return route.fallback, UnsupportedError(f"{made.converter}'s int8 missed parity ({missed})",
                                            where=f"candidate {spec.id}")
