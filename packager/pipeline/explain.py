"""Why an int8 candidate missed parity: the per-node table, made automatically when it did, and
(target option ``explain_bytes``) what the device needs to make it there (``probes``). ONNX int8
is compared with the float ONNX model it was quantized from, TFLite int8 with its float twin (the
fp32 TFLite the same route makes), tensor by tensor.

The build has everything the table needs at that moment (the float model the candidate was
quantized from, the int8 file, the golden inputs), so the user gets where the error starts with
the failure, in the build JSON and the summary, instead of only the output's error.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import EdgepackError
from .inputs import Inputs

if TYPE_CHECKING:
    import onnx

    from ..config.targets import CandidateSpec, Target
    from ..diagnose.probe import Probe
    from ..results import Artifact
    from .policy import Chosen


def explain_onnx_int8(float_model: onnx.ModelProto, data: bytes, inputs: Inputs) -> dict[str, Any]:
    """The ranked table (top rows) for an ONNX int8 artifact against its float model, or why not."""
    import onnx

    from ..diagnose import localise
    from ..diagnose.onnx_nodes import summary
    try:
        golden = list(inputs.golden().batches(inputs.manifest.calibration.batch_size))
        rows = localise(float_model, onnx.load_from_string(data), golden)
    except EdgepackError:
        raise
    except Exception as exc:  # the table is a diagnosis: its failure must not hide the parity failure
        return {"error": f"{type(exc).__name__}: {exc}"}
    return summary(rows)


def _samples(inputs: Inputs, names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The golden samples one by one, by the artifact's input names (``names``: io_map's inputs)."""
    golden = inputs.record.golden
    n = len(next(iter(golden.arrays.values())))
    return [{(names or {}).get(k, k): (v[i:i + 1] if golden.batched else v[i]) for k, v in golden.arrays.items()}
            for i in range(n)]


def explain_tflite_int8(twin: bytes, data: bytes, extras: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    """The ranked table for a TFLite int8 artifact against its float twin, or why not."""
    from ..diagnose.onnx_nodes import summary
    from ..diagnose.tflite_tensors import localise
    try:
        rows = localise(twin, data, _samples(inputs, (extras.get("io_map") or {}).get("inputs")))
    except EdgepackError:
        raise
    except Exception as exc:  # a diagnosis: its failure must not hide the parity failure
        return {"error": f"{type(exc).__name__}: {exc}"}
    if not rows:
        return {"error": "the int8 model's tensors are not named as its float twin's (the fp32 TFLite the same "
                         "route makes): nothing to compare tensor by tensor"}
    return summary(rows)


def probes(target: Target, chosen: Chosen, float_model: Callable[[CandidateSpec], onnx.ModelProto | None],
           float_tflite: Callable[[CandidateSpec], bytes | None], inputs: Inputs,
           warnings: list[str]) -> dict[str, Probe]:
    """Per int8 candidate of the bundle (ONNX, TFLite), what ``verify --explain`` needs on the
    device, within the target's ``explain_bytes`` (none when it is 0); a candidate it does not fit
    is a warning."""
    import onnx

    from ..diagnose.probe import make_probe
    from ..diagnose.tflite_probe import make_tflite_probe
    if not target.explain_bytes:
        return {}
    feeds = _samples(inputs)
    made: dict[str, Probe] = {}
    for spec, art, cr in chosen:
        if spec.precision != "int8":
            continue
        got: Probe | str
        if spec.format == "onnx" and (source := float_model(spec)) is not None:
            got = make_probe(source, onnx.load_from_string(art.data), feeds, target.explain_bytes,
                             prefix=f"explain/{spec.id}")
        elif spec.format == "tflite" and cr.file:
            twin = float_tflite(spec)
            if twin is None:
                got = "no float twin (the route made no fp32 TFLite)"
            else:
                names = (art.extras.get("io_map") or {}).get("inputs")
                got = make_tflite_probe(twin, art.data, _samples(inputs, names), target.explain_bytes,
                                        artifact=cr.file, prefix=f"explain/{spec.id}")
        else:
            continue
        if isinstance(got, str):
            warnings.append(f"{target.name}: {spec.id}: no per-node references for verify --explain: {got}")
        else:
            made[spec.id] = got
    return made


def table_for(spec: CandidateSpec, data: bytes, details: dict[str, Any], extras: dict[str, Any],
              float_model: Callable[[], onnx.ModelProto | None], float_tflite: Callable[[], bytes | None],
              inputs: Inputs) -> dict[str, Any] | None:
    """The per-node table of an int8 artifact: ONNX against the float model it was quantized from;
    TFLite as ai-edge-quantizer's child made it against onnx2tf's float model (``per_op``), else
    against its float twin; None for other precisions and formats."""
    if spec.precision != "int8":
        return None
    if spec.format == "onnx":
        model = float_model()
        return explain_onnx_int8(model, data, inputs) if model is not None else None
    if spec.format == "tflite":
        table: dict[str, Any] | None = details.get("per_op")
        if table is not None:
            return table
        twin = float_tflite()
        return explain_tflite_int8(twin, data, extras, inputs) if twin is not None else None
    return None


def float_twin(artifact: Callable[[CandidateSpec, Target], Artifact | EdgepackError], spec: CandidateSpec,
               target: Target) -> bytes | None:
    """The float twin of a TFLite int8 candidate: the fp32 TFLite its route makes (through the
    builder's ``artifact``: once per variant, as a candidate asking for it would get it), or None
    where that fails."""
    from ..config.targets import CandidateSpec
    twin = artifact(CandidateSpec(f"{spec.id}-float-twin", "tflite", "fp32", spec.backend, spec.providers), target)
    return None if isinstance(twin, EdgepackError) else twin.data


def refuse_unexplainable(spec: CandidateSpec, target: Target) -> None:
    """``edgepack debug`` makes the table of ONNX and TFLite int8 candidates only."""
    if spec.format not in ("onnx", "tflite") or spec.precision != "int8":
        from ..errors import UnsupportedError
        raise UnsupportedError(f"{spec.id} is {spec.format} {spec.precision}: the per-node table is made for "
                               "ONNX and TFLite int8 candidates", where=f"target {target.name}",
                               hint="name an int8 candidate of the target (edgepack targets lists them)")


def debug_table(spec: CandidateSpec, art: Artifact, float_model: Callable[[], onnx.ModelProto | None],
                float_tflite: Callable[[], bytes | None], inputs: Inputs) -> dict[str, Any]:
    """``edgepack debug``'s table for a made candidate, or why there is none."""
    return table_for(spec, art.data, art.passes[0]["details"], art.extras, float_model, float_tflite, inputs) or {
        "error": f"{art.converter} made this int8 model, and no float model to compare it with could be made "
                 f"(the route's fp32 {spec.format} failed)"}
