"""`edgepack init MODEL`: infer a model's signature and write a starter manifest.

The manifest names the model's inputs and outputs as the model itself has them (ONNX graph,
TensorFlow serving signature, or one run of a torch model on example inputs), lists every target
the packager can find (one enabled, the others commented in), and leaves a recognisable placeholder
where real calibration data must go: ``REPLACE-ME/calibration.npz``. ``check_placeholders`` turns a
build or validate of an unfilled manifest into an error that says what to put there.

Frameworks are imported inside the functions that need them; a missing one is a SourceError that
names the pip extra (the same errors the sources raise).
"""
from __future__ import annotations

import inspect
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from . import __version__
from .errors import DataError, EdgepackError, SourceError
from .manifest import DTYPES, Manifest, parse_manifest
from .targets import available_targets, load_target, resolve_target_ref

PLACEHOLDER_DIR = "REPLACE-ME"
CALIBRATION_PLACEHOLDER = f"{PLACEHOLDER_DIR}/calibration.npz"
DEFAULT_BATCH = "batch"
DEFAULT_TARGET = "x86-cpu"
CALIBRATION_SAMPLES = 128
GOLDEN_SAMPLES = 32

_ENTRY_RE = re.compile(r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")       # what the manifest accepts as entry
_SYMBOL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")             # what the manifest accepts as a dim
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")                 # what the manifest accepts as name
_DIMS_SPEC_RE = re.compile(r"^(?:(?P<name>[A-Za-z_][A-Za-z0-9_.]*)=)?(?P<dims>\d+(?:x\d+)*)"
                           r"(?::(?P<dtype>[A-Za-z0-9]+))?$")
_GENERIC_STEMS = {"model", "models", "net", "network", "main", "train", "__init__", "build", "arch"}
_EXTRAS = {"torch": "torch", "tensorflow": "tensorflow", "keras": "tensorflow", "tf2onnx": "tensorflow"}

EXAMPLE_INPUT_HELP = (
    "--example-input 1x3x224x224 (dims joined by x, float32 unless ':int64' etc. follows; "
    "'name=1x3x224x224' names the input), once per forward() argument in order; or "
    "--example-input x.npy (one array per argument), --example-input inputs.npz (arrays keyed by "
    "input name), --example-input data.py:example (a function returning an array, a tuple of "
    "arrays or a dict name -> array)")

_WEIGHTS_HINT = ("a {ext} file holds weights (or a pickled/TorchScript model), not the code that builds "
                 "the model: write a function that builds the nn.Module and loads these weights, then run "
                 "edgepack init path/to/model.py:build_model --example-input 1x3x224x224")
_SUFFIX_HINTS = {
    ".pt": _WEIGHTS_HINT, ".pth": _WEIGHTS_HINT, ".ckpt": _WEIGHTS_HINT, ".bin": _WEIGHTS_HINT,
    ".safetensors": _WEIGHTS_HINT, ".pkl": _WEIGHTS_HINT,
    ".h5": "load it with keras.models.load_model and save it as .keras (model.save('model.keras')), "
           "then run edgepack init model.keras",
    ".hdf5": "load it with keras.models.load_model and save it as .keras (model.save('model.keras')), "
             "then run edgepack init model.keras",
    ".tflite": "a .tflite file is already a device format: give the model it came from (ONNX, "
               "Keras/SavedModel or a torch entry point); edgepack converts and checks it per target",
    ".pb": "give the SavedModel folder (the one holding saved_model.pb and variables/); a frozen graph "
           ".pb is not supported",
    ".py": "add the function that returns the model: path/to/file.py:build_model",
}
_ACCEPTED = ("give an .onnx file, a SavedModel folder, a .keras file, or a torch entry point "
             "path/to/file.py:function (or package.module:function) returning the model")


# -- the inferred signature ------------------------------------------------------------------------

@dataclass
class Tensor:
    """One input or output as it goes into the manifest."""

    name: str
    dtype: str
    shape: list[int | str] | None
    layout: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": self.shape}
        if self.layout:
            out["layout"] = self.layout
        return out


@dataclass
class Inferred:
    """What init learned about the model."""

    framework: str
    entry: str | None            # as given (resolved against ``base``)
    path: Path | None            # absolute model file or folder
    base: Path                   # the folder ``entry`` is resolved against
    kwargs: dict[str, Any]
    inputs: list[Tensor]
    outputs: list[Tensor]
    batch: str | None
    default_name: str
    default_dir: Path
    description: str
    notes: list[str] = field(default_factory=list)


@dataclass
class InitResult:
    """What ``init_manifest`` wrote (``path`` is '-' for stdout) and the rendered text."""

    path: str
    text: str
    name: str
    inferred: Inferred
    enabled: list[str]
    commented: list[str]
    placeholders: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        inf = self.inferred
        source: dict[str, Any] = {"framework": inf.framework}
        if inf.entry:
            source["entry"] = inf.entry
        if inf.path:
            source["path"] = str(inf.path)
        if inf.kwargs:
            source["kwargs"] = inf.kwargs
        out = {"manifest": self.path, "name": self.name, "source": source,
               "inputs": [t.to_dict() for t in inf.inputs], "outputs": [t.to_dict() for t in inf.outputs],
               "batch": inf.batch, "targets": {"enabled": self.enabled, "commented": self.commented},
               "placeholders": self.placeholders, "notes": inf.notes}
        if self.path == "-":
            out["yaml"] = self.text
        return out


# -- the model argument ----------------------------------------------------------------------------

def infer_model(model: str, *, example_inputs: Sequence[str] = (), batch_dim: str | None = None,
                fixed_batch: bool = False, kwargs: dict[str, Any] | None = None,
                cwd: Path | None = None) -> Inferred:
    """Load ``model`` (file, folder or entry point) and infer its signature."""
    cwd = (cwd or Path.cwd()).resolve()
    kwargs = dict(kwargs or {})
    if batch_dim is not None and not _SYMBOL_RE.match(batch_dim):
        raise SourceError(f"--batch-dim {batch_dim!r} is not a symbol", where="--batch-dim",
                          hint="use a name like batch or N (letters, digits, _; not starting with a digit)")
    full = Path(model) if Path(model).is_absolute() else cwd / model
    if not full.exists() and _ENTRY_RE.match(model):
        return _infer_entry(model, cwd, example_inputs, batch_dim, fixed_batch, kwargs)
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
        return _infer_tensorflow(model, full, None, batch_dim, fixed_batch)
    suffix = full.suffix.lower()
    if suffix == ".onnx":
        return _infer_onnx(model, full, batch_dim, fixed_batch)
    if suffix == ".keras":
        return _infer_tensorflow(model, full, None, batch_dim, fixed_batch)
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
                 fixed_batch: bool, kwargs: dict[str, Any]) -> Inferred:
    from .entrypoints import call_entry
    module_ref = entry.rpartition(":")[0]
    try:  # a Keras entry point: import TensorFlow quietly first, as the TensorFlow source does
        code = (cwd / module_ref).read_text(encoding="utf-8", errors="replace") if module_ref.endswith(".py") else ""
    except OSError:
        code = ""
    if re.search(r"^\s*(import|from)\s+(tensorflow|keras)\b", code, re.MULTILINE):
        from .sources.tf_source import import_tf
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
        inferred = _infer_tensorflow(entry, None, obj, batch_dim, fixed_batch)
        inferred.entry, inferred.kwargs, inferred.base = entry, kwargs, cwd
        inferred.default_name, inferred.default_dir = _entry_defaults(entry, cwd, obj)
        return inferred
    if framework != "torch":
        raise SourceError(f"{entry} returned {type(obj).__name__}, not a torch.nn.Module or a Keras model",
                          where=entry, hint="return the model object with its trained weights loaded")
    return _infer_torch(entry, cwd, obj, example_inputs, batch_dim, fixed_batch, kwargs)


