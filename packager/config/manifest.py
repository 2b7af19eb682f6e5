"""Manifests: what to package (source model, signature, data, targets, tolerances)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runtime.compare import DEFAULT_TOLERANCES, Tolerance
from runtime.processing import Processing
from runtime.signature import TensorSpec

from ..errors import ManifestError
from .fields import (
    NAME_PATTERN,
    NAME_RULE,
    Field,
    ListOf,
    Node,
    OneOf,
    Section,
    item,
    read_yaml,
)
from .processing import POSTPROCESS, PREPROCESS, TOKENIZER, parse_postprocess, parse_preprocess, parse_tokenizer
from .specs import DataSpec as DataSpec
from .specs import EvaluationSpec as EvaluationSpec
from .specs import OutputSpec as OutputSpec
from .specs import SourceSpec as SourceSpec

FRAMEWORKS = ("torch", "onnx", "tensorflow")
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")
LAYOUTS = ("NCHW", "NHWC", "NC", "NCW", "NWC", "any")
EXPORTERS = ("auto", "dynamo", "torchscript")
TORCHSCRIPT_METHODS = ("auto", "trace", "script")
TOLERANCE_KEYS = ("atol", "rtol", "min_cosine", "min_top1", "max_mismatch", "max_range_error")
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "int": "int64", "long": "int64",
                  "fp32": "float32", "fp16": "float16", "f32": "float32", "i64": "int64"}
ENTRY_PATTERN = r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$"
SYMBOL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"   # a dynamic axis: batch, seq_len
_SHARE_KEYS = ("min_cosine", "min_top1", "max_mismatch", "max_range_error")


# -- the declarations: what each section of a manifest holds (packager/config/schema.py reads them too) --
def _entry_field(description: str, required: bool = False) -> Field:
    return Field("entry", str, description, required=required, pattern=ENTRY_PATTERN,
                 message="entry point {value!r} must look like 'path/to/file.py:function' or "
                         "'package.module:function'")


_TOLERANCE_DOCS = {
    "atol": "absolute error allowed per element (|cand - ref| <= atol + rtol * |ref|); null switches it off",
    "rtol": "relative error allowed per element, on top of atol (0 switches it off)",
    "min_cosine": "least cosine similarity of the flattened outputs (0..1); null switches it off",
    "min_top1": "least share of rows whose argmax agrees, for class scores (0..1); null switches it off",
    "max_mismatch": "share of elements allowed to differ, for integer/bool outputs (0..1)",
    "max_range_error": "largest |cand - ref| as a share of the reference's value range (0..1); "
                       "null switches it off",
}
TOLERANCE = Section("Tolerance", "pass criteria for one precision: given keys replace the defaults", tuple(
    Field(key, float, _TOLERANCE_DOCS[key], minimum=0.0, nullable=key not in ("rtol", "max_mismatch"),
          maximum=1.0 if key in _SHARE_KEYS else None,
          message="{key} is a share between 0 and 1, got {value}" if key in _SHARE_KEYS else None)
    for key in TOLERANCE_KEYS))
TOLERANCES = Section("Tolerances", "tolerance overrides per precision", tuple(
    Field(precision, TOLERANCE, f"overrides of the default {precision} tolerance")
    for precision in DEFAULT_TOLERANCES))

SOURCE = Section("Source", "where the original model comes from", (
    Field("framework", str, "what the model is written in", required=True, choices=FRAMEWORKS),
    _entry_field("torch and tensorflow: 'file.py:function' or 'package.module:function' returning the "
                 "model with its weights loaded (paths relative to the manifest)"),
    Field("path", str, "onnx: the model file; tensorflow: a SavedModel folder or a .keras file "
                       "(relative to the manifest)"),
    Field("kwargs", dict, "keyword arguments passed to the entry point"),
))
_TENSOR_FIELDS = (
    Field("name", str, "the tensor's name in the model", required=True),
    Field("dtype", str, "numpy element type", default="float32", choices=DTYPES),
    Field("shape", ListOf(OneOf((item(int, "a fixed size", minimum=1),
                                 item(str, "a name for a dynamic axis, e.g. batch", pattern=SYMBOL_PATTERN)))),
          "one entry per axis: a positive size or a symbol such as batch"),
    Field("layout", str, "axis order, for converters that change it (NCHW, NHWC, ...)", choices=LAYOUTS),
)
INPUT = Section("Input", "one input of the model's signature", tuple(
    replace(f, required=True, default=None) if f.name in ("dtype", "shape") else f for f in _TENSOR_FIELDS) + (
    Field("preprocess", PREPROCESS, "how a raw image becomes this input (on the device too)"),))
OUTPUT = Section("Output", "one output of the model's signature", _TENSOR_FIELDS + (
    Field("postprocess", POSTPROCESS, "softmax / top-k with labels, run on the device"),
    Field("scores", bool, "whether the output holds class scores (top-1 agreement is checked); "
                          "guessed from the shape when left out"),
    Field("tolerances", TOLERANCES, "tolerance overrides for this output only"),
))


def _data_section(title: str, description: str, samples: int, random: bool) -> Section:
    return Section(title, description, (
        Field("file", str, "an .npz file of arrays keyed by input name (relative to the manifest)",
              pattern=r"\.npz$", message="{value!r} is not an .npz file",
              hint="save arrays keyed by input name with numpy.savez"),
        _entry_field("'file.py:function' yielding feed dicts {input name: array}"),
        Field("images", str, "a folder of images (JPEG, PNG, ...; relative to the manifest) for a model of one "
                             "input with preprocess: they are pre-processed as the device will, and golden images "
                             "go into the bundle for the end-to-end check"),
        Field("texts", str, "a UTF-8 text file, one sample per line (relative to the manifest), for a model with "
                            "a tokenizer: tokenized as the device will; golden texts go into the bundle"),
        Field("samples", int, "how many samples to use", default=samples, minimum=1),
        Field("batch_size", int, "samples per batch", default=16, minimum=1),
        Field("seed", int, "seed for drawing and shuffling samples", default=0, minimum=0),
    ) + ((Field("random", bool, "use random data instead of real samples (not recommended: "
                                "int8 calibrated on noise is poor)", default=False),) if random else ()))


CALIBRATION = _data_section("Calibration", "real samples for int8 calibration (one of file, entry, random)",
                            128, random=True)
GOLDEN = _data_section("Golden", "samples the parity check runs on (one of file or entry; left out: "
                                 "drawn from the calibration data)", 32, random=False)
EVALUATION = Section("Evaluation", "held-out data for each artifact's accuracy (or your metric) and its budget", (
    _entry_field("'file.py:function' yielding (feeds, labels) pairs", required=True),
    Field("output", str, "the output holding the class scores, for accuracy (default: the first output)"),
    Field("metric", str, "accuracy (top-1 of output against integer labels), or your metric as an entry point "
                         "'file.py:function' called with (outputs, labels): every output over the evaluation "
                         "data (arrays, samples along axis 0) and the labels as given, returning a number "
                         "(mAP, IoU, 1 - WER, ...)", default="accuracy", pattern=f"^accuracy$|{ENTRY_PATTERN}",
          message="metric {value!r} must be accuracy or an entry point like 'metrics.py:mean_iou'",
          hint="write the metric as a function(outputs, labels) -> float and name it 'file.py:function'"),
    Field("higher_is_better", bool, "whether a larger metric is better (false for error rates such as WER)",
          default=True),
    Field("max_accuracy_drop", float, "the budget: how far below the original model a candidate's metric may "
                                      "fall, in points (hundredths: accuracy 0.93 is 93 points); a candidate "
                                      "beyond it is dropped like one that misses parity", minimum=0.0,
          hint="the points a candidate's metric may fall below the original model's, e.g. 1.0"),
))
EXPORT = Section("Export", "how the model is exported", (
    Field("opset", int, "ONNX opset", default=17, minimum=13),
    Field("exporter", str, "torch -> ONNX exporter", default="auto", choices=EXPORTERS),
    Field("torchscript", str, "how a TorchScript artifact is made (auto: trace, script where the trace warns)",
          default="auto", choices=TORCHSCRIPT_METHODS),
))
MANIFEST = Section("Manifest", "what edgepack packages: the source model, its signature, data, targets "
                               "and tolerances", (
    Field("name", str, "the model's name; it names the bundle folder", required=True, pattern=NAME_PATTERN,
          message=f"model name {{value!r}} {NAME_RULE}", hint="it names the bundle folder, e.g. digits-cnn"),
    Field("description", str, "one line about the model", default=""),
    Field("source", SOURCE, "where the original model comes from", required=True),
    Field("inputs", ListOf(INPUT, min_items=1), "the model's inputs, in order", required=True),
    Field("outputs", ListOf(OneOf((item(str, "the output's name alone (float32)"), OUTPUT)), min_items=1),
          "the model's outputs, in order", required=True),
    Field("calibration", CALIBRATION, "real samples for int8 calibration"),
    Field("golden", GOLDEN, "samples the parity check runs on"),
    Field("evaluation", EVALUATION, "held-out data for reporting accuracy"),
    Field("tokenizer", TOKENIZER, "for a text model: how raw text becomes its id inputs"),
    Field("targets", ListOf(str, min_items=1), "devices to package for: shipped target names or target "
                                                "YAML paths (relative to the manifest)",
          required=True, message="needs at least one target", hint="e.g. targets: [x86-cpu, rpi4]"),
    Field("tolerances", TOLERANCES, "tolerance overrides per precision, for every output"),
    Field("export", EXPORT, "how the model is exported"),
))


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. Relative paths are resolved against the manifest's folder."""

    name: str
    description: str
    source: SourceSpec
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[OutputSpec, ...]
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
    opset_explicit: bool = False  # export.opset written: an ONNX source is upgraded to it (else keeps its own)
    processing: Processing = Processing()  # preprocess per input, postprocess per output (labels: absolute paths)

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
    root.mapping(MANIFEST)
    name = root.get("name")
    source = _parse_source(root.child("source"), base_dir)
    inputs = tuple(_parse_input(n) for n in root.items("inputs"))
    outputs = tuple(_parse_output(n) for n in root.items("outputs"))
    _check_unique(root, "inputs", [t.name for t in inputs])
    _check_unique(root, "outputs", [t.name for t in outputs])

    cal_node = root.section("calibration")
    calibration = _parse_data(cal_node, CALIBRATION, base_dir) if cal_node else DataSpec()
    golden_node = root.section("golden")
    golden = _parse_data(golden_node, GOLDEN, base_dir) if golden_node else DataSpec(samples=GOLDEN["samples"].default)
    golden_from_cal = golden.file is None and golden.entry is None and golden.images is None and golden.texts is None
    if cal_node is None and golden_from_cal:
        raise root.fail("no calibration or golden data given", "calibration",
                        hint="add calibration: {entry: data.py:samples} or {file: calib.npz} with "
                             "real samples (or random: true to accept random data, with a warning)")

    targets = tuple(root.strings("targets"))

    tolerances: dict[str, dict[str, Any]] = {}
    tol_node = root.section("tolerances")
    if tol_node:
        tol_node.mapping(TOLERANCES)
        for precision in tol_node.value:
            tolerances[precision] = _parse_tolerance(tol_node.child(precision))
    output_tolerances: dict[str, dict[str, dict[str, Any]]] = {}
    for node, spec in zip(root.items("outputs"), outputs, strict=True):
        t = node.section("tolerances")
        if t:
            t.mapping(TOLERANCES)
            output_tolerances[spec.name] = {p: _parse_tolerance(t.child(p)) for p in t.value}

    evaluation = None
    ev = root.section("evaluation")
    if ev:
        ev.mapping(EVALUATION)
        entry = ev.get("entry")
        out = ev.get("output", default=outputs[0].name, choices=[o.name for o in outputs])
        evaluation = EvaluationSpec(entry=entry, output=out, metric=ev.get("metric"),
                                    higher_is_better=ev.get("higher_is_better"), max_drop=ev.get("max_accuracy_drop"))

    opset, exporter, torchscript = (EXPORT[k].default for k in ("opset", "exporter", "torchscript"))
    ex = root.section("export")
    if ex:
        ex.mapping(EXPORT)
        opset, exporter, torchscript = ex.get("opset"), ex.get("exporter"), ex.get("torchscript")

    tok = root.section("tokenizer")
    processing = Processing(
        inputs={s.name: parse_preprocess(n.child("preprocess"), s)
                for n, s in zip(root.items("inputs"), inputs, strict=True) if n.has("preprocess")},
        outputs={s.name: parse_postprocess(n.child("postprocess"), base_dir)
                 for n, s in zip(root.items("outputs"), outputs, strict=True)
                 if isinstance(n.value, dict) and n.has("postprocess")},
        text=parse_tokenizer(tok, inputs, base_dir) if tok else None)
    if processing.inputs and processing.text:
        raise root.fail("a model fed from images takes no tokenizer", "tokenizer",
                        hint="declare preprocess (images) or tokenizer (text), not both")
    for key, data_node, data in (("calibration", cal_node, calibration), ("golden", golden_node, golden)):
        if data_node is not None and data.images is not None and (len(inputs) != 1 or not processing.inputs):
            raise data_node.fail("images feed a model of one input that declares preprocess", "images",
                                 hint="add preprocess: {decode: image, ...} to the input" if len(inputs) == 1 else
                                 f"this model has {len(inputs)} inputs: give {key} as file or entry")
        if data_node is not None and data.texts is not None and processing.text is None:
            raise data_node.fail("texts need a tokenizer to become the model's inputs", "texts",
                                 hint="add tokenizer: {vocab: vocab.txt} to the manifest")
    return Manifest(name=name, description=root.get("description"), source=source, processing=processing,
                    inputs=inputs, outputs=outputs, calibration=calibration, golden=golden,
                    golden_from_calibration=golden_from_cal, targets=targets, tolerances=tolerances,
                    output_tolerances=output_tolerances, evaluation=evaluation, opset=opset, exporter=exporter,
                    torchscript=torchscript, base_dir=base_dir, file=file, opset_explicit=bool(ex and ex.has("opset")))


