"""What ``edgepack init`` learns from a model: its inputs, outputs and batch dim.

An ONNX graph or a TensorFlow serving signature states the signature; a torch entry point is run once
on example inputs (``--example-input``) and once at twice the batch to see whether axis 0 is a batch.
``infer_model`` takes the model argument as the user gave it and returns an ``Inferred``.

Frameworks are imported inside the functions that need them; a missing one is a SourceError that
names the pip extra (the same errors the sources raise).
"""
from __future__ import annotations

import inspect
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import NAME_PATTERN
from ..errors import EdgepackError, SourceError
from ..manifest import DTYPES, ENTRY_PATTERN, SYMBOL_PATTERN

DEFAULT_BATCH = "batch"

_ENTRY_RE = re.compile(ENTRY_PATTERN)      # what the manifest accepts as entry
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)    # what the manifest accepts as a dim
_NAME_RE = re.compile(NAME_PATTERN)        # what the manifest accepts as name
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
    from ..entrypoints import call_entry
    module_ref = entry.rpartition(":")[0]
    try:  # a Keras entry point: import TensorFlow quietly first, as the TensorFlow source does
        code = (cwd / module_ref).read_text(encoding="utf-8", errors="replace") if module_ref.endswith(".py") else ""
    except OSError:
        code = ""
    if re.search(r"^\s*(import|from)\s+(tensorflow|keras)\b", code, re.MULTILINE):
        from ..sources.tf_source import import_tf
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
    own_class = _framework_of(obj) and (cls.__module__ or "").split(".")[0] not in ("torch", "keras", "tensorflow")
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
    from ..onnx_utils import ONNX_DTYPES, graph_io, load_onnx
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
                outs[n] = (elem, more if dims is None
                           else [m if d == "?" else d for d, m in zip(dims, more, strict=False)])
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
    from ..quiet import quiet
    from ..sources.tf_source import import_tf
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
    for n, key in zip(names, keys, strict=True):
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
        from ..entrypoints import call_entry
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
    for (name, one), (_, two) in zip(outs, result, strict=True):
        two = _as_array(two, f"output {name!r}")
        if not one.ndim or one.shape[0] != b or two.shape != (2 * b, *one.shape[1:]):
            return f"output {name!r} does not follow the batch ({list(one.shape)} at batch {b}, " \
                   f"{list(two.shape)} at batch {2 * b})"
        if not (_close(two[:b], one) and _close(two[b:], one)):
            return f"output {name!r} of a sample changes with the batch it is in"
    return None


def _infer_torch(entry: str, cwd: Path, module: Any, example_inputs: Sequence[str], batch_dim: str | None,
                 fixed_batch: bool, kwargs: dict[str, Any]) -> Inferred:
    from ..sources.torch_source import _import_torch
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
