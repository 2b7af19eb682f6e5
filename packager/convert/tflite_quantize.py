"""Full int8 static quantization of a float TFLite model with ai-edge-quantizer.

Used for ONNX sources: onnx2tf converts the model to float TFLite, and this quantizes it. onnx2tf's
own int8 quantization shipped no candidate for the zoo's ONNX models (strict full-integer refusals
of EQUAL/SIGN/SQRT, INT64 depthwise biases, float32-only calibration of token inputs, a pooled
range given to a pool's input); ai-edge-quantizer calibrates by running the float model itself
(any input dtype), quantizes the ops it has int8 kernels for and leaves the rest float with
QUANTIZE/DEQUANTIZE around them.

Two settings differ from ai-edge-quantizer's ``static_wi8_ai8`` recipe, both measured on the zoo:
- ranges are the global min/max over the calibration samples, not its default moving average
  (smoothing 0.95), which leaves the last samples' extremes outside the range: clipped outputs
  missed parity by 11-21 % of the output's range on 6 of 8 models;
- BATCH_MATMUL weights are per tensor: per channel, they were scaled along the wrong axis (cosine
  0.15 on a ViT).
``keep_float`` names tensors whose producing ops stay float (mixed precision).

The quantizer runs in a spawned child process: calibration and quantization run LiteRT's native
kernels on the model, and a native abort there (seen once, on a GPT-2 whose shape arithmetic was
not folded) would otherwise kill the whole build.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UnsupportedError
from ..quiet import quiet

if TYPE_CHECKING:
    from ..passes.quantize import Repair

# what the search needs in the child: the checks, the golden feeds (signature names, one model
# batch each), manifest output -> signature output, and the evaluation feeds for the budget
RepairJob = tuple["Repair", list[dict[str, np.ndarray]], dict[str, str], list[dict[str, np.ndarray]] | None]

WHERE = "tflite (ai-edge-quantizer)"


def quantizer_version() -> str:
    """ai-edge-quantizer's version, or UnsupportedError saying how to install it."""
    try:
        return metadata.version("ai-edge-quantizer")
    except metadata.PackageNotFoundError:
        raise UnsupportedError("int8 static TFLite from an ONNX model needs ai-edge-quantizer, which is not "
                               "installed", where=WHERE,
                               hint="pip install ai-edge-quantizer (or edgepack[tensorflow])") from None


Quantized = tuple[bytes, "dict[str, Any] | None", list[str], "dict[str, Any] | None"]


def quantize_static(float_model: bytes, rows: Iterable[Mapping[str, np.ndarray]], *, per_channel: bool,
                    int8_io: bool, repair: RepairJob | None = None,
                    table_feeds: list[dict[str, np.ndarray]] | None = None) -> Quantized:
    """``float_model`` with int8 weights and activations, calibrated on ``rows`` (one feed each, by
    the serving signature's input names). ``int8_io``: float inputs and outputs become int8 with
    their scale and zero point (the runtime quantizes feeds and dequantizes results); else they
    stay float32. With ``repair`` (what to check, the golden feeds by signature name, manifest
    output -> signature output), the mixed-precision search runs too: its record and notes. With
    ``table_feeds`` (golden feeds by signature name), the per-op table of the int8 model made
    against the float one (``diagnose.tflite_tensors``): the build shows it when parity fails.

    All of it runs in one spawned child: calibration, quantization and every run of an int8 model
    go through LiteRT's native kernels, and a native abort there (XNNPACK aborted running an
    exported GPT-2's int8 model) would otherwise kill the build. The int8 model is run once there
    as the runtime runs it, so the build's own checks do not meet that abort."""
    quantizer_version()
    samples = [dict(row) for row in rows]
    if not samples:
        raise UnsupportedError("int8 static quantization got no calibration samples", where=WHERE,
                               hint="add calibration: to the manifest")
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)  # a pipe, no semaphore for a dead child to leak
    child = context.Process(target=_child, args=(send, float_model, samples, per_channel, int8_io, repair,
                                                 table_feeds))
    child.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:  # the child died without an answer
        child.join()
        what = "the mixed-precision search" if repair else "quantization or a first run of the int8 model"
        raise UnsupportedError(f"LiteRT crashed natively in {what} (the quantizer's process died"
                               f"{_signal(child.exitcode)})", where=WHERE,
                               hint="use an onnx int8 candidate for this model") from None
    finally:
        receive.close()
    child.join()
    if status == "error":
        raise value
    return value


