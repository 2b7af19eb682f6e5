"""What ``edgepack init`` learns from a model: which kind it is, and then its signature.

``infer_model`` takes the model argument as the user gave it (an ``.onnx`` file, a SavedModel folder,
a ``.keras`` file or an entry point ``file.py:function``) and hands it to the framework's module:
``infer_onnx`` and ``infer_tf`` read the signature the model states, ``infer_torch`` runs the model
on example inputs. Anything else is refused with a hint that says what to give instead.

Frameworks are imported inside the functions that need them; a missing one is a SourceError that
names the pip extra (the same errors the sources raise).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import EdgepackError, SourceError
from .dynamic_axes import AxisSpec, parse_dynamic
from .infer_onnx import infer_onnx
from .infer_tf import infer_tensorflow
from .infer_torch import infer_torch
from .signature import ENTRY_RE, RETURN_THE_MODEL, SYMBOL_RE, Inferred, model_name

_GENERIC_STEMS = {"model", "models", "net", "network", "main", "train", "__init__", "build", "arch"}
_EXTRAS = {"torch": "torch", "tensorflow": "tensorflow", "keras": "tensorflow", "tf2onnx": "tensorflow"}

_WEIGHTS_HINT = ("a {ext} file holds weights (or a pickled/TorchScript model), not the code that builds "
                 "the model: write a function that builds the nn.Module and loads these weights, then run "
                 "edgepack init path/to/model.py:build_model --example-input 1x3x224x224")
_H5_HINT = ("load it with keras.models.load_model and save it as .keras (model.save('model.keras')), "
            "then run edgepack init model.keras")
_SUFFIX_HINTS = {
    ".pt": _WEIGHTS_HINT, ".pth": _WEIGHTS_HINT, ".ckpt": _WEIGHTS_HINT, ".bin": _WEIGHTS_HINT,
    ".safetensors": _WEIGHTS_HINT, ".pkl": _WEIGHTS_HINT,
    ".h5": _H5_HINT, ".hdf5": _H5_HINT,
    ".tflite": "a .tflite file is already a device format: give the model it came from (ONNX, "
               "Keras/SavedModel or a torch entry point); edgepack converts and checks it per target",
    ".pb": "give the SavedModel folder (the one holding saved_model.pb and variables/); a frozen graph "
           ".pb is not supported",
    ".py": "add the function that returns the model: path/to/file.py:build_model",
}
_ACCEPTED = ("give an .onnx file, a SavedModel folder, a .keras file, or a torch entry point "
             "path/to/file.py:function (or package.module:function) returning the model")


# -- the model argument ----------------------------------------------------------------------------

def infer_model(model: str, *, example_inputs: Sequence[str] = (), batch_dim: str | None = None,
                fixed_batch: bool = False, kwargs: dict[str, Any] | None = None,
                cwd: Path | None = None, dynamic: Sequence[str] = (), static_axes: bool = False) -> Inferred:
    """Load ``model`` (file, folder or entry point) and infer its signature."""
    cwd = (cwd or Path.cwd()).resolve()
    axes = parse_dynamic(dynamic)
    kwargs = dict(kwargs or {})
    if batch_dim is not None and not SYMBOL_RE.match(batch_dim):
        raise SourceError(f"--batch-dim {batch_dim!r} is not a symbol", where="--batch-dim",
                          hint="use a name like batch or N (letters, digits, _; not starting with a digit)")
    full = Path(model) if Path(model).is_absolute() else cwd / model
    if not full.exists() and ENTRY_RE.match(model):
        return _infer_entry(model, cwd, example_inputs, batch_dim, fixed_batch, kwargs, axes, static_axes)
    if axes:
        raise SourceError("--dynamic is for torch entry points: this model states its own signature, "
                          "dynamic axes included", where="--dynamic",
                          hint="export the model with the axes dynamic, or give its torch entry point")
    if not full.exists():
        suffix = Path(model.split(":")[0]).suffix.lower()
        raise SourceError(f"not found (looked at {full})", where=model,
                          hint=_SUFFIX_HINTS[".py"] if suffix == ".py" and ":" not in model else
                          f"check the path (relative to the current folder); {_ACCEPTED}")
    if full.is_file() and full.name == "saved_model.pb":
        full = full.parent
    if kwargs:
        raise SourceError("--kwarg applies to an entry point only", where="--kwarg",
                          hint=f"{model} is a file: drop --kwarg")
    if example_inputs and (full.is_dir() or full.suffix.lower() in (".onnx", ".keras")):
        _refuse_examples(example_inputs, "ONNX" if full.suffix.lower() == ".onnx" else "TensorFlow")
    if full.is_dir():
        if not (full / "saved_model.pb").is_file():
            raise SourceError(f"folder {model} is not a SavedModel (it has no saved_model.pb)", where=model,
                              hint="give a SavedModel folder (tf.saved_model.save or model.export(folder)), "
                                   f"or: {_ACCEPTED}")
        return infer_tensorflow(model, full, None, batch_dim, fixed_batch)
    suffix = full.suffix.lower()
    if suffix == ".onnx":
        return infer_onnx(model, full, batch_dim, fixed_batch)
    if suffix == ".keras":
        return infer_tensorflow(model, full, None, batch_dim, fixed_batch)
    if suffix == ".py":
        raise SourceError("a .py file needs the name of the function that returns the model", where=model,
                          hint=f"give {model}:build_model (your function's name after the colon; it returns "
                               "the model with its trained weights)")
    if suffix in _SUFFIX_HINTS:
        raise SourceError(f"edgepack init does not take {suffix} files", where=model,
                          hint=_SUFFIX_HINTS[suffix].format(ext=suffix))
    raise SourceError(f"unknown kind of model file ({suffix or 'no extension'})", where=model, hint=_ACCEPTED)


def _refuse_examples(example_inputs: Sequence[str], framework: str) -> None:
    if example_inputs:
        article = "an" if framework[0] in "AEIOU" else "a"
        raise SourceError(f"--example-input is for torch entry points; this is {article} {framework} model that "
                          "states its own signature", where="--example-input",
                          hint="drop --example-input (use --batch-dim/--fixed-batch for the batch axis)")


# -- an entry point: call it, then infer as its model's framework -----------------------------------

def _missing_framework(exc: EdgepackError) -> EdgepackError:
    """An entry point whose file cannot import torch/tensorflow: name the pip extra."""
    cause = exc.__cause__
    name = (getattr(cause, "name", None) or "").split(".")[0] if isinstance(cause, ModuleNotFoundError) else ""
    if name in _EXTRAS:
        return SourceError(f"{exc.message}: {name} is not installed", where=exc.where,
                           hint=f"pip install 'edgepack[{_EXTRAS[name]}]'")
    return exc


def _framework_of(obj: Any) -> str | None:
    for cls in type(obj).__mro__:
        mod = getattr(cls, "__module__", "") or ""
        if mod == "torch" or mod.startswith("torch."):
            return "torch"
        if mod.split(".")[0] in ("keras", "tensorflow", "tf_keras"):
            return "tensorflow"
    return None


def _infer_entry(entry: str, cwd: Path, example_inputs: Sequence[str], batch_dim: str | None,
                 fixed_batch: bool, kwargs: dict[str, Any], axes: Sequence[AxisSpec] = (),
                 static_axes: bool = False) -> Inferred:
    from ..inputs.entrypoints import call_entry
    module_ref = entry.rpartition(":")[0]
    try:  # a Keras entry point: import TensorFlow quietly first, as the TensorFlow source does
        code = (cwd / module_ref).read_text(encoding="utf-8", errors="replace") if module_ref.endswith(".py") else ""
    except OSError:
        code = ""
    if re.search(r"^\s*(import|from)\s+(tensorflow|keras)\b", code, re.MULTILINE):
        from ..sources.tf_io import import_tf
        try:
            import_tf()
        except SourceError:
            pass  # the entry's own import reports it, with the extra named
    try:
        obj = call_entry(entry, cwd, SourceError, entry, **kwargs)
    except SourceError as exc:
        raise _missing_framework(exc) from exc.__cause__
    framework = _framework_of(obj)
    if framework == "tensorflow" and hasattr(obj, "export"):
        _refuse_examples(example_inputs, "Keras")
        if axes:
            raise SourceError("--dynamic is for torch models: a Keras model states its own signature "
                              "(None dims are symbolic)", where="--dynamic",
                              hint="build the Keras model with None for the axis, e.g. keras.Input((None,))")
        inferred = infer_tensorflow(entry, None, obj, batch_dim, fixed_batch)
        inferred.kwargs, inferred.base = kwargs, cwd
    elif framework == "torch":
        inferred = infer_torch(entry, cwd, obj, example_inputs, batch_dim, fixed_batch, kwargs, axes, static_axes)
    else:
        raise SourceError(f"{entry} returned {type(obj).__name__}, not a torch.nn.Module or a Keras model",
                          where=entry, hint=RETURN_THE_MODEL)
    inferred.default_name, inferred.default_dir = _entry_defaults(entry, cwd, obj)
    return inferred


def _entry_defaults(entry: str, cwd: Path, obj: Any) -> tuple[str, Path]:
    """Default model name and manifest folder of an entry point."""
    module_ref = entry.rpartition(":")[0]
    if module_ref.endswith(".py") or "/" in module_ref:
        path = (cwd / module_ref).resolve()
        stem, folder = path.stem, path.parent
    else:
        stem, folder = module_ref.rpartition(".")[2], cwd
    cls = type(obj)
    own_class = _framework_of(obj) and (cls.__module__ or "").split(".")[0] not in ("torch", "keras", "tensorflow")
    if stem.lower() in _GENERIC_STEMS and own_class:
        stem = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", cls.__name__)
    elif stem.lower() in _GENERIC_STEMS and folder != cwd:
        stem = folder.name
    return model_name(stem), folder
