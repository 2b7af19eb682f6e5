"""TensorFlow / Keras -> ONNX with tf2onnx (the input layout stays as in the model, usually NHWC)."""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import onnx

from ..errors import ConversionError
from ..sources.tf_source import TensorFlowSource, import_tf


def tf_to_onnx(source: TensorFlowSource, opset: int) -> tuple[onnx.ModelProto, str]:
    """Convert with tf2onnx; inputs and outputs carry the manifest's names."""
    tf = import_tf()
    try:
        import tf2onnx
    except ImportError:
        raise ConversionError("TensorFlow -> ONNX needs tf2onnx, which is not installed", where="onnx",
                              hint="pip install 'edgepack[tensorflow]'") from None
    m = source.manifest
    specs = source.signature.structured_input_signature[1]
    input_signature = [tf.TensorSpec(specs[s.name].shape, specs[s.name].dtype, name=s.name) for s in m.inputs]
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if source.keras_model is not None:
                model, _ = tf2onnx.convert.from_keras(source.keras_model, input_signature=input_signature,
                                                      opset=opset)
                how = f"tf2onnx {tf2onnx.__version__} (from_keras)"
            else:
                model, _ = tf2onnx.convert.from_function(source.signature, input_signature=input_signature,
                                                         opset=opset)
                how = f"tf2onnx {tf2onnx.__version__} (from_function on serving_default)"
    except Exception as exc:
        raise ConversionError(f"tf2onnx failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              where="onnx", hint="use a tflite candidate for this model") from None
    _rename_outputs(model, [o.name for o in m.outputs])
    return model, how


def _rename_outputs(model: Any, wanted: list[str]) -> None:
    """Give graph outputs the manifest's names (tf2onnx keeps TF's, e.g. output_0 or Identity:0)."""
    outs = [o.name for o in model.graph.output]
    if outs == wanted:
        return
    if len(outs) != len(wanted):
        raise ConversionError(f"tf2onnx produced outputs {outs}, expected {len(wanted)}", where="onnx")
    mapping = dict(zip(outs, wanted))
    for node in model.graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name in mapping:
                    names[i] = mapping[name]
    for o in model.graph.output:
        o.name = mapping[o.name]