def _thread_lock_for_progress_bars() -> None:
    """tqdm (the calibrator's progress bar) otherwise takes a multiprocessing lock, a semaphore
    that a natively crashed child leaves to the resource tracker's shutdown warning."""
    import threading
    try:
        import tqdm
    except ImportError:
        return
    tqdm.tqdm.set_lock(threading.RLock())


def _signal(code: int | None) -> str:
    return f", signal {-code}" if code is not None and code < 0 else ""


def _child(send: Any, *args: Any) -> None:
    """The child's entry: ``_work``'s result or its error (ours, or the quantizer's as ours) back."""
    try:
        _thread_lock_for_progress_bars()
        send.send(("ok", _work(*args)))
    except UnsupportedError as exc:
        send.send(("error", exc))
    except Exception as exc:  # the quantizer's and LiteRT's errors: ValueError, RuntimeError, ...
        send.send(("error", UnsupportedError(f"int8 quantization with ai-edge-quantizer failed: {type(exc).__name__}: "
                                             f"{_first_line(exc)}", where=WHERE,
                                             hint="use an onnx int8 candidate for this model")))
    finally:
        send.close()


def _work(float_model: bytes, samples: list[dict[str, np.ndarray]], per_channel: bool, int8_io: bool,
          repair: RepairJob | None, table_feeds: list[dict[str, np.ndarray]] | None) -> Quantized:
    """quantize_static's work, in the child process."""
    from ..diagnose.tflite_tensors import smoke_run

    def quantize(keep: list[str]) -> bytes:
        model = _quantize(float_model, samples, per_channel, int8_io, tuple(keep))
        smoke_run(model, samples[0])
        return model

    record: dict[str, Any] | None = None
    notes: list[str] = []
    if repair is None:
        made = quantize([])
    else:
        made, record, notes = repaired(float_model, quantize, *repair)
    return made, record, notes, per_op_table(float_model, made, table_feeds) if table_feeds else None


