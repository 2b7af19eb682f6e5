"""Manifests: what to package (source model, signature, data, targets, tolerances)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.compare import DEFAULT_TOLERANCES, Tolerance

from .config import Node, read_yaml
from .errors import ManifestError

FRAMEWORKS = ("torch", "onnx", "tensorflow")
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")
LAYOUTS = ("NCHW", "NHWC", "NC", "NCW", "NWC", "any")
EXPORTERS = ("auto", "dynamo", "torchscript")
TORCHSCRIPT_METHODS = ("trace", "script")
TOLERANCE_KEYS = ("atol", "rtol", "min_cosine", "min_top1", "max_mismatch", "max_range_error")
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "int": "int64", "long": "int64",
                  "fp32": "float32", "fp16": "float16", "f32": "float32", "i64": "int64"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ENTRY_RE = re.compile(r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model's signature."""

    name: str
    dtype: str = "float32"
    shape: tuple[int | str, ...] | None = None
    layout: str | None = None
    scores: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype,
                               "shape": list(self.shape) if self.shape is not None else None}
        if self.layout:
            out["layout"] = self.layout
        if self.scores is not None:
            out["scores"] = self.scores
        return out


@dataclass(frozen=True)
class SourceSpec:
    """Where the original model comes from."""

    framework: str
    entry: str | None = None      # torch: "file.py:function" or "module:function"
    path: Path | None = None      # onnx: model file
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """Real data: an .npz file or an entry point yielding feed dicts (or random, if asked)."""

    file: Path | None = None
    entry: str | None = None
    random: bool = False
    samples: int = 128
    batch_size: int = 16
    seed: int = 0


