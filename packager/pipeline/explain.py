"""Why an int8 ONNX candidate missed parity: the per-node table, made automatically when it did,
and (target option ``explain_bytes``) what the device needs to make it there (``probes``).

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


def probes(target: Target, chosen: Chosen, float_model: Callable[[CandidateSpec], onnx.ModelProto | None],
           inputs: Inputs, warnings: list[str]) -> dict[str, Probe]:
    """Per ONNX int8 candidate of the bundle, what ``verify --explain`` needs on the device, within
    the target's ``explain_bytes`` (none when it is 0); a candidate it does not fit is a warning."""
    import onnx

    from ..diagnose.probe import make_probe
    if not target.explain_bytes:
        return {}
    golden = inputs.record.golden
    n = len(next(iter(golden.arrays.values())))
    feeds = [{k: (v[i:i + 1] if golden.batched else v[i]) for k, v in golden.arrays.items()} for i in range(n)]
    made: dict[str, Probe] = {}
    for spec, art, _ in chosen:
        if spec.format != "onnx" or spec.precision != "int8" or (source := float_model(spec)) is None:
            continue
        got = make_probe(source, onnx.load_from_string(art.data), feeds, target.explain_bytes,
                         prefix=f"explain/{spec.id}")
        if isinstance(got, str):
            warnings.append(f"{target.name}: {spec.id}: no per-node references for verify --explain: {got}")
        else:
            made[spec.id] = got
    return made


def table_for(spec: CandidateSpec, data: bytes, details: dict[str, Any],
              float_model: Callable[[], onnx.ModelProto | None], inputs: Inputs) -> dict[str, Any] | None:
    """The per-node table of an int8 artifact: ONNX against the float model it was quantized from;
    TFLite as ai-edge-quantizer's child made it against onnx2tf's float model (``per_op``); None
    where there is no float twin (fp32/fp16, litert-torch's or TFLiteConverter's own int8)."""
    if spec.precision != "int8":
        return None
    if spec.format == "onnx":
        model = float_model()
        return explain_onnx_int8(model, data, inputs) if model is not None else None
    if spec.format == "tflite":
        table: dict[str, Any] | None = details.get("per_op")
        return table
    return None
