"""The signature of a TensorFlow model, read from its ``serving_default`` signature.

A SavedModel folder is loaded as it is; a ``.keras`` file or a Keras model object (from an entry
point) is exported to a temporary SavedModel first, so all three are read the same way. Outputs of a
Keras model keep the model's own output names and order.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..config.manifest import DTYPES
from ..errors import SourceError
from .signature import (
    SUPPORTED_DTYPES,
    Inferred,
    Tensor,
    choose_batch,
    guess_layout,
    model_name,
    name_dims,
    natural_key,
)


def _serving_signature(model: str, path: Path | None, keras_model: Any) -> tuple[dict[str, Any], Any, Any]:
    """(input specs by name in natural order, output specs as the signature has them, the Keras model)."""
    from ..sources.tf_io import export_saved_model, load_keras_file, serving_signature
    tmp = None
    try:
        if path is not None and path.is_file():  # .keras
            keras_model = load_keras_file(path, model)
        saved = path
        if keras_model is not None:
            tmp = tempfile.TemporaryDirectory(prefix="edgepack-init-")
            saved = Path(tmp.name) / "saved_model"
            export_saved_model(keras_model, saved, model)
        assert saved is not None
        _loaded, signature = serving_signature(saved, model)
        in_specs = {k: v for k, v in sorted(signature.structured_input_signature[1].items(),
                                            key=lambda kv: natural_key(kv[0]))}
        return in_specs, signature.structured_outputs, keras_model
    finally:
        if tmp is not None:
            tmp.cleanup()


def _dims_of(spec: Any) -> list[Any] | None:
    return None if spec.shape.rank is None else list(spec.shape.as_list())


def infer_tensorflow(model: str, path: Path | None, keras_model: Any, batch_dim: str | None,
                     fixed_batch: bool) -> Inferred:
    """The signature of the SavedModel folder or .keras file ``path``, or of ``keras_model`` (path None)."""
    in_specs, out_specs, keras_model = _serving_signature(model, path, keras_model)

    def dtype(name: str, spec: Any) -> str:
        if spec.dtype.name not in DTYPES:
            raise SourceError(f"tensor {name!r} is {spec.dtype.name}, which edgepack does not handle",
                              where=model, hint=SUPPORTED_DTYPES)
        return str(spec.dtype.name)

    if not in_specs:
        raise SourceError("the serving signature has no named inputs", where=model,
                          hint="export the model with a serving signature of named tensors")
    for n, spec in in_specs.items():
        if _dims_of(spec) is None:
            raise SourceError(f"input {n!r} has an unknown rank in the serving signature", where=model,
                              hint="give the model's Input a shape, e.g. keras.Input(shape=(224, 224, 3))")
    batch, notes = choose_batch({n: _dims_of(s) for n, s in in_specs.items()}, model, batch_dim, fixed_batch)
    params: dict[str, str] = {}
    inputs = []
    for n, spec in in_specs.items():
        shape = name_dims(_dims_of(spec) or [], n, batch=batch, fixed_batch=fixed_batch, batch_params=set(),
                          params=params, is_input=True)
        inputs.append(Tensor(n, dtype(n, spec), shape, guess_layout("tensorflow", shape)))
    if not isinstance(out_specs, dict):
        out_specs = {f"output_{i}": s for i, s in enumerate(out_specs if isinstance(out_specs, (list, tuple))
                                                              else [out_specs])}
    keys = sorted(out_specs, key=natural_key)  # the signature's dict order is not stable across loads
    names = list(keys)
    model_names = list(getattr(keras_model, "output_names", None) or []) if keras_model is not None else []
    if model_names and set(keys) == {f"output_{i}" for i in range(len(model_names))}:
        keys = [f"output_{i}" for i in range(len(model_names))]   # Keras order: output_i is output i
        names = model_names
    outputs = []
    for n, key in zip(names, keys, strict=True):
        dims = _dims_of(out_specs[key])
        out_shape = None if dims is None else name_dims(dims, n, batch=batch, fixed_batch=fixed_batch,
                                                        batch_params=set(), params=params, is_input=False)
        outputs.append(Tensor(n, dtype(n, out_specs[key]), out_shape))
    if path is not None:
        p = path.resolve()
        return Inferred(framework="tensorflow", entry=None, path=p, base=p.parent, kwargs={},
                        inputs=inputs, outputs=outputs, batch=batch, default_name=model_name(p.stem),
                        default_dir=p.parent, description=f"{p.name} ({'Keras' if p.is_file() else 'SavedModel'})",
                        notes=notes)
    return Inferred(framework="tensorflow", entry=model, path=None, base=Path.cwd(), kwargs={},
                    inputs=inputs, outputs=outputs, batch=batch, default_name="model", default_dir=Path.cwd(),
                    description=f"Keras model {type(keras_model).__name__} ({model})", notes=notes)