@dataclass(frozen=True)
class EvaluationSpec:
    """Held-out data for reporting each artifact's accuracy."""

    entry: str
    output: str
    metric: str = "accuracy"


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. Relative paths are resolved against the manifest's folder."""

    name: str
    description: str
    source: SourceSpec
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    calibration: DataSpec
    golden: DataSpec
    golden_from_calibration: bool
    targets: tuple[str, ...]
    tolerances: dict[str, dict[str, Any]]
    output_tolerances: dict[str, dict[str, dict[str, Any]]]
    evaluation: EvaluationSpec | None
    opset: int
    exporter: str
    torchscript: str
    base_dir: Path
    file: str

    def tolerance_for(self, precision: str, output: str) -> Tolerance:
        """Default tolerance of the precision, with manifest overrides applied."""
        tol = DEFAULT_TOLERANCES[precision].merged(self.tolerances.get(precision, {}))
        return tol.merged(self.output_tolerances.get(output, {}).get(precision, {}))

    def symbolic_batch(self) -> str | None:
        """The symbol every input shares as its leading dim (e.g. 'batch'), or None."""
        firsts = {s.shape[0] if s.shape else None for s in self.inputs}
        (first,) = firsts if len(firsts) == 1 else (None,)
        return first if isinstance(first, str) else None


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file."""
    p = Path(path)
    return parse_manifest(read_yaml(p, ManifestError, "manifest"), str(p), p.resolve().parent)


def parse_manifest(data: Any, file: str, base_dir: Path) -> Manifest:
    """Validate a parsed manifest document."""
    root = Node(data, file, "", ManifestError)
    root.mapping(["name", "description", "source", "inputs", "outputs", "calibration", "golden",
                  "evaluation", "targets", "tolerances", "export"],
                 required=["name", "source", "inputs", "outputs", "targets"])
    name = root.get("name", str)
    if not _NAME_RE.match(name):
        raise root.fail(f"model name {name!r} must be lower-case letters, digits, '.', '_' or '-'",
                        "name", hint="it names the bundle folder, e.g. digits-cnn")
    source = _parse_source(root.child("source"), base_dir)
    inputs = tuple(_parse_tensor(n, is_input=True) for n in root.items("inputs", min_items=1))
    outputs = tuple(_parse_tensor(n, is_input=False) for n in root.items("outputs", min_items=1))
    _check_unique(root, "inputs", [t.name for t in inputs])
    _check_unique(root, "outputs", [t.name for t in outputs])

    cal_node = root.section("calibration")
    calibration = _parse_data(cal_node, base_dir, allow_random=True) if cal_node else DataSpec()
    golden_node = root.section("golden")
    golden = _parse_data(golden_node, base_dir, allow_random=False, default_samples=32) \
        if golden_node else DataSpec(samples=32)
    golden_from_cal = golden.file is None and golden.entry is None
    if cal_node is None and golden_from_cal:
        raise root.fail("no calibration or golden data given", "calibration",
                        hint="add calibration: {entry: data.py:samples} or {file: calib.npz} with "
                             "real samples (or random: true to accept random data, with a warning)")

    targets = tuple(root.strings("targets"))
    if not targets:
        raise root.fail("needs at least one target", "targets", hint="e.g. targets: [x86-cpu, rpi4]")

    tolerances: dict[str, dict[str, Any]] = {}
    tol_node = root.section("tolerances")
    if tol_node:
        tol_node.mapping(list(DEFAULT_TOLERANCES))
        for precision in tol_node.value:
            tolerances[precision] = _parse_tolerance(tol_node.child(precision))
    output_tolerances: dict[str, dict[str, dict[str, Any]]] = {}
    for node, spec in zip(root.items("outputs"), outputs):
        t = node.section("tolerances")
        if t:
            t.mapping(list(DEFAULT_TOLERANCES))
            output_tolerances[spec.name] = {p: _parse_tolerance(t.child(p)) for p in t.value}

    evaluation = None
    ev = root.section("evaluation")
    if ev:
        ev.mapping(["entry", "output", "metric"], required=["entry"])
        entry = _entry(ev, "entry")
        out = ev.get("output", str, outputs[0].name, choices=[o.name for o in outputs])
        evaluation = EvaluationSpec(entry=entry, output=out,
                                    metric=ev.get("metric", str, "accuracy", choices=("accuracy",)))

    opset, exporter, torchscript = 17, "auto", "trace"
    ex = root.section("export")
    if ex:
        ex.mapping(["opset", "exporter", "torchscript"])
        opset = ex.get("opset", int, 17, minimum=13)
        exporter = ex.get("exporter", str, "auto", choices=EXPORTERS)
        torchscript = ex.get("torchscript", str, "trace", choices=TORCHSCRIPT_METHODS)

    return Manifest(name=name, description=root.get("description", str, ""), source=source,
                    inputs=inputs, outputs=outputs, calibration=calibration, golden=golden,
                    golden_from_calibration=golden_from_cal, targets=targets,
                    tolerances=tolerances, output_tolerances=output_tolerances,
                    evaluation=evaluation, opset=opset, exporter=exporter, torchscript=torchscript,
                    base_dir=base_dir,
                    file=file)


def _check_unique(root: Node, key: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise root.fail(f"name(s) {dupes} appear more than once", key, hint="give each a distinct name")


def _entry(node: Node, key: str) -> str:
    value = node.get(key, str)
    if not _ENTRY_RE.match(value):
        raise node.fail(f"entry point {value!r} must look like 'path/to/file.py:function' or "
                        "'package.module:function'", key)
    return value


def _parse_source(node: Node, base_dir: Path) -> SourceSpec:
    node.mapping(["framework", "entry", "path", "kwargs"], required=["framework"])
    framework = node.get("framework", str, choices=FRAMEWORKS)
    kwargs = node.value.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise node.fail("expected a mapping of keyword arguments", "kwargs")
    if framework == "torch":
        if not node.has("entry"):
            raise node.fail("a torch source needs 'entry'", "entry",
                            hint="entry: path/to/model.py:build_model (a function returning an "
                                 "nn.Module with its weights loaded)")
        if node.has("path"):
            raise node.fail("'path' is for onnx sources; a torch source uses 'entry'", "path")
        return SourceSpec(framework, entry=_entry(node, "entry"), kwargs=dict(kwargs))
    if framework == "tensorflow":
        if node.has("entry") == node.has("path"):
            raise node.fail("a tensorflow source needs exactly one of 'entry' or 'path'",
                            hint="path: a SavedModel folder or a .keras file; or entry: "
                                 "file.py:function returning a keras.Model")
        if node.has("entry"):
            return SourceSpec(framework, entry=_entry(node, "entry"), kwargs=dict(kwargs))
        if kwargs:
            raise node.fail("'kwargs' only applies to an entry point", "kwargs")
        return SourceSpec(framework, path=(base_dir / node.get("path", str)))
    if not node.has("path"):
        raise node.fail("an onnx source needs 'path'", "path", hint="path: model.onnx")
    if node.has("entry") or kwargs:
        raise node.fail("an onnx source takes only 'path'", "entry" if node.has("entry") else "kwargs")
    return SourceSpec(framework, path=(base_dir / node.get("path", str)))


def _parse_tensor(node: Node, *, is_input: bool) -> TensorSpec:
    if isinstance(node.value, str):
        if is_input:
            raise node.fail("an input needs name, dtype and shape",
                            hint="write - {name: x, dtype: float32, shape: [batch, 3, 224, 224]}")
        return TensorSpec(name=node.value, dtype="float32")
    keys = ["name", "dtype", "shape", "layout"] + ([] if is_input else ["scores", "tolerances"])
    node.mapping(keys, required=["name", "dtype", "shape"] if is_input else ["name"])
    shape_val = node.value.get("shape")
    shape: tuple[int | str, ...] | None = None
    if shape_val is not None:
        if not isinstance(shape_val, list):
            raise node.fail(f"shape must be a list, got {type(shape_val).__name__} {shape_val!r}", "shape",
                            hint="write it like [batch, 1, 8, 8]: one entry per axis")
        dims: list[int | str] = []
        for i, d in enumerate(shape_val):
            ok = (isinstance(d, int) and not isinstance(d, bool) and d > 0) or \
                 (isinstance(d, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", d))
            if not ok:
                raise node.child("shape").fail(
                    f"dimension {d!r} must be a positive integer or a symbol like 'batch'", i,
                    hint="a fixed size (1, 28, ...) or a name for a dynamic axis (batch)")
            dims.append(d)
        shape = tuple(dims)
    raw_dtype = node.value.get("dtype")
    if isinstance(raw_dtype, str) and raw_dtype in _DTYPE_ALIASES:
        raise node.fail(f"{raw_dtype!r} is not one of: {', '.join(DTYPES)} (did you mean "
                        f"{_DTYPE_ALIASES[raw_dtype]!r}?)", "dtype", hint="dtypes are numpy names with their width")
    return TensorSpec(name=node.get("name", str), dtype=node.get("dtype", str, "float32", choices=DTYPES),
                      shape=shape, layout=node.get("layout", str, None, choices=LAYOUTS),
                      scores=node.get("scores", bool, None))


def _parse_data(node: Node, base_dir: Path, *, allow_random: bool, default_samples: int = 128) -> DataSpec:
    keys = ["file", "entry", "samples", "batch_size", "seed"] + (["random"] if allow_random else [])
    node.mapping(keys)
    given = [k for k in ("file", "entry") if node.has(k)] + (["random"] if node.get("random", bool, False) else [])
    if len(given) > 1:
        raise node.fail(f"give only one of file, entry{', random' if allow_random else ''}; got {given}")
    if allow_random and not given:
        raise node.fail("no data given", hint="add file: data.npz or entry: data.py:function with "
                                               "real samples (or random: true, not recommended)")
    file = node.get("file", str)
    if file is not None and not file.endswith(".npz"):
        raise node.fail(f"{file!r} is not an .npz file", "file",
                        hint="save arrays keyed by input name with numpy.savez")
    return DataSpec(file=base_dir / file if file else None,
                    entry=_entry(node, "entry") if node.has("entry") else None,
                    random=node.get("random", bool, False),
                    samples=node.get("samples", int, default_samples, minimum=1),
                    batch_size=node.get("batch_size", int, 16, minimum=1),
                    seed=node.get("seed", int, 0, minimum=0))


def _parse_tolerance(node: Node) -> dict[str, Any]:
    node.mapping(list(TOLERANCE_KEYS))
    out: dict[str, Any] = {}
    for key in node.value:
        value = node.value[key]
        if value is None:
            if key in ("rtol", "max_mismatch"):
                raise node.fail(f"{key} cannot be null", key, hint="use 0 to switch it off")
            out[key] = None
            continue
        out[key] = node.get(key, float, minimum=0.0)
        if key in ("min_cosine", "min_top1", "max_mismatch", "max_range_error") and out[key] > 1.0:
            raise node.fail(f"{key} is a share between 0 and 1, got {out[key]}", key)
    return out
