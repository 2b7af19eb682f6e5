"""TensorFlow / Keras -> ONNX with tf2onnx (the input layout stays as in the model, usually NHWC)."""
from __future__ import annotations

from typing import Any

import onnx

from ..errors import ConversionError, not_installed
from ..onnx_utils import canonical_names, rename_outputs, set_input_dims
from ..quiet import quiet
from ..sources.tf_io import import_tf
from ..sources.tf_source import TensorFlowSource


def tf_to_onnx(source: TensorFlowSource, opset: int) -> tuple[onnx.ModelProto, str]:
    """Convert the serving signature with tf2onnx; inputs and outputs carry the manifest's names.

    Keras models and SavedModels take the same route (the source's SavedModel signature), so one
    name mapping serves both; names tf2onnx invents are then made deterministic.
    """
    tf = import_tf()
    try:
        import tf2onnx
    except ImportError:
        raise not_installed("TensorFlow -> ONNX", "tf2onnx", "tensorflow", cls=ConversionError, where="onnx") from None
    m = source.manifest
    specs = source.signature.structured_input_signature[1]
    keys = [source.input_keys[s.name] for s in m.inputs]
    input_signature = [tf.TensorSpec(specs[k].shape, specs[k].dtype, name=s.name)
                       for k, s in zip(keys, m.inputs, strict=True)]
    signature = source.signature

    @tf.function(input_signature=input_signature)
    def serving(*args: Any) -> Any:
        return signature(**dict(zip(keys, args, strict=True)))

    try:
        with quiet("tensorflow", "tf2onnx"):
            model, _ = tf2onnx.convert.from_function(serving, input_signature=input_signature, opset=opset)
    except Exception as exc:
        raise ConversionError(f"tf2onnx failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              where="onnx", hint="use a tflite candidate for this model") from None
    rename_outputs(model, {source.output_keys[o.name]: o.name for o in m.outputs})
    set_input_dims(model, {s.name: s.shape for s in m.inputs})
    canonical_names(model)
    return model, f"tf2onnx {tf2onnx.__version__}"
