"""TensorFlow -> TFLite with tf.lite.TFLiteConverter from the source's SavedModel.

Precisions: fp32; fp16 (float16 weights); int8 dynamic range (int8 weights); full int8 with a
representative dataset of real calibration samples, with float or int8 input/output as the
target asks (the runtime quantizes/dequantizes int8 I/O with each tensor's scale/zero point).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ConversionError
from ..quiet import quiet
from ..sources.tf_io import import_tf
from ..sources.tf_source import TensorFlowSource
from . import TFLiteArtifact
from .tflite_io import with_io_dtypes


def to_tflite(source: TensorFlowSource, *, precision: str, mode: str | None, io: str,
              calibration: list[dict[str, np.ndarray]] | None, random_data: bool) -> TFLiteArtifact:
    """Convert the source's SavedModel at ``precision`` (``mode`` static/dynamic for int8)."""
    tf = import_tf()
    conv = tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model))
    details: dict[str, Any] = {"converter": f"tf.lite.TFLiteConverter {tf.__version__}", "io": "float32"}
    notes: list[str] = []
    if precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
        details["weights"] = "float16"
    elif precision == "int8" and mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        details["weights"] = "int8 (dynamic range)"
    elif precision == "int8":
        if not calibration:
            raise ConversionError("full int8 TFLite needs calibration data", where="tflite int8",
                                  hint="add calibration: to the manifest")
        keys = source.input_keys

        def representative() -> Iterator[dict[str, np.ndarray]]:
            for feed in calibration:
                n = len(next(iter(feed.values())))
                for i in range(n):  # one sample at a time, as the converter expects
                    yield {keys[name]: value[i:i + 1] for name, value in feed.items()}

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
            details["io"] = "int8 (quantized by the runtime)"
        details.update(weights="int8", activations="int8", calibration_samples=sum(
            len(next(iter(f.values()))) for f in calibration))
        if random_data:
            notes.append("calibrated on RANDOM data (manifest asked for random: true)")
    try:
        with quiet("tensorflow"):
            data = conv.convert()
    except Exception as exc:
        first = next((line for line in str(exc).splitlines() if "error" in line.lower()), str(exc).splitlines()[0])
        raise ConversionError(f"TFLite conversion ({precision}{' ' + mode if mode else ''}) failed: {first}",
                              where="tflite", hint="the model may use an op TFLite cannot express; "
                                                   "use an onnx candidate for it") from None
    if precision == "int8" and not _has_int8_tensors(data):
        raise ConversionError("int8 quantization changed nothing: TFLite only quantizes weight tensors "
                              "with 1024 or more elements, and this model has none", where="tflite",
                              hint="use an fp32/fp16 TFLite candidate or int8 static for this model")
    io_map, dtype_notes = with_io_dtypes(data, {"inputs": dict(source.input_keys),
                                                "outputs": dict(source.output_keys)}, source.manifest)
    return TFLiteArtifact(data=data, io_map=io_map, details=details, notes=notes + dtype_notes)


def _has_int8_tensors(data: bytes) -> bool:
    """Whether a converted flatbuffer holds any int8 tensor (i.e. quantization did something)."""
    tf = import_tf()
    with quiet("tensorflow"):  # tf.lite.Interpreter warns that LiteRT replaces it; reading types is fine
        details = tf.lite.Interpreter(model_content=data).get_tensor_details()
    return any(np.dtype(d["dtype"]) in (np.int8, np.uint8) for d in details)
