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

    how = f"tf2onnx {tf2onnx.__version__}"
    try:
        with quiet("tensorflow", "tf2onnx"):
            model, _ = tf2onnx.convert.from_function(serving, input_signature=input_signature, opset=opset)
            extra = [i.name for i in model.graph.input if i.name not in {s.name for s in m.inputs}]
            if extra:  # captured eager tensors (a Normalization layer's mean/variance) became inputs
                model = _frozen(tf, tf2onnx, serving, opset, [s.name for s in m.inputs])
                how += f" (graph frozen: {len(extra)} captured constant(s) would have been graph inputs)"
    except Exception as exc:
        raise ConversionError(f"tf2onnx failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              where="onnx", hint="use a tflite candidate for this model") from None
    rename_outputs(model, {source.output_keys[o.name]: o.name for o in m.outputs})
    set_input_dims(model, {s.name: s.shape for s in m.inputs})
    canonical_names(model)
    return model, how


def _frozen(tf: Any, tf2onnx: Any, serving: Any, opset: int, names: list[str]) -> onnx.ModelProto:
    """Convert ``serving`` with its variables and captured tensors folded into constants, so the
    ONNX graph has exactly the signature's inputs (tf2onnx's from_function turns captured eager
    tensors into inputs). Outputs keep the concrete function's structure and order."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    frozen = convert_variables_to_constants_v2(serving.get_concrete_function())
    ins = [t.name for t in frozen.inputs]
    if len(ins) != len(names):
        raise ConversionError(f"the frozen graph has inputs {ins}, the signature {names}", where="onnx")
    model, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=ins,
                                              output_names=[t.name for t in frozen.outputs], opset=opset)
    graph_inputs = {i.name: i for i in model.graph.input}
    for tf_name, name in zip(ins, names, strict=True):  # "x:0" -> "x", as from_function names them
        if tf_name in graph_inputs and tf_name != name:
            graph_inputs[tf_name].name = name
            for node in model.graph.node:
                node.input[:] = [name if i == tf_name else i for i in node.input]
    outputs = serving.get_concrete_function().structured_outputs
    if isinstance(outputs, dict):  # "Identity:0" -> the signature's output key, as from_function names them
        # a function's flat outputs are its structured outputs flattened (a dict: by sorted key)
        rename_outputs(model, dict(zip([t.name for t in frozen.outputs], sorted(outputs), strict=True)))
    return model
