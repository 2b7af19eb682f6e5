"""Precision passes for ONNX: fp16 (float32 I/O kept), int8 dynamic, int8 static QDQ (calibrated)."""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from runtime.compare import Tolerance

from ..config.targets import Quantization
from ..errors import ConversionError
from ..onnx_utils import node_count, set_min_ir_version
from . import PassResult
from .float16 import float16_share, is_float16, widen
from .wide_ranges import calibrated_ranges, describe, name_nodes, nodes_touching, wide_tensors

if TYPE_CHECKING:
    from runtime.compare import ParityReport

    from ..metrics import Budget


def to_fp16(model: onnx.ModelProto) -> PassResult:
    """Weights and compute in float16; inputs and outputs stay float32 for the caller."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    if is_float16(model):  # a float16 model already: converting again duplicates its casts
        return PassResult(model, "fp16", modified=False, notes=[
            f"the model's weights are float16 already ({float16_share(model):.0%}): kept as it is"],
            details={"nodes": node_count(model), "io": "float32", "already_float16": True})
    try:
        with _quiet():
            converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    except Exception as exc:
        raise ConversionError(f"fp16 conversion failed: {exc}", where="pass fp16",
                              hint="use an fp32 candidate for this model") from None
    set_min_ir_version(converted)
    return PassResult(converted, "fp16", modified=True,
                      details={"nodes": node_count(converted), "io": "float32"})


def int8_dynamic(model: onnx.ModelProto) -> PassResult:
    """Weights int8, activations quantized on the fly (no calibration data needed)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    model, notes = _float32(model, "pass int8-dynamic")
    with tempfile.TemporaryDirectory(prefix="edgepack-q-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        try:
            with _quiet():
                quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        except Exception as exc:
            raise ConversionError(f"int8 dynamic quantization failed: {exc}", where="pass int8-dynamic",
                                  hint="use an fp32 or fp16 candidate for this model") from None
        out = onnx.load(str(dst))
    set_min_ir_version(out)
    return PassResult(out, "int8-dynamic", modified=True, notes=notes,
                      details={"nodes": node_count(out), "weight_type": "int8"})


def _float32(model: onnx.ModelProto, where: str) -> tuple[onnx.ModelProto, list[str]]:
    """The model with float32 weights for onnxruntime's quantizers (a float16 one widened)."""
    if not is_float16(model):
        return model, []
    widened, changed = widen(model, where)
    return widened, [f"the model is float16 inside: {changed} float16 tensor(s) and cast(s) widened to float32 "
                     "before quantization (the float16 values, not the original float32 ones)"]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over real calibration feeds."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches = batches
        self._it: Iterator[dict[str, np.ndarray]] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


@dataclass(frozen=True)
class Repair:
    """What the mixed-precision search checks each try against (``quantization.fallback: mixed``):
    the golden feeds, each output's int8 tolerance and whether it is class scores; and, with
    ``evaluation.max_accuracy_drop``, the metric's budget on the evaluation data."""

    feeds: list[dict[str, np.ndarray]]
    tolerances: dict[str, Tolerance]
    scores: dict[str, bool]
    budget: Budget | None = None


def with_budget(report: ParityReport, miss: Callable[[], str | None]) -> ParityReport:
    """``report``, failed with the budget's reason when parity held but the metric misses it
    (the metric is computed only then: parity is the cheaper check)."""
    from runtime.compare import OutputReport, ParityReport
    if not report.passed:
        return report
    why = miss()
    return report if why is None else ParityReport([*report.outputs, OutputReport("evaluation", False, [why])])


def int8_static(model: onnx.ModelProto, q: Quantization, batches: list[dict[str, np.ndarray]],
                *, random_data: bool, repair: Repair | None = None) -> PassResult:
    """QDQ int8 (uint8 activations, int8 weights) calibrated on ``batches`` of real samples; the nodes
    around a tensor whose range 8 bits cannot hold (an attention mask's fill value) stay float.
    With ``repair``, the nodes that add the most error stay float too, until parity holds."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    samples = sum(len(next(iter(b.values()))) for b in batches)
    model, widened = _float32(model, "pass int8-static")
    model = name_nodes(model)
    notes = list(widened)
    details: dict[str, Any] = {"format": "QDQ", "activations": "uint8", "weights": "int8",
                               "per_channel": q.per_channel, "calibration_method": q.calibration_method,
                               "calibration_samples": samples}
    with tempfile.TemporaryDirectory(prefix="edgepack-q-") as tmp:
        src, dst, ranges = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx", Path(tmp) / "ranges.json"
        onnx.save(model, str(src))
        try:
            with _quiet():
                calibrator = create_calibrator(src, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                               calibrate_method=methods[q.calibration_method])
                calibrator.collect_data(_Reader(batches))
                tensors_data = calibrator.compute_data()
                del calibrator
                wide = wide_tensors(calibrated_ranges(tensors_data))
                touching = nodes_touching(model, wide)
                kept = [n.name for n in touching]
                if touching:
                    notes.append(describe(touching, wide))
                # onnxruntime >= 1.26 takes the ranges just computed; older ones calibrate again (same data)
                reuse: dict[str, Any] = {}
                if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
                    from onnxruntime.quantization.calibrate import save_tensors_data
                    save_tensors_data(tensors_data, ranges)
                    reuse = {"calibration_cache_path": str(ranges)}

                def quantize(exclude: list[str]) -> onnx.ModelProto:  # called inside the _quiet() above
                    quantize_static(str(src), str(dst), _Reader(batches), quant_format=QuantFormat.QDQ,
                                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                    per_channel=q.per_channel, calibrate_method=methods[q.calibration_method],
                                    nodes_to_exclude=list(exclude), **reuse)
                    return onnx.load(str(dst))

                if repair is None:
                    out = quantize(kept)
                else:
                    out, kept = _repaired(model, quantize, repair, kept, notes, details)
        except Exception as exc:
            raise ConversionError(f"int8 static quantization failed: {exc}", where="pass int8-static",
                                  hint="try quantization: {mode: dynamic}, or an fp16/fp32 candidate") from None
    set_min_ir_version(out)
    if random_data:
        notes.append("calibrated on RANDOM data (manifest asked for random: true): int8 accuracy on real inputs "
                     "is unknown")
    details["nodes"] = node_count(out)
    if kept:
        details["kept_float"] = kept
    return PassResult(out, "int8-static", modified=True, notes=notes, details=details)


def _repaired(model: onnx.ModelProto, quantize: Callable[[list[str]], onnx.ModelProto], repair: Repair,
              kept: list[str], notes: list[str], details: dict[str, Any]) -> tuple[onnx.ModelProto, list[str]]:
    """The mixed-precision search on the golden feeds against the float model's own outputs (it
    matches the source to float32 precision; the build's parity check then uses the source's)."""
    from runtime.compare import compare

    from ..diagnose import search
    names = [o.name for o in model.graph.output]
    reference = _outputs(model, names, repair.feeds)

    def check(candidate: onnx.ModelProto) -> Any:
        report = compare(reference, _outputs(candidate, names, repair.feeds), repair.tolerances, scores=repair.scores)
        budget = repair.budget
        return report if budget is None else with_budget(report, lambda: budget.miss(
            _outputs(candidate, names, budget.feeds)))

    from ..diagnose import localise
    sizes: list[int] = []

    def measured(exclude: list[str]) -> onnx.ModelProto:
        made = quantize(exclude)
        sizes.append(made.ByteSize())
        return made

    mixed = search(len(model.graph.node), measured, check, lambda m: localise(model, m, repair.feeds), start=kept,
                   readers=readers_of(model))
    added = mixed.kept[len(kept):]
    # what keeping them costs: the share of the float model's nodes, and bytes against the first try
    details["mixed"] = {"passed": mixed.passed, "kept_float_added": added, "rounds": mixed.trace,
                        "float_nodes": len(model.graph.node),
                        "kept_share": round(len(mixed.kept) / len(model.graph.node), 4),
                        "bytes_added": sizes[-1] - sizes[0],
                        **({"why": mixed.why, "worst": [r.to_dict() for r in mixed.worst]} if not mixed.passed
                           else {})}
    if mixed.passed and added:
        notes.append(f"mixed precision: {len(added)} node(s) kept in float until parity held "
                     f"({', '.join(added)}); {len(mixed.trace)} quantization round(s)")
    elif mixed.passed:
        notes.append("mixed precision: parity held with every node int8 (nothing kept in float)")
    else:
        notes.append(f"mixed precision did not pass: {mixed.why}; kept in float: "
                     f"{', '.join(added) or 'none'}")
    return mixed.model, mixed.kept


def _outputs(model: onnx.ModelProto, names: list[str], feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    runs = [sess.run(names, feed) for feed in feeds]
    return {n: np.concatenate([np.asarray(r[i]) for r in runs]) for i, n in enumerate(names)}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer logs, prints and warns freely (a zero point from an infinite range);
    keep the build output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    finally:
        root.setLevel(level)


def readers_of(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Node -> the nodes that compute on its outputs, and the view nodes (Reshape, Transpose, ...)
    between: everything that would put a Q/DQ pair on those tensors (``diagnose.search``)."""
    from ..diagnose.onnx_nodes import VIEW_OPS
    by_input: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in dict.fromkeys(node.input):
            by_input.setdefault(name, []).append(node)

    def reading(outputs: Sequence[str], seen: set[str]) -> list[str]:
        found = []
        for out in outputs:
            for reader in by_input.get(out, []):
                if reader.name in seen:
                    continue
                seen.add(reader.name)
                found.append(reader.name)
                if reader.op_type in VIEW_OPS:
                    found += reading(reader.output, seen)
        return found

    return {node.name: reading(node.output, {node.name}) for node in model.graph.node}