def _entry_defaults(entry: str, cwd: Path, obj: Any) -> tuple[str, Path]:
    """Default model name and manifest folder of an entry point."""
    module_ref = entry.rpartition(":")[0]
    if module_ref.endswith(".py") or "/" in module_ref:
        path = (cwd / module_ref).resolve()
        stem, folder = path.stem, path.parent
    else:
        stem, folder = module_ref.rpartition(".")[2], cwd
    cls = type(obj)
    own_class = _framework_of(obj) and not (cls.__module__ or "").split(".")[0] in ("torch", "keras", "tensorflow")
    if stem.lower() in _GENERIC_STEMS and own_class:
        stem = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", cls.__name__)
    elif stem.lower() in _GENERIC_STEMS and folder != cwd:
        stem = folder.name
    return model_name(stem), folder


def model_name(text: str) -> str:
    """A manifest-valid name from a file stem or class name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    name = re.sub(r"-{2,}", "-", name)
    return name if name and _NAME_RE.match(name) else "model"


def _symbol(text: str) -> str:
    sym = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return sym if _SYMBOL_RE.match(sym) else f"d_{sym}"


def _natural(key: str) -> list[Any]:
    """Sort key: output_2 before output_10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _guess_layout(framework: str, shape: list[int | str] | None) -> str | None:
    if not shape or len(shape) != 4:
        return None
    if framework == "torch":
        return "NCHW"
    if framework == "tensorflow":
        return "NHWC"
    channels = (1, 2, 3, 4)
    if shape[1] in channels and shape[3] not in channels:
        return "NCHW"
    if shape[3] in channels and shape[1] not in channels:
        return "NHWC"
    return None


# -- ONNX and TensorFlow: the file states the signature ----------------------------------------------

def _name_dims(raw: list[Any], tensor: str, *, batch: str | None, fixed_batch: bool,
               batch_params: set[str], params: dict[str, str], is_input: bool) -> list[int | str]:
    """Manifest dims from a model's dims: ints stay, dynamic axes get a symbol (axis 0: the batch)."""
    dims: list[int | str] = []
    for axis, d in enumerate(raw):
        if isinstance(d, int) and d > 0:
            dims.append(d)
            continue
        param = d if isinstance(d, str) and d not in ("", "?") else None
        is_batch = axis == 0 and (is_input or param is None or param in batch_params)
        if is_batch and batch:
            dims.append(batch)
        elif is_batch and fixed_batch:
            dims.append(1)
        elif param is not None:
            dims.append(params.setdefault(param, _symbol(param)))
        else:
            dims.append(_symbol(f"{tensor}_dim{axis}"))
    return dims


def _choose_batch(ins: dict[str, list[Any] | None], model: str, batch_dim: str | None,
                  fixed_batch: bool) -> tuple[str | None, list[str]]:
    """The batch symbol for a model whose dims are known: its dynamic axis 0, or what was asked."""
    def dynamic0(dims: list[Any] | None) -> bool:
        return bool(dims) and not (isinstance(dims[0], int) and dims[0] > 0)

    notes: list[str] = []
    if fixed_batch:
        if any(dynamic0(d) for d in ins.values()):
            notes.append("axis 0 is dynamic in the model; --fixed-batch wrote 1 in the manifest")
        return None, notes
    if batch_dim is not None:
        fixed = [n for n, d in ins.items() if not dynamic0(d)]
        if fixed:
            shown = ", ".join(f"{n} {ins[n]}" for n in fixed)
            raise SourceError(f"--batch-dim: axis 0 of input(s) {shown} is fixed in the model, it cannot be "
                              "a symbolic batch dim", where=model,
                              hint="re-export the model with a dynamic first axis, or leave out --batch-dim")
        return batch_dim, notes
    if ins and all(dynamic0(d) for d in ins.values()):
        return DEFAULT_BATCH, notes
    if any(dynamic0(d) for d in ins.values()):
        notes.append("only some inputs have a dynamic axis 0, so there is no shared batch dim: every "
                     "sample is fed on its own")
    return None, notes