def _check_unique(root: Node, key: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise root.fail(f"name(s) {dupes} appear more than once", key, hint="give each a distinct name")


def _parse_source(node: Node, base_dir: Path) -> SourceSpec:
    node.mapping(SOURCE)
    framework = node.get("framework")
    if node.has("kwargs") and not isinstance(node.value["kwargs"], dict):
        raise node.fail("expected a mapping of keyword arguments", "kwargs")
    kwargs = node.value.get("kwargs") or {}
    if framework == "torch":
        if not node.has("entry"):
            raise node.fail("a torch source needs 'entry'", "entry",
                            hint="entry: path/to/model.py:build_model (a function returning an "
                                 "nn.Module with its weights loaded)")
        if node.has("path"):
            raise node.fail("'path' is for onnx sources; a torch source uses 'entry'", "path")
        return SourceSpec(framework, entry=node.get("entry"), kwargs=dict(kwargs))
    if framework == "tensorflow":
        if node.has("entry") == node.has("path"):
            raise node.fail("a tensorflow source needs exactly one of 'entry' or 'path'",
                            hint="path: a SavedModel folder or a .keras file; or entry: "
                                 "file.py:function returning a keras.Model")
        if node.has("entry"):
            return SourceSpec(framework, entry=node.get("entry"), kwargs=dict(kwargs))
        if kwargs:
            raise node.fail("'kwargs' only applies to an entry point", "kwargs")
        return SourceSpec(framework, path=(base_dir / node.get("path")))
    if not node.has("path"):
        raise node.fail("an onnx source needs 'path'", "path", hint="path: model.onnx")
    if node.has("entry") or kwargs:
        raise node.fail("an onnx source takes only 'path'", "entry" if node.has("entry") else "kwargs")
    return SourceSpec(framework, path=(base_dir / node.get("path")))


def _parse_input(node: Node) -> TensorSpec:
    if isinstance(node.value, str):
        raise node.fail("an input needs name, dtype and shape",
                        hint="write - {name: x, dtype: float32, shape: [batch, 3, 224, 224]}")
    node.mapping(INPUT)
    shape = _parse_shape(node)
    assert shape is not None  # INPUT requires it
    return TensorSpec(name=node.get("name"), dtype=_parse_dtype(node), shape=shape, layout=node.get("layout"))


def _parse_output(node: Node) -> OutputSpec:
    if isinstance(node.value, str):
        return OutputSpec(name=node.value, dtype="float32")
    node.mapping(OUTPUT)
    return OutputSpec(name=node.get("name"), dtype=_parse_dtype(node), shape=_parse_shape(node),
                      layout=node.get("layout"), scores=node.get("scores"))


def _parse_shape(node: Node) -> tuple[int | str, ...] | None:
    shape_val = node.value.get("shape")
    if shape_val is None:
        return None
    if not isinstance(shape_val, list):
        raise node.fail(f"shape must be a list, got {type(shape_val).__name__} {shape_val!r}", "shape",
                        hint="write it like [batch, 1, 8, 8]: one entry per axis")
    dims: list[int | str] = []
    for i, d in enumerate(shape_val):
        ok = (isinstance(d, int) and not isinstance(d, bool) and d > 0) or \
             (isinstance(d, str) and re.match(SYMBOL_PATTERN, d))
        if not ok:
            raise node.child("shape").fail(
                f"dimension {d!r} must be a positive integer or a symbol like 'batch'", i,
                hint="a fixed size (1, 28, ...) or a name for a dynamic axis (batch)")
        dims.append(d)
    return tuple(dims)


def _parse_dtype(node: Node) -> str:
    raw_dtype = node.value.get("dtype")
    if isinstance(raw_dtype, str) and raw_dtype in _DTYPE_ALIASES:
        raise node.fail(f"{raw_dtype!r} is not one of: {', '.join(DTYPES)} (did you mean "
                        f"{_DTYPE_ALIASES[raw_dtype]!r}?)", "dtype", hint="dtypes are numpy names with their width")
    dtype: str = node.get("dtype")
    return dtype


def _parse_data(node: Node, section: Section, base_dir: Path) -> DataSpec:
    node.mapping(section)
    allow_random = "random" in section
    random = node.get("random") if allow_random else False
    given = [k for k in ("file", "entry", "images", "texts") if node.has(k)] + (["random"] if random else [])
    if len(given) > 1:
        raise node.fail(f"give only one of file, entry, images, texts{', random' if allow_random else ''}; "
                        f"got {given}")
    if allow_random and not given:
        raise node.fail("no data given", hint="add file: data.npz, entry: data.py:function or images: DIR with "
                                               "real samples (or random: true, not recommended)")
    file, images, texts = node.get("file"), node.get("images"), node.get("texts")
    return DataSpec(file=base_dir / file if file else None, images=base_dir / images if images else None,
                    texts=base_dir / texts if texts else None,
                    entry=node.get("entry"),
                    random=random,
                    samples=node.get("samples"),
                    batch_size=node.get("batch_size"),
                    seed=node.get("seed"))


def _parse_tolerance(node: Node) -> dict[str, Any]:
    node.mapping(TOLERANCE)
    out: dict[str, Any] = {}
    for key in node.value:
        if node.value[key] is None:
            if not TOLERANCE[key].nullable:
                raise node.fail(f"{key} cannot be null", key, hint="use 0 to switch it off")
            out[key] = None
            continue
        out[key] = node.get(key)
    return out
