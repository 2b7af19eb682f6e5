"""TensorFlow / Keras sources: a SavedModel folder, a .keras file, or an entry point returning a
Keras model. The serving signature is checked against the manifest's inputs and outputs."""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config.manifest import Manifest
from ..errors import SourceError
from ..inputs.entrypoints import call_entry
from .tf_io import export_saved_model, import_tf, load_keras_file, serving_signature


def _hash_tree(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if f != path else b"")
        h.update(f.read_bytes())
    return h.hexdigest()


@dataclass
class TensorFlowSource:
    """A model with a serving signature; ``saved_model`` is a folder every converter can read."""

    manifest: Manifest
    saved_model: Path
    signature: Any
    input_keys: dict[str, str]    # manifest input name -> signature input key
    output_keys: dict[str, str]   # manifest output name -> signature output key
    sha256: str
    keras_model: Any = None
    framework: str = "tensorflow"
    _tmp: Any = field(default=None, repr=False)
    _loaded: Any = field(default=None, repr=False)  # the loaded trackable, kept alive while the signature is used

    @property
    def cache_key(self) -> str:
        """Weights and graph: a Keras model's config joins its weights' hash."""
        config = self.keras_model.to_json() if self.keras_model is not None else ""
        return hashlib.sha256(f"{self.sha256}|{config}".encode()).hexdigest()

    @property
    def description(self) -> str:
        s = self.manifest.source
        return f"tensorflow {'entry ' + s.entry if s.entry else 'file ' + str(s.path)}"

    @classmethod
    def load(cls, manifest: Manifest) -> TensorFlowSource:
        import_tf()  # first: a missing TensorFlow is the error users see, before the entry point runs
        src = manifest.source
        where = f"{manifest.file}: source"
        keras_model, tmp = None, None
        if src.entry:
            keras_model = call_entry(src.entry, manifest.base_dir, SourceError, f"{where}.entry", **src.kwargs)
            if not hasattr(keras_model, "export"):
                raise SourceError(f"{src.entry} returned {type(keras_model).__name__}, not a Keras model",
                                  where=f"{where}.entry", hint="return a keras.Model with its weights")
        else:
            path = src.path
            assert path is not None
            if not path.exists():
                raise SourceError(f"{path} not found", where=f"{where}.path",
                                  hint="give a SavedModel folder or a .keras file (relative to the manifest)")
            if path.is_file():
                if path.suffix != ".keras":
                    raise SourceError(f"{path.name} is not a .keras file or a SavedModel folder",
                                      where=f"{where}.path")
                keras_model = load_keras_file(path, f"{where}.path")
        if keras_model is not None:
            tmp = tempfile.TemporaryDirectory(prefix="edgepack-savedmodel-")
            saved = Path(tmp.name) / "saved_model"
            export_saved_model(keras_model, saved, where)
            digest = _hash_tree(Path(src.path)) if src.path else _weights_sha256(keras_model)
        else:
            saved = src.path  # type: ignore[assignment]
            digest = _hash_tree(saved)
        loaded, signature = serving_signature(saved, f"{where}.path")
        in_keys, out_keys = check_signature(signature, manifest, keras_model)
        source = cls(manifest=manifest, saved_model=Path(saved), signature=signature, input_keys=in_keys,
                     output_keys=out_keys, sha256=digest, keras_model=keras_model, _tmp=tmp, _loaded=loaded)
        return source

    def reference(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = import_tf()
        kwargs = {self.input_keys[s.name]: tf.constant(feeds[s.name]) for s in self.manifest.inputs}
        try:
            result = self.signature(**kwargs)
        except Exception as exc:
            raise SourceError(f"running the TensorFlow model failed: {str(exc).splitlines()[0]}",
                              where=f"{self.manifest.file}: inputs") from None
        return {o.name: result[self.output_keys[o.name]].numpy() for o in self.manifest.outputs}


def _weights_sha256(model: Any) -> str:
    h = hashlib.sha256()
    for w in model.weights:
        h.update(w.path.encode() if hasattr(w, "path") else b"")
        h.update(np.asarray(w.numpy()).tobytes())
    return h.hexdigest()


def check_signature(signature: Any, manifest: Manifest,
                    keras_model: Any = None) -> tuple[dict[str, str], dict[str, str]]:
    """Match the serving signature to the manifest: inputs by name, outputs by name or order."""
    where = f"{manifest.file}: inputs"
    specs = signature.structured_input_signature[1]
    for s in manifest.inputs:
        if s.name not in specs:
            raise SourceError(f"the model's serving signature has no input {s.name!r} (it has {sorted(specs)})",
                              where=where, hint="use the model's input names in the manifest")
        spec = specs[s.name]
        if spec.dtype.name != s.dtype:
            raise SourceError(f"input {s.name!r} is {spec.dtype.name} in the model, {s.dtype} in the manifest",
                              where=where, hint=f"set dtype: {spec.dtype.name}")
        dims = spec.shape.as_list()
        if s.shape is not None and len(dims) != len(s.shape):
            raise SourceError(f"input {s.name!r} has rank {len(dims)} in the model {dims}, {len(s.shape)} "
                              f"in the manifest {list(s.shape)}", where=where,
                              hint="TensorFlow models are usually NHWC: [batch, height, width, channels]")
        for axis, (want, have) in enumerate(zip(s.shape or (), dims, strict=False)):
            if isinstance(want, int) and have is not None and want != have:
                raise SourceError(f"input {s.name!r} axis {axis} is {have} in the model, {want} in the manifest",
                                  where=where, hint=f"the model's shape is {dims}")
    extra = sorted(set(specs) - {s.name for s in manifest.inputs})
    if extra:
        raise SourceError(f"the model has input(s) {extra} the manifest does not list", where=where)
    outs = list(signature.structured_outputs)
    names = [o.name for o in manifest.outputs]
    ins = {s.name: s.name for s in manifest.inputs}
    if set(names) <= set(outs):
        return ins, {n: n for n in names}
    # Keras exports name the signature's outputs output_0, output_1, ... in the model's output order
    model_names = list(getattr(keras_model, "output_names", None) or [])
    if model_names and set(names) <= set(model_names):
        keys = {n: f"output_{model_names.index(n)}" for n in names}
        if set(keys.values()) <= set(outs):
            return ins, keys
    if len(outs) == len(names) == 1:
        return ins, {names[0]: outs[0]}
    shown = model_names or outs
    raise SourceError(f"the manifest's outputs {names} do not name the model's outputs {shown}",
                      where=f"{manifest.file}: outputs",
                      hint=f"list outputs by the model's own names: {shown}")