def _infer_onnx(model: str, path: Path, batch_dim: str | None, fixed_batch: bool) -> Inferred:
    from .onnx_utils import ONNX_DTYPES, graph_io, load_onnx
    onnx_model = load_onnx(path, model)
    ins, outs = graph_io(onnx_model)
    if any(dims is None or "?" in dims for _, dims in outs.values()):  # fill unknown output dims in
        import onnx
        try:
            _, found = graph_io(onnx.shape_inference.infer_shapes(onnx_model))
        except Exception:  # noqa: BLE001 - shapes stay unknown; the build observes them
            found = {}
        for n, (elem, dims) in list(outs.items()):
            more = found.get(n, (elem, None))[1]
            if more is not None and (dims is None or len(dims) == len(more)):
                outs[n] = (elem, more if dims is None else [m if d == "?" else d for d, m in zip(dims, more)])
    if not ins:
        raise SourceError(f"{path.name} has no inputs (every graph input is an initializer)", where=model,
                          hint="export the model with its real inputs as graph inputs")

    def dtype(name: str, elem: int) -> str:
        if elem not in ONNX_DTYPES:
            raise SourceError(f"tensor {name!r} has ONNX element type {elem}, which edgepack does not "
                              f"handle", where=model, hint=f"supported dtypes: {', '.join(DTYPES)}")
        return ONNX_DTYPES[elem]

    for n, (_, dims) in ins.items():
        if dims is None:
            raise SourceError(f"input {n!r} of {path.name} has no shape in the graph", where=model,
                              hint="re-export the model with input shapes (dynamic axes named)")
    batch, notes = _choose_batch({n: d for n, (_, d) in ins.items()}, model, batch_dim, fixed_batch)
    batch_params = {d[0] for _, d in ins.values() if d and isinstance(d[0], str) and d[0] not in ("", "?")}
    params: dict[str, str] = {}
    inputs = []
    for n, (elem, dims) in ins.items():
        shape = _name_dims(dims or [], n, batch=batch, fixed_batch=fixed_batch, batch_params=batch_params,
                           params=params, is_input=True)
        inputs.append(Tensor(n, dtype(n, elem), shape, _guess_layout("onnx", shape)))
    outputs = []
    for n, (elem, dims) in outs.items():
        shape = None if dims is None else _name_dims(dims, n, batch=batch, fixed_batch=fixed_batch,
                                                     batch_params=batch_params, params=params, is_input=False)
        if dims is None:
            notes.append(f"output {n!r} has no shape in the graph: the build observes it")
        outputs.append(Tensor(n, dtype(n, elem) if elem else "float32", shape))
    return Inferred(framework="onnx", entry=None, path=path.resolve(), base=path.parent, kwargs={},
                    inputs=inputs, outputs=outputs, batch=batch, default_name=model_name(path.stem),
                    default_dir=path.resolve().parent, description=f"{path.name} (ONNX)", notes=notes)


def _infer_tensorflow(model: str, path: Path | None, keras_model: Any, batch_dim: str | None,
                      fixed_batch: bool) -> Inferred:
    from .quiet import quiet
    from .sources.tf_source import import_tf
    tf = import_tf()
    tmp = None
    try:
        if path is not None and path.is_file():  # .keras
            import keras
            try:
                with quiet("tensorflow", "absl"):
                    keras_model = keras.models.load_model(path, compile=False)
            except Exception as exc:  # noqa: BLE001 - any load failure is the file's
                raise SourceError(f"cannot load {path.name}: {exc}", where=model,
                                  hint="check the file loads with keras.models.load_model") from None
        saved = path
        if keras_model is not None:
            tmp = tempfile.TemporaryDirectory(prefix="edgepack-init-")
            saved = Path(tmp.name) / "saved_model"
            try:
                with quiet("tensorflow", "absl"):
                    keras_model.export(str(saved), format="tf_saved_model", verbose=False)
            except Exception as exc:  # noqa: BLE001
                raise SourceError(f"exporting the Keras model to a SavedModel failed: {exc}", where=model,
                                  hint="the model must be built (called once or given an Input) to "
                                       "have a signature") from None
        try:
            with quiet("tensorflow", "absl"):
                loaded = tf.saved_model.load(str(saved))
            signature = loaded.signatures["serving_default"]
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"cannot load the SavedModel's serving_default signature: {exc}", where=model,
                              hint="export the model with a serving signature") from None
        in_specs = {k: v for k, v in sorted(signature.structured_input_signature[1].items(),
                                            key=lambda kv: _natural(kv[0]))}
        out_specs = signature.structured_outputs
    finally:
        if tmp is not None:
            tmp.cleanup()

    def dims_of(spec: Any) -> list[Any] | None:
        return None if spec.shape.rank is None else list(spec.shape.as_list())

    def dtype(name: str, spec: Any) -> str:
        if spec.dtype.name not in DTYPES:
            raise SourceError(f"tensor {name!r} is {spec.dtype.name}, which edgepack does not handle",
                              where=model, hint=f"supported dtypes: {', '.join(DTYPES)}")
        return str(spec.dtype.name)

    if not in_specs:
        raise SourceError("the serving signature has no named inputs", where=model,
                          hint="export the model with a serving signature of named tensors")
    for n, spec in in_specs.items():
        if dims_of(spec) is None:
            raise SourceError(f"input {n!r} has an unknown rank in the serving signature", where=model,
                              hint="give the model's Input a shape, e.g. keras.Input(shape=(224, 224, 3))")
    batch, notes = _choose_batch({n: dims_of(s) for n, s in in_specs.items()}, model, batch_dim, fixed_batch)
    params: dict[str, str] = {}
    inputs = []
    for n, spec in in_specs.items():
        shape = _name_dims(dims_of(spec) or [], n, batch=batch, fixed_batch=fixed_batch, batch_params=set(),
                           params=params, is_input=True)
        inputs.append(Tensor(n, dtype(n, spec), shape, _guess_layout("tensorflow", shape)))
    if not isinstance(out_specs, dict):
        out_specs = {f"output_{i}": s for i, s in enumerate(out_specs if isinstance(out_specs, (list, tuple))
                                                              else [out_specs])}
    keys = sorted(out_specs, key=_natural)  # the signature's dict order is not stable across loads
    names = list(keys)
    model_names = list(getattr(keras_model, "output_names", None) or []) if keras_model is not None else []
    if model_names and set(keys) == {f"output_{i}" for i in range(len(model_names))}:
        keys = [f"output_{i}" for i in range(len(model_names))]   # Keras order: output_i is output i
        names = model_names
    outputs = []
    for n, key in zip(names, keys):
        spec = out_specs[key]
        dims = dims_of(spec)
        shape = None if dims is None else _name_dims(dims, n, batch=batch, fixed_batch=fixed_batch,
                                                     batch_params=set(), params=params, is_input=False)
        outputs.append(Tensor(n, dtype(n, spec), shape))
    if path is not None:
        p = path.resolve()
        return Inferred(framework="tensorflow", entry=None, path=p, base=p.parent, kwargs={},
                        inputs=inputs, outputs=outputs, batch=batch, default_name=model_name(p.stem),
                        default_dir=p.parent, description=f"{p.name} ({'Keras' if p.is_file() else 'SavedModel'})",
                        notes=notes)
    return Inferred(framework="tensorflow", entry=model, path=None, base=Path.cwd(), kwargs={},
                    inputs=inputs, outputs=outputs, batch=batch, default_name="model", default_dir=Path.cwd(),
                    description=f"Keras model {type(keras_model).__name__} ({model})", notes=notes)