def per_op_table(float_model: bytes, int8_model: bytes, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The ranked per-op table (top rows) of ``int8_model`` against ``float_model``, or why not."""
    from ..diagnose.onnx_nodes import summary
    from ..diagnose.tflite_tensors import localise
    try:
        rows = localise(float_model, int8_model, feeds)
    except Exception as exc:  # a diagnosis: its failure must not hide the candidate's own result
        return {"error": f"{type(exc).__name__}: {_first_line(exc)}"}
    return summary(rows, "ops")


def _quantize(float_model: bytes, samples: list[dict[str, np.ndarray]], per_channel: bool, int8_io: bool,
              keep_float: tuple[str, ...]) -> bytes:
    """One quantization with ``keep_float`` left float."""
    from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.recipe import AlgorithmName
    from ai_edge_quantizer.utils import qsv_utils
    ops = qtyping.TFLOperationName
    manager = recipe_manager.RecipeManager()
    weights = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    manager.add_static_config(regex=".*", operation_name=ops.ALL_SUPPORTED, activation_num_bits=8,
                              weight_num_bits=8, weight_granularity=weights)
    manager.add_static_config(regex=".*", operation_name=ops.BATCH_MATMUL, activation_num_bits=8,
                              weight_num_bits=8, weight_granularity=qtyping.QuantGranularity.TENSORWISE)
    if not int8_io:
        for edge in (ops.INPUT, ops.OUTPUT):
            manager.add_quantization_config(regex=".*", operation_name=edge, algorithm_key=AlgorithmName.NO_QUANTIZE)
    for name in keep_float:  # later scopes win over ".*"; an op's scope is "out1;out2;"
        manager.add_quantization_config(regex=f"(^|;){re.escape(name)};", operation_name=ops.ALL_SUPPORTED,
                                        algorithm_key=AlgorithmName.NO_QUANTIZE)
    try:
        with quiet("absl", "ai_edge_quantizer"):
            qt = quantizer.Quantizer(float_model)
            qt.load_quantization_recipe(manager.get_quantization_recipe())
            calib = calibrator.Calibrator(float_model, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
            calib.calibrate({_signature(float_model): samples}, qt._recipe_manager)  # noqa: SLF001 (the recipe just loaded)
            quantized: Any = qt.quantize(calib.get_model_qsvs()).quantized_model
    except UnsupportedError:
        raise
    except Exception as exc:  # the quantizer's and LiteRT's errors: ValueError, RuntimeError, ...
        raise UnsupportedError(f"ai-edge-quantizer cannot quantize this model: {type(exc).__name__}: "
                               f"{_first_line(exc)}", where=WHERE,
                               hint="use an onnx int8 candidate for this model") from None
    return bytes(quantized)


def _signature(model: bytes) -> str:
    """The serving signature's key (the runtime's choice too)."""
    from ai_edge_litert.interpreter import Interpreter
    keys = list(Interpreter(model_content=model).get_signature_list() or {})
    if not keys:
        raise UnsupportedError("the float TFLite model has no signature to calibrate through", where=WHERE,
                               hint="use an onnx int8 candidate for this model")
    return "serving_default" if "serving_default" in keys else keys[0]


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "no message")[:300]


def repaired(float_model: bytes, quantize: Callable[[list[str]], bytes], repair: Repair,
             feeds: list[dict[str, np.ndarray]], outputs: dict[str, str],
             budget_feeds: list[dict[str, np.ndarray]] | None = None
             ) -> tuple[bytes, dict[str, Any] | None, list[str]]:
    """The mixed-precision search (``quantization.fallback: mixed``) on the golden ``feeds``
    (signature names, one model batch each) against the float TFLite model's own outputs: the
    int8 model, its ``mixed`` record and notes. ``outputs``: manifest name -> signature name."""
    from runtime.compare import compare

    from ..diagnose import search
    from ..diagnose.tflite_tensors import localise, op_count, run
    from ..passes.quantize import with_budget
    reference = run(float_model, feeds, outputs)

    def check(model: bytes) -> Any:
        report = compare(reference, run(model, feeds, outputs), repair.tolerances, scores=repair.scores)
        budget = repair.budget
        if budget is None or budget_feeds is None:
            return report
        return with_budget(report, lambda: budget.miss(run(model, budget_feeds, outputs)))

    mixed = search(op_count(float_model), quantize, check, lambda m: localise(float_model, m, feeds))
    record: dict[str, Any] = {"passed": mixed.passed, "kept_float_added": mixed.kept, "rounds": mixed.trace,
                              **({"why": mixed.why, "worst": [r.to_dict() for r in mixed.worst]}
                                 if not mixed.passed else {})}
    if mixed.passed and mixed.kept:
        notes = [f"mixed precision: {len(mixed.kept)} op(s) kept in float until parity held "
                 f"({', '.join(mixed.kept)}); {len(mixed.trace)} quantization round(s)"]
    elif mixed.passed:
        notes = ["mixed precision: parity held with every op int8 (nothing kept in float)"]
    else:
        notes = [f"mixed precision did not pass: {mixed.why}; kept in float: "
                 f"{', '.join(mixed.kept) or 'none'}"]
    return mixed.model, record, notes