# -- torch: learn the signature from a run on example inputs -----------------------------------------

def _forward_params(module: Any) -> tuple[list[str], int, str]:
    """forward()'s positional argument names, how many are required, and its printed signature."""
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return [], 0, "forward(...)"
    params = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [p.name for p in params], sum(p.default is p.empty for p in params), f"forward{sig}"


def _as_array(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        try:
            value = value.numpy()
        except TypeError as exc:
            raise SourceError(f"{what} has torch dtype {value.dtype}, which numpy cannot hold: {exc}",
                              where="--example-input", hint=f"use one of: {', '.join(DTYPES)}") from None
    arr = np.asarray(value)
    if arr.dtype.name not in DTYPES:
        raise SourceError(f"{what} has dtype {arr.dtype}, which edgepack does not handle",
                          where="--example-input", hint=f"use one of: {', '.join(DTYPES)}")
    return arr


def _random_array(shape: list[int], dtype: str, rng: np.random.Generator) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 10, shape).astype(dtype)


def example_feeds(specs: Sequence[str], params: list[str], cwd: Path) -> dict[str, np.ndarray]:
    """The example inputs named and in forward()'s order, from the --example-input values."""
    rng = np.random.default_rng(0)
    whole = [s for s in specs if s.endswith(".npz") or (_ENTRY_RE.match(s) and not _DIMS_SPEC_RE.match(s)
                                                        and not s.endswith(".npy"))]
    if whole:
        if len(specs) != 1:
            raise SourceError(f"{whole[0]} gives every input: pass it as the only --example-input",
                              where="--example-input", hint=EXAMPLE_INPUT_HELP)
        return _whole_feed(specs[0], params, cwd)
    feeds: dict[str, np.ndarray] = {}
    for i, spec in enumerate(specs):
        default = params[i] if i < len(params) else f"input_{i}"
        m = _DIMS_SPEC_RE.match(spec)
        if m:
            dtype = m.group("dtype") or "float32"
            if dtype not in DTYPES:
                raise SourceError(f"--example-input {spec!r}: unknown dtype {dtype!r}", where="--example-input",
                                  hint=f"use one of: {', '.join(DTYPES)}")
            name = m.group("name") or default
            arr = _random_array([int(d) for d in m.group("dims").split("x")], dtype, rng)
        else:
            name, _, file = spec.rpartition("=") if "=" in spec else ("", "", spec)
            name = name or default
            if not file.endswith(".npy"):
                raise SourceError(f"cannot read --example-input {spec!r}", where="--example-input",
                                  hint=EXAMPLE_INPUT_HELP)
            arr = _load_npy(cwd / file, spec)
        if name in feeds:
            raise SourceError(f"two example inputs are named {name!r}", where="--example-input",
                              hint="give each a distinct name=")
        feeds[name] = arr
    return feeds


def _load_npy(path: Path, spec: str) -> np.ndarray:
    if not path.is_file():
        raise SourceError(f"example input file {path} not found", where="--example-input",
                          hint="paths are relative to the current folder")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"cannot read {path.name}: {exc}", where="--example-input",
                          hint="write it with numpy.save(path, array) from a numeric array") from None
    if isinstance(arr, np.lib.npyio.NpzFile):  # pragma: no cover - .npy suffix on an npz
        raise SourceError(f"{path.name} is an .npz archive", where="--example-input",
                          hint="name it .npz to pass every input at once")
    return _as_array(arr, f"example input {spec!r}")


def _whole_feed(spec: str, params: list[str], cwd: Path) -> dict[str, np.ndarray]:
    if spec.endswith(".npz"):
        path = cwd / spec
        if not path.is_file():
            raise SourceError(f"example input file {path} not found", where="--example-input",
                              hint="paths are relative to the current folder")
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw: Any = {k: npz[k] for k in npz.files}
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"cannot read {path.name} as an .npz of arrays: {exc}", where="--example-input",
                              hint="write it with numpy.savez(path, input_name=array, ...)") from None
    else:
        from .entrypoints import call_entry
        raw = call_entry(spec, cwd, SourceError, "--example-input")
    if isinstance(raw, dict):
        items = {str(k): _as_array(v, f"example input {k!r}") for k, v in raw.items()}
        if set(items) <= set(params):  # forward()'s order: the model is called positionally
            items = {k: items[k] for k in params if k in items}
        if not items:
            raise SourceError(f"{spec} gives no arrays", where="--example-input", hint=EXAMPLE_INPUT_HELP)
        return items
    values = list(raw) if isinstance(raw, (tuple, list)) else [raw]
    return {(params[i] if i < len(params) else f"input_{i}"): _as_array(v, f"example input {i}")
            for i, v in enumerate(values)}


def _outputs_of(result: Any) -> list[tuple[str, Any]]:
    """forward()'s result as (name, tensor) pairs: a tensor, a tuple/list or a dict of tensors."""
    if isinstance(result, dict):
        pairs = [(str(k), v) for k, v in result.items()]
    elif isinstance(result, (tuple, list)):
        pairs = [(f"output_{i}", v) for i, v in enumerate(result)]
    else:
        pairs = [("output", result)]
    bad = [n for n, v in pairs if not hasattr(v, "detach")]
    if bad or not pairs:
        raise SourceError(f"forward() returned {type(result).__name__} with non-tensor output(s) {bad}",
                          where="--example-input",
                          hint="edgepack packages models whose forward() returns a tensor, a tuple/list "
                               "or a dict of tensors (not nested)")
    return pairs


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.allclose(a, b, rtol=1e-3, atol=1e-4, equal_nan=True))
    return bool(np.array_equal(a, b))


def _probe_batch(module: Any, torch: Any, feeds: dict[str, np.ndarray],
                 outs: list[tuple[str, np.ndarray]]) -> str | None:
    """None when the model runs at twice the example batch with the same per-sample results; else why not."""
    firsts = {a.shape[0] if a.ndim else None for a in feeds.values()}
    if len(firsts) != 1 or None in firsts:
        return "the inputs do not share a leading axis"
    (b,) = firsts
    doubled = [torch.from_numpy(np.ascontiguousarray(np.concatenate([a, a]))) for a in feeds.values()]
    try:
        with torch.no_grad():
            result = _outputs_of(module(*doubled))
    except Exception as exc:  # noqa: BLE001 - the model just does not take another batch size
        return f"it fails at batch {2 * b} ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
    if len(result) != len(outs):
        return f"it returns a different number of outputs at batch {2 * b}"
    for (name, one), (_, two) in zip(outs, result):
        two = _as_array(two, f"output {name!r}")
        if not one.ndim or one.shape[0] != b or two.shape != (2 * b, *one.shape[1:]):
            return f"output {name!r} does not follow the batch ({list(one.shape)} at batch {b}, " \
                   f"{list(two.shape)} at batch {2 * b})"
        if not (_close(two[:b], one) and _close(two[b:], one)):
            return f"output {name!r} of a sample changes with the batch it is in"
    return None


def _infer_torch(entry: str, cwd: Path, module: Any, example_inputs: Sequence[str], batch_dim: str | None,
                 fixed_batch: bool, kwargs: dict[str, Any]) -> Inferred:
    from .sources.torch_source import _import_torch
    torch = _import_torch()
    if not isinstance(module, torch.nn.Module):
        raise SourceError(f"{entry} returned {type(module).__name__}, not a torch.nn.Module", where=entry,
                          hint="return the model object with its trained weights loaded")
    module.eval()
    params, required, signature = _forward_params(module)
    if not example_inputs:
        raise SourceError(f"a torch model needs an example input to learn its signature ({signature})",
                          where=entry,
                          hint=f"pass one --example-input per argument of {signature}, in order: dims like "
                               "1x3x224x224 (random float32; 1x16:int64 for another dtype), or an .npy file; "
                               "or once, an .npz keyed by input name or data.py:function returning the "
                               "inputs")
    feeds = example_feeds(example_inputs, params, cwd)
    if len(feeds) < required:
        missing = ", ".join(params[len(feeds):required])
        raise SourceError(f"{signature} takes {required} input(s), {len(feeds)} example input(s) given "
                          f"(none for {missing})", where="--example-input",
                          hint="pass one --example-input per argument, in order")
    shown = ", ".join(f"{n}: {a.dtype} {list(a.shape)}" for n, a in feeds.items())
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in feeds.values()]
    try:
        with torch.no_grad():
            result = module(*tensors)
    except Exception as exc:  # user code: any failure is reported
        raise SourceError(f"running {entry} on the example input(s) ({shown}) failed: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:400]}", where="--example-input",
                          hint=f"give one example per argument of {signature}, in order, with the shapes and "
                               "dtypes the model expects (e.g. 1x3x224x224 or name=1x16:int64)") from exc
    outs = [(n, _as_array(v, f"output {n!r}")) for n, v in _outputs_of(result)]
    notes: list[str] = []
    why_not = None if fixed_batch else _probe_batch(module, torch, feeds, outs)
    if fixed_batch:
        batch = None
    elif batch_dim is not None:
        batch = batch_dim
        if why_not:
            notes.append(f"--batch-dim {batch_dim}: axis 0 made symbolic as asked, but the model does not "
                         f"look batch-independent: {why_not}")
    elif why_not is None:
        batch = DEFAULT_BATCH
    else:
        batch = None
        notes.append(f"axis 0 stays fixed: the model does not run at another batch size ({why_not}); "
                     "pass --batch-dim batch to make it symbolic anyway")
    b = next(iter(feeds.values())).shape[0] if batch else None
    inputs = []
    for n, a in feeds.items():
        shape: list[int | str] = list(a.shape)
        if batch and shape:
            shape[0] = batch
        inputs.append(Tensor(n, str(a.dtype), shape, _guess_layout("torch", shape)))
    outputs = []
    for n, a in outs:
        shape = list(a.shape)
        if batch and shape and shape[0] == b:
            shape[0] = batch
        outputs.append(Tensor(n, str(a.dtype), shape))
    if len(set(feeds)) > len(params) and params:
        notes.append(f"forward() takes {len(params)} positional argument(s) but {len(feeds)} example inputs "
                     "were given; the model is called with them in order")
    name, folder = _entry_defaults(entry, cwd, module)
    return Inferred(framework="torch", entry=entry, path=None, base=cwd, kwargs=kwargs, inputs=inputs,
                    outputs=outputs, batch=batch, default_name=name, default_dir=folder,
                    description=f"{type(module).__name__} ({entry})", notes=notes)


# -- what the data must look like --------------------------------------------------------------------

def _dims_text(dims: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def data_format(inputs: Sequence[Any], batch: str | None) -> tuple[list[str], list[str], str]:
    """How calibration/golden data must look: (npz lines, entry lines, numpy.savez example)."""
    npz, entry = [], []
    for t in inputs:
        shape = list(t.shape or [])
        if batch:
            npz.append(f"{t.name}: {t.dtype} {_dims_text(['N'] + shape[1:])}")
            entry.append(f"{t.name}: {t.dtype} {_dims_text(['b'] + shape[1:])}")
        else:
            npz.append(f"{t.name}: {t.dtype} {_dims_text(['N'] + shape)}")
            entry.append(f"{t.name}: {t.dtype} {_dims_text(shape)}")
    names = [t.name for t in inputs]
    if all(n.isidentifier() for n in names):
        savez = "numpy.savez('data.npz', " + ", ".join(f"{n}=..." for n in names) + ")"
    else:
        savez = "numpy.savez('data.npz', **{" + ", ".join(f"{n!r}: ..." for n in names) + "})"
    return npz, entry, savez


def _placeholder_value(value: Path | str | None, base: Path) -> str | None:
    """The placeholder as written in the manifest, if ``value`` is one that was never filled in."""
    if value is None:
        return None
    if isinstance(value, Path):
        if value.exists() or PLACEHOLDER_DIR not in value.parts:
            return None
        try:
            return value.relative_to(base).as_posix()
        except ValueError:
            return str(value)
    module_ref = value.rpartition(":")[0]
    if PLACEHOLDER_DIR in Path(module_ref).parts and not (base / module_ref).exists():
        return value
    return None


def check_placeholders(manifest: Manifest) -> None:
    """A DataError naming the first placeholder of ``edgepack init`` still in the manifest, and what
    to put there; nothing when every data field points at real data."""
    fields: list[tuple[str, Path | str | None]] = [
        ("calibration.file", manifest.calibration.file), ("calibration.entry", manifest.calibration.entry),
        ("golden.file", manifest.golden.file), ("golden.entry", manifest.golden.entry),
        ("evaluation.entry", manifest.evaluation.entry if manifest.evaluation else None)]
    for key, value in fields:
        shown = _placeholder_value(value, manifest.base_dir)
        if shown is None:
            continue
        section = key.split(".")[0]
        npz, entry, _ = data_format(manifest.inputs, manifest.symbolic_batch())
        if section == "evaluation":
            hint = ("point entry: at a function returning (feeds, labels): feeds a dict "
                    f"{{{', '.join(entry)}}}, labels a 1-D int array of class ids; or remove the "
                    "evaluation section")
        else:
            names = [s.name for s in manifest.inputs]
            arrays = [f"{n}=<{line.partition(': ')[2]} array>" if n.isidentifier() else f"{n!r}: ..."
                      for n, line in zip(names, npz)]
            along = "the batch axis, axis 0" if manifest.symbolic_batch() else "a new axis 0"
            hint = (f"replace it with real input samples, one of: file: data.npz written with "
                    f"numpy.savez('data.npz', {', '.join(arrays)}) (one array per input, keyed by its name, "
                    f"N samples along {along}); or entry: data.py:function returning or yielding dicts "
                    f"{{{', '.join(entry)}}}; or random: true to try the build on noise (int8 then does not "
                    f"reflect real inputs). The comments above '{section}:' in the manifest explain each")
        raise DataError(f"still the placeholder {shown!r} that 'edgepack init' wrote: the build needs real "
                        f"{section} samples here", where=f"{manifest.file}: {key}", hint=hint)


# -- rendering ---------------------------------------------------------------------------------------

def _scalar(value: Any) -> str:
    """A YAML scalar: plain where that reads back the same, else JSON-quoted (valid YAML)."""
    if isinstance(value, str):
        plain = re.match(r"^[A-Za-z0-9_./()-][A-Za-z0-9_./:() -]*$", value) and ": " not in value \
            and not value.endswith((":", " "))
        if plain and yaml.safe_load(value) == value:
            return value
        return json.dumps(value)
    return json.dumps(value)


def _flow_tensor(t: Tensor, with_layout: bool = True) -> str:
    parts = [f"name: {_scalar(t.name)}", f"dtype: {t.dtype}"]
    if t.shape is not None:
        parts.append("shape: [" + ", ".join(str(d) for d in t.shape) + "]")
    if with_layout and t.layout:
        parts.append(f"layout: {t.layout}")
    return "{" + ", ".join(parts) + "}"


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _target_lines(enabled: list[str], base: Path) -> tuple[list[str], list[str], list[str]]:
    """The targets: section's lines, the enabled and the commented-out target names."""
    known = available_targets()
    rows: list[tuple[bool, str, str]] = []
    for ref in enabled:
        path = resolve_target_ref(ref, base)
        shown = ref if ref in known and known[ref] == path else _rel(path.resolve(), base)
        rows.append((True, shown, _description(path)))
    commented = [n for n in sorted(known) if n not in enabled and known[n] not in
                 {resolve_target_ref(r, base) for r in enabled}]
    rows += [(False, n, _description(known[n])) for n in commented]
    width = max(len(_scalar(n)) for _, n, _ in rows) + 6
    lines = []
    for on, name, desc in rows:
        item = f"{'' if on else '# '}- {_scalar(name)}".ljust(width)
        lines.append("  " + (f"{item} # {desc}" if desc else item.rstrip()))
    return lines, [n for on, n, _ in rows if on], commented


def _description(path: Path) -> str:
    try:
        return " ".join(load_target(str(path)).description.split())
    except EdgepackError:
        return "(this target file does not load: edgepack targets --check shows why)"


def render(inferred: Inferred, *, name: str, manifest_dir: Path, enabled: list[str], command: str,
           file_name: str = "MANIFEST.yaml") -> tuple[str, list[str], list[str]]:
    """The manifest text, the enabled and the commented-out targets."""
    inf = inferred
    target_lines, on, commented = _target_lines(enabled, manifest_dir)
    npz, entry_fmt, savez = data_format(inf.inputs, inf.batch)
    L: list[str] = []
    add = L.append
    add(f"# Manifest for {name}, written by: {command}")
    add(f"# (edgepack {__version__}). Paths in this file are relative to this file's folder.")
    add("# Before the first build, put real calibration data where it says REPLACE-ME below; then:")
    add(f"#   edgepack validate {file_name}   # checks the manifest and its targets")
    add(f"#   edgepack build {file_name} --out dist   # one verified bundle per enabled target")
    add("")
    add("# name: names the bundles (<name>-<target>/); lower-case letters, digits, '.', '_' or '-'.")
    add(f"name: {_scalar(name)}")
    add(f"description: {_scalar(inf.description)}   # one line for people; goes into the bundle's README")
    add("")
    add("# source: the original model. Every artifact is checked against what it computes.")
    add("source:")
    add(f"  framework: {inf.framework}")
    if inf.entry:
        module_ref, _, func = inf.entry.rpartition(":")
        is_file = module_ref.endswith(".py") or "/" in module_ref
        value = f"{_rel((inf.base / module_ref).resolve(), manifest_dir)}:{func}" if is_file else inf.entry
        what = "an nn.Module" if inf.framework == "torch" else "a keras.Model"
        add(f"  entry: {_scalar(value)}   # a function returning {what} with its trained weights")
        if inf.kwargs:
            add(f"  kwargs: {yaml.safe_dump(inf.kwargs, default_flow_style=True).strip()}")
        else:
            add("  # kwargs: {}                 # keyword arguments for the entry point")
    else:
        assert inf.path is not None
        kind = "ONNX file" if inf.framework == "onnx" else "SavedModel folder or .keras file"
        add(f"  path: {_scalar(_rel(inf.path, manifest_dir))}   # the {kind}")
    add("")
    order = "in forward()'s argument order" if inf.framework == "torch" else "by the model's own names"
    add(f"# inputs: the model's signature, {order}. dtype is a numpy name; shape has one")
    add("# entry per axis: a number is fixed, a name is a dynamic axis" +
        (f" ({inf.batch} = the batch: any number of samples)." if inf.batch else "."))
    add("# layout (optional, informational): NCHW, NHWC, NC, NCW, NWC or any; the runtime never transposes.")
    add("inputs:")
    for t in inf.inputs:
        add(f"  - {_flow_tensor(t)}")
    how = {"torch": "forward()'s results on the example input, in the order it returns them",
           "onnx": "the graph's outputs", "tensorflow": "the serving signature's outputs"}[inf.framework]
    add(f"# outputs: {how}.")
    add("# Per output you may add scores: true/false (class scores or not; guessed from the values")
    add("# otherwise) and tolerances: {int8: {min_cosine: 0.97}} (overrides for this output only).")
    add("outputs:")
    for t in inf.outputs:
        add(f"  - {_flow_tensor(t, with_layout=False)}")
    add("")
    add("# calibration: REAL samples of what the model sees in use (a few hundred representative ones).")
    add("# int8 static quantization is calibrated on them, and the golden inputs (parity checks, at build")
    add("# time and on the device) are drawn from them. Replace the placeholder with ONE of:")
    add("#   file: data.npz          an .npz with one array per input, keyed by input name, the N samples")
    add("#                           along axis 0" + (f" (the {inf.batch} axis)" if inf.batch else
                                                     " (a new axis: one row per sample)") + ":")
    for line in npz:
        add(f"#                             {line}")
    add(f"#                           e.g. {savez}")
    add("#   entry: data.py:function a function returning or yielding dicts {input name: array}, each")
    add("#                           array " + ("a batch of b samples:" if inf.batch else "exactly one sample:"))
    for line in entry_fmt:
        add(f"#                             {line}")
    add("#   random: true            noise instead of data: only to try the pipeline (int8 and parity")
    add("#                           then say nothing about real inputs; the build warns)")
    add("calibration:")
    add(f"  file: {CALIBRATION_PLACEHOLDER}   # <- REPLACE with real data (see above)")
    add(f"  samples: {CALIBRATION_SAMPLES}          # how many samples to use (at most); 100-1000 is typical")
    add("  batch_size: 16        # samples per calibration batch")
    add("")
    add("# golden: the inputs whose outputs are recorded at build time and re-checked on the device")
    add("# (python -m runtime verify). By default a seeded draw of `samples` from the calibration data;")
    add("# add file: golden.npz or entry: data.py:function (same format as calibration) for your own.")
    add("golden:")
    add(f"  samples: {GOLDEN_SAMPLES}")
    add("")
    add("# evaluation (optional): each artifact's accuracy on held-out labelled data, in the report.")
    add("# entry: a function returning (feeds, labels): feeds a dict like the calibration entry's, labels")
    add("# a 1-D integer array of class ids, one per sample; output: the output holding class scores.")
    add("# evaluation:")
    add("#   entry: data.py:test_split")
    add(f"#   output: {_scalar(inf.outputs[0].name)}")
    add("")
    add("# targets: the devices to build for (edgepack targets lists them with their candidates). Uncomment")
    add("# more, or give the path of your own target YAML file.")
    add("targets:")
    L.extend(target_lines)
    add("")
    add("# tolerances (optional): overrides of the parity defaults per precision (fp32, fp16, int8), e.g.")
    add("# tolerances:")
    add("#   int8: {min_cosine: 0.97, min_top1: 0.9}")
    add("")
    if inf.framework == "onnx":
        add("# export (optional): opset: the model is upgraded to at least this opset (default 17).")
        add("# export: {opset: 17}")
    elif inf.framework == "torch":
        add("# export (optional): opset (default 17); exporter: auto | dynamo | torchscript (torch -> ONNX);")
        add("# torchscript: trace | script (how TorchScript artifacts are made).")
        add("# export: {opset: 17, exporter: auto, torchscript: trace}")
    else:
        add("# export (optional): opset for tf2onnx (default 17).")
        add("# export: {opset: 17}")
    return "\n".join(L) + "\n", on, commented


# -- the command -------------------------------------------------------------------------------------

def init_manifest(model: str, *, output: str | None = None, force: bool = False, name: str | None = None,
                  example_inputs: Sequence[str] = (), batch_dim: str | None = None, fixed_batch: bool = False,
                  targets: Sequence[str] = (), kwargs: dict[str, Any] | None = None,
                  command: str = "edgepack init", cwd: Path | None = None) -> InitResult:
    """Infer ``model``'s signature and write a starter manifest (``output`` '-' = return it only)."""
    cwd = (cwd or Path.cwd()).resolve()
    if name is not None and not _NAME_RE.match(name):
        raise SourceError(f"--name {name!r} must be lower-case letters, digits, '.', '_' or '-'", where="--name",
                          hint="it names the bundle folders, e.g. digits-cnn")
    out_path: Path | None = None
    if output and output != "-":  # refuse before the slow part
        out_path = Path(output) if Path(output).is_absolute() else cwd / output
        _check_writable(out_path, force)
    inferred = infer_model(model, example_inputs=example_inputs, batch_dim=batch_dim, fixed_batch=fixed_batch,
                           kwargs=kwargs, cwd=cwd)
    final_name = name or inferred.default_name
    if output is None:
        out_path = inferred.default_dir / f"{final_name}.yaml"
        _check_writable(out_path, force)
    manifest_dir = out_path.parent if out_path is not None else cwd
    known = available_targets()
    if not known and not targets:
        raise SourceError("no targets found", where="targets",
                          hint="the shipped targets/ folder is missing; pass --target path/to/device.yaml")
    enabled = list(dict.fromkeys(targets)) or [DEFAULT_TARGET if DEFAULT_TARGET in known else min(known)]
    for ref in enabled:
        resolve_target_ref(ref, cwd)  # an unknown name or missing file: TargetError with did-you-mean
    enabled = [r if r in known else _rel((cwd / r).resolve(), manifest_dir) for r in enabled]
    text, on, commented = render(inferred, name=final_name, manifest_dir=manifest_dir, enabled=enabled,
                                 command=command, file_name=out_path.name if out_path else "MANIFEST.yaml")
    shown_path = _shown(out_path, cwd) if out_path is not None else "-"
    parse_manifest(yaml.safe_load(text), shown_path, manifest_dir)  # what we write must load
    if out_path is not None:
        _write(out_path, text)
    placeholders = [{"field": "calibration.file", "value": CALIBRATION_PLACEHOLDER,
                     "put": "real input samples: an .npz keyed by input name (samples along axis 0), or "
                            "entry: data.py:function yielding {input name: array} dicts"}]
    return InitResult(path=shown_path, text=text, name=final_name, inferred=inferred, enabled=on,
                      commented=commented, placeholders=placeholders)


def _shown(path: Path, cwd: Path) -> str:
    """``path`` as the user would type it: relative to the current folder when inside it."""
    rel = os.path.relpath(path, cwd)
    return str(path) if rel.startswith("..") else rel


def _check_writable(path: Path, force: bool) -> None:
    if path.is_dir():
        raise EdgepackError("the manifest path is a folder", where=str(path),
                            hint="give a file name, e.g. -o model.yaml")
    if path.exists() and not force:
        raise EdgepackError("the manifest file exists; not overwritten", where=str(path),
                            hint="pass --force to overwrite it, -o another.yaml, or -o - for stdout")


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise EdgepackError(f"cannot write {path}: {exc.strerror or exc}", where="-o",
                            hint="choose a folder you can write to, or -o - for stdout") from None


def format_summary(result: InitResult) -> str:
    """What ``edgepack init`` prints: the signature, the targets, and what to do next."""
    inf = result.inferred
    where = "stdout" if result.path == "-" else result.path
    source = inf.entry or (_shown(inf.path, Path.cwd().resolve()) if inf.path else "?")
    lines = [f"manifest for the {inf.framework} model {source} printed on stdout" if result.path == "-"
             else f"wrote {where} for the {inf.framework} model {source}"]
    for kind, tensors in (("input", inf.inputs), ("output", inf.outputs)):
        for t in tensors:
            shape = _dims_text(t.shape) if t.shape is not None else "(shape observed at build time)"
            lines.append(f"  {kind:6} {t.name}: {t.dtype} {shape}" + (f" {t.layout}" if t.layout else ""))
    lines.append(f"  batch: axis 0 is the symbolic dim {inf.batch!r}" if inf.batch else
                 "  batch: none (every input's shape is fixed; each sample is fed on its own)")
    lines.append(f"  targets: {', '.join(result.enabled)} enabled"
                 + (f"; {', '.join(result.commented)} listed, commented out" if result.commented else ""))
    for note in inf.notes:
        lines.append(f"  note: {note}")
    manifest = "the manifest" if result.path == "-" else result.path
    lines.append("next:")
    lines.append(f"  1. replace calibration.file ({CALIBRATION_PLACEHOLDER}) in {manifest} with real samples "
                 "(its comments say how)")
    lines.append(f"  2. edgepack build {manifest if result.path != '-' else 'MANIFEST.yaml'} --out dist")
    return "\n".join(lines)
