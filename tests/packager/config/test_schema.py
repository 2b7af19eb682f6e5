"""The JSON Schemas of manifests and targets (packager/config/schema.py) agree with the loaders.

Both come from the same declarations (packager/config/fields.py's Section/Field), and these tests hold
them to it: every shipped manifest and target is valid under its schema; a few rich documents
that together use every key of every section load and validate; near each of their places, a
key the schema does not list, a missing required key, or a value of the wrong type, range or
pattern is refused by the schema AND by the loader, at the same place; and corpus manifests with
unknown keys or wrong types are invalid under the schema too.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from packager.config.manifest import parse_manifest
from packager.config.schema import SCHEMA_KINDS, schema_document
from packager.config.targets import parse_target
from packager.errors import ConfigError

from ...conftest import REPO

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SCHEMAS = {kind: schema_document(kind) for kind in SCHEMA_KINDS}
VALIDATORS = {kind: Draft202012Validator(SCHEMAS[kind]) for kind in SCHEMA_KINDS}
SHIPPED = {
    "manifest": sorted((REPO / "manifests").glob("*.yaml"))
    + sorted((REPO / "benchmarks" / "manifests").glob("*.yaml")),
    "target": sorted((REPO / "packager" / "shipped_targets").glob("*.yaml"))
    + sorted((REPO / "benchmarks" / "targets").glob("*.yaml")),
}
FILE = "doc.yaml"

# Documents that, between them, give every key of every section (the loader accepts them all).
RICH = {"manifest": [yaml.safe_load(text) for text in ("""\
name: rich.model_1
description: every key the torch path allows
source: {framework: torch, entry: pkg/model.py:build, kwargs: {width: 8, deep: {a: 1}}}
inputs:
  - {name: x, dtype: float32, shape: [batch, 3, 8, 8], layout: NCHW}
  - {name: mask, dtype: bool, shape: [batch, 8]}
outputs:
  - logits
  - name: probs
    dtype: float16
    shape: [batch, 10]
    layout: NC
    scores: true
    tolerances:
      fp16: {atol: 0.01, rtol: 0.01, min_cosine: 0.99, min_top1: 0.9, max_mismatch: 0.0, max_range_error: null}
calibration: {file: data/calib.npz, samples: 64, batch_size: 8, seed: 3}
golden: {entry: data.py:golden, samples: 16, batch_size: 4, seed: 1}
evaluation: {entry: data.py:test_split, output: probs, metric: accuracy, higher_is_better: true, max_accuracy_drop: 1.5}
targets: [x86-cpu, my/device.yaml]
tolerances:
  fp32: {atol: null, rtol: 0.001}
  fp16: {min_cosine: 0.999}
  int8: {min_top1: 0.9, max_mismatch: 0.1, max_range_error: 0.2}
export: {opset: 18, exporter: dynamo, torchscript: script}
""", """\
name: rich-onnx
source: {framework: onnx, path: model.onnx}
inputs: [{name: x, dtype: int64, shape: [1, 16]}]
outputs: [{name: y}]
calibration: {random: true, samples: 8}
golden: {file: golden.npz}
targets: [rpi4]
""", """\
name: rich-keras
source: {framework: tensorflow, path: saved_model}
inputs: [{name: image, dtype: uint8, shape: [batch, 8, 8, 1], layout: NHWC}]
outputs: [logits]
calibration: {entry: model.py:calibration}
targets: [rpi4]
""", """\
name: rich-images
source: {framework: onnx, path: model.onnx}
inputs:
  - name: image
    dtype: float32
    shape: [batch, 3, 224, 224]
    layout: NCHW
    preprocess: {decode: image, color: BGR, resize: 256, interpolation: bicubic, crop: [224, 224],
                 scale: 0.00392156862745098, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
outputs:
  - {name: logits, postprocess: {softmax: true, top_k: 5, labels: labels.txt}}
calibration: {images: photos/, samples: 100}
golden: {images: golden-photos/, samples: 8}
targets: [x86-cpu]
""", """\
name: rich-text
source: {framework: onnx, path: model.onnx}
inputs:
  - {name: ids, dtype: int64, shape: [batch, seq]}
  - {name: mask, dtype: int64, shape: [batch, seq]}
  - {name: types, dtype: int32, shape: [batch, seq]}
outputs: [{name: logits, postprocess: {softmax: true, top_k: 2}}]
tokenizer: {vocab: vocab.txt, lowercase: false, max_length: 48, ids: ids, mask: mask, type_ids: types, name: review}
calibration: {texts: reviews.txt, samples: 64}
golden: {texts: golden.txt}
targets: [x86-cpu]
""")], "target": [yaml.safe_load(text) for text in ("""\
name: rich.device_1
description: every key a target allows
arch: aarch64
python: "3.12"
threads: 2
precision_fallback: true
drop_slower_quantized: true
explain_bytes: 4000000
notes: free text
candidates:
  - id: onnx-int8-trt
    format: onnx
    precision: int8
    backend: onnxruntime
    quantization: {mode: static, per_channel: true, calibration_method: entropy, fallback: mixed}
    io: float
    providers: [TensorrtExecutionProvider, CPUExecutionProvider]
    provider_options: [{trt_int8_enable: true}, {}]
  - {format: tflite, precision: int8, quantization: {mode: static}, io: int8, providers: [XNNPACK]}
  - {format: torchscript, precision: fp16, providers: [cuda, cpu]}
requirements:
  common: [numpy==2.2.6]
  onnxruntime: [onnxruntime==1.22.1]
  tflite: [ai-edge-litert==2.3.0]
  torchscript: [torch==2.13.0]
""", """\
name: rich-list
arch: x86_64
python: "3.11"
candidates: [{format: onnx, precision: fp32}]
requirements: [numpy==2.2.6, onnxruntime==1.22.1]
""")]}
# values that fit few places: tried everywhere, each must be refused by the loader wherever the
# schema refuses it (null is not among them: an optional key given as null counts as absent)
ODD_VALUES = [12345, -1, 0, 1.5, 2.0, "NOT VALID", "zzz", True, [], [1], ["zzz"], {}, {"zzz": 1}]


def load(kind: str, doc: Any) -> Any:
    if kind == "manifest":
        return parse_manifest(doc, FILE, Path("/nonexistent-base"))
    return parse_target(doc, FILE)


def loader_error(kind: str, doc: Any) -> ConfigError | None:
    try:
        load(kind, doc)
    except ConfigError as exc:
        return exc
    return None


def place(path: tuple[Any, ...]) -> str:
    """A path as the loaders write it: inputs[0].shape[1]."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def _resolve(kind: str, sub: dict[str, Any], value: Any) -> dict[str, Any]:
    """Follow $ref, and pick the anyOf branch that ``value`` fits."""
    root = SCHEMAS[kind]
    while True:
        if "$ref" in sub:
            sub = root["$defs"][sub["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in sub:
            fits = [o for o in sub["anyOf"]
                    if Draft202012Validator({**o, "$defs": root.get("$defs", {})}).is_valid(value)]
            assert len(fits) == 1, (sub, value)
            sub = fits[0]
        else:
            return sub


def walk(kind: str, doc: Any, sub: dict[str, Any] | None = None,
         path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], dict[str, Any], Any]]:
    """Every place of a valid document with its (resolved) schema: (path, schema, value)."""
    sub = _resolve(kind, SCHEMAS[kind] if sub is None else sub, doc)
    yield path, sub, doc
    if isinstance(doc, dict) and "properties" in sub:
        for key, value in doc.items():
            yield from walk(kind, value, sub["properties"][key], path + (key,))
    elif isinstance(doc, list) and "items" in sub:
        for i, value in enumerate(doc):
            yield from walk(kind, value, sub["items"], path + (i,))


def objects(kind: str) -> list[dict[str, Any]]:
    """Every object schema with fixed keys: the root and the sections in $defs."""
    schema = SCHEMAS[kind]
    return [schema] + [d for d in schema.get("$defs", {}).values() if "properties" in d]


def places(kind: str) -> Iterator[tuple[int, tuple[Any, ...], dict[str, Any], Any]]:
    for n, doc in enumerate(RICH[kind]):
        for path, sub, value in walk(kind, doc):
            yield n, path, sub, value


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


# -- the schema itself ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_schema_is_draft_2020_12_json_with_descriptions(kind: str) -> None:
    schema = SCHEMAS[kind]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(json.dumps(schema)) == schema
    assert schema_document(kind) == schema, "the same document every time"
    for obj in objects(kind):
        assert obj["additionalProperties"] is False and obj["description"]
        for key, prop in obj["properties"].items():
            assert prop.get("description"), f"{obj['title']}.{key} has no description"
            assert set(prop.get("required", ())) <= set(prop.get("properties", {}))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="manifest, target"):
        schema_document("bundle")


def test_schema_says_what_the_loader_defaults_and_choices_are() -> None:
    manifest, target = SCHEMAS["manifest"], SCHEMAS["target"]
    assert manifest["required"] == ["name", "source", "inputs", "outputs", "targets"]
    assert manifest["$defs"]["Source"]["properties"]["framework"]["enum"] == ["torch", "onnx", "tensorflow"]
    assert manifest["$defs"]["Calibration"]["properties"]["samples"]["default"] == 128
    assert manifest["$defs"]["Golden"]["properties"]["samples"]["default"] == 32
    assert "random" not in manifest["$defs"]["Golden"]["properties"]
    assert manifest["$defs"]["Export"]["properties"]["opset"] == {
        "description": "ONNX opset", "type": "integer", "minimum": 13, "default": 17}
    assert manifest["$defs"]["Tolerance"]["properties"]["atol"]["type"] == ["number", "null"]
    assert manifest["$defs"]["Tolerance"]["properties"]["rtol"]["type"] == "number"
    assert target["$defs"]["Candidate"]["required"] == ["format", "precision"]
    assert target["properties"]["arch"]["enum"] == ["x86_64", "aarch64", "armv7l"]


def _default(kind: str, title: str, key: str) -> Any:
    schema = SCHEMAS[kind]
    obj = schema if title is None else schema["$defs"][title]
    return obj["properties"][key]["default"]


def test_defaults_in_the_schema_are_the_loaders() -> None:
    """Every default the schema shows is what the loader fills in when the key is left out."""
    m = load("manifest", yaml.safe_load("""\
name: m
source: {framework: onnx, path: m.onnx}
inputs: [{name: x, dtype: float32, shape: [1, 3, 8, 8], layout: NCHW, preprocess: {decode: image, resize: [8, 8]}}]
outputs: [{name: y, postprocess: {top_k: 2}}]
calibration: {entry: d.py:c}
golden: {entry: d.py:g}
evaluation: {entry: d.py:e}
export: {}
targets: [t]
"""))
    text = load("manifest", yaml.safe_load("""\
name: m
source: {framework: onnx, path: m.onnx}
inputs: [{name: input_ids, dtype: int64, shape: [batch, 8]}]
outputs: [{name: y}]
tokenizer: {vocab: vocab.txt}
calibration: {texts: t.txt}
targets: [t]
""")).processing.text
    assert text is not None
    t = load("target", yaml.safe_load("""\
name: t
arch: x86_64
python: "3.11"
candidates: [{format: onnx, precision: int8, quantization: {mode: static}}]
requirements: [numpy]
"""))
    c = t.candidates[0]
    got = {
        ("manifest", None, "description"): m.description,
        ("manifest", "Output", "dtype"): m.outputs[0].dtype,
        ("manifest", "Preprocess", "color"): m.processing.inputs["x"].color,
        ("manifest", "Preprocess", "interpolation"): m.processing.inputs["x"].interpolation,
        ("manifest", "Postprocess", "softmax"): m.processing.outputs["y"].softmax,
        ("manifest", "Tokenizer", "lowercase"): text.lowercase,
        ("manifest", "Tokenizer", "ids"): text.inputs["input_ids"],
        ("manifest", "Tokenizer", "name"): text.name,
        ("manifest", "Calibration", "samples"): m.calibration.samples,
        ("manifest", "Calibration", "batch_size"): m.calibration.batch_size,
        ("manifest", "Calibration", "seed"): m.calibration.seed,
        ("manifest", "Calibration", "random"): m.calibration.random,
        ("manifest", "Golden", "samples"): m.golden.samples,
        ("manifest", "Golden", "batch_size"): m.golden.batch_size,
        ("manifest", "Golden", "seed"): m.golden.seed,
        ("manifest", "Evaluation", "metric"): m.evaluation.metric if m.evaluation else None,
        ("manifest", "Evaluation", "higher_is_better"): m.evaluation.higher_is_better if m.evaluation else None,
        ("manifest", "Export", "opset"): m.opset,
        ("manifest", "Export", "exporter"): m.exporter,
        ("manifest", "Export", "torchscript"): m.torchscript,
        ("target", None, "description"): t.description,
        ("target", None, "threads"): t.threads,
        ("target", None, "precision_fallback"): t.precision_fallback,
        ("target", None, "drop_slower_quantized"): t.drop_slower_quantized,
        ("target", None, "explain_bytes"): t.explain_bytes,
        ("target", None, "notes"): t.notes,
        ("target", "Candidate", "io"): c.io,
        ("target", "Quantization", "per_channel"): c.quantization.per_channel if c.quantization else None,
        ("target", "Quantization", "calibration_method"):
            c.quantization.calibration_method if c.quantization else None,
        ("target", "Quantization", "fallback"): c.quantization.fallback if c.quantization else None,
    }
    for (kind, title, key), value in got.items():
        assert _default(kind, title, key) == value, (kind, title, key)
    shown = {(kind, obj["title"] if obj is not SCHEMAS[kind] else None, key)
             for kind in SCHEMA_KINDS for obj in objects(kind)
             for key, prop in obj["properties"].items() if "default" in prop}
    assert shown == set(got), "a default the schema shows is not checked here"


# -- shipped documents ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind,path", [(k, p) for k in SCHEMA_KINDS for p in SHIPPED[k]],
                         ids=lambda x: x if isinstance(x, str) else x.relative_to(REPO).as_posix())
def test_shipped_documents_are_valid(kind: str, path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{place(tuple(e.absolute_path))}: {e.message}" for e in VALIDATORS[kind].iter_errors(doc)]
    assert not errors, f"{path} is invalid under the {kind} schema: {errors}"
    assert loader_error(kind, doc) is None


def test_every_shipped_kind_is_there() -> None:
    assert len(SHIPPED["manifest"]) >= 4 and len(SHIPPED["target"]) >= 6


# -- the keys: the schema's and the loader's are the same, section by section ---------------------
@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_rich_documents_are_valid_and_use_every_schema_key(kind: str) -> None:
    used: set[tuple[str, str]] = set()
    for doc in RICH[kind]:
        assert not list(VALIDATORS[kind].iter_errors(doc))
        assert loader_error(kind, doc) is None, loader_error(kind, doc)
    for _, _, sub, value in places(kind):
        if "properties" in sub:
            used |= {(sub["title"], key) for key in value}
    declared = {(obj["title"], key) for obj in objects(kind) for key in obj["properties"]}
    assert declared - used == set(), "keys the rich documents should use, to show the loader takes them"
    assert used <= declared


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_keys_the_schema_does_not_list_are_refused_by_both(kind: str) -> None:
    """Every key either schema knows, and a made-up one, is tried in every section of the rich
    documents: where the section's schema does not list it, the loader refuses it as unknown."""
    words = sorted({key for k in SCHEMA_KINDS for obj in objects(k) for key in obj["properties"]}) + ["zzz"]
    tried = 0
    for n, path, sub, _value in places(kind):
        if "properties" not in sub:
            continue
        for word in words:
            if word in sub["properties"]:
                continue
            doc = _set(RICH[kind][n], path + (word,), 1) if path else {**RICH[kind][n], word: 1}
            assert not VALIDATORS[kind].is_valid(doc)
            exc = loader_error(kind, doc)
            assert exc is not None, f"the loader takes {place(path + (word,))!r}, the schema does not"
            assert exc.message.startswith(f"unknown key {word!r}"), exc
            assert exc.where == f"{FILE}: {place(path + (word,))}", exc
            tried += 1
    assert tried > 100


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_required_keys_are_required_by_both(kind: str) -> None:
    tried = 0
    for n, path, sub, _value in places(kind):
        for key in sub.get("required", ()):
            doc = copy.deepcopy(RICH[kind][n])
            parent = doc
            for k in path:
                parent = parent[k]
            del parent[key]
            assert not VALIDATORS[kind].is_valid(doc)
            exc = loader_error(kind, doc)
            assert exc is not None and exc.message == f"missing required field {key!r}", (place(path), key, exc)
            assert exc.where == f"{FILE}: {place(path + (key,))}"
            tried += 1
    assert tried > 10


# -- the values: what the schema refuses, the loader refuses (at that place) ----------------------
@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_values_the_schema_refuses_the_loader_refuses(kind: str) -> None:
    tried = 0
    for n, path, _, _ in places(kind):
        if not path:
            continue
        for odd in ODD_VALUES:
            doc = _set(RICH[kind][n], path, copy.deepcopy(odd))
            if VALIDATORS[kind].is_valid(doc):
                continue
            exc = loader_error(kind, doc)
            assert exc is not None, f"{place(path)}: {odd!r} is accepted by the loader, refused by the schema"
            assert exc.where.startswith(f"{FILE}: {place(path)}"), (place(path), odd, exc)
            tried += 1
    assert tried > 200


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_choices_and_patterns_are_the_loaders(kind: str) -> None:
    """Every value the schema's enums list is taken by the loader where the context allows, and
    values next to them are refused by both."""
    for n, path, sub, value in places(kind):
        for choice in sub.get("enum", ()):
            doc = _set(RICH[kind][n], path, choice)
            assert VALIDATORS[kind].is_valid(doc)
        if "enum" in sub or "pattern" in sub:
            for bad in (f"{value}x", f" {value}", str(value).upper() + "!"):
                doc = _set(RICH[kind][n], path, bad)
                if not VALIDATORS[kind].is_valid(doc):
                    exc = loader_error(kind, doc)
                    assert exc is not None and exc.where == f"{FILE}: {place(path)}", (place(path), bad, exc)


# -- the corpus of broken manifests ----------------------------------------------------------------
SCHEMA_LEVEL_CORPUS = [
    "key_unknown_top", "key_unknown_nested", "key_missing_required", "key_framework_typo",
    "type_name_number", "type_name_spaces", "type_shape_string", "type_dimension_zero", "type_dtype_typo",
    "type_inputs_mapping", "type_samples_string", "type_targets_string", "type_tolerance_negative",
    "yaml_list",
]


@pytest.mark.parametrize("name", SCHEMA_LEVEL_CORPUS)
def test_corpus_mistakes_are_invalid_under_the_schema(name: str) -> None:
    doc = yaml.safe_load((CORPUS / f"{name}.yaml").read_text(encoding="utf-8"))
    error = best_match(VALIDATORS["manifest"].iter_errors(doc))
    assert error is not None, f"{name}.yaml is valid under the manifest schema"
    exc = loader_error("manifest", doc)
    assert exc is not None
    assert exc.where.split(": ", 1)[-1].startswith(place(tuple(error.absolute_path))) or \
        exc.where == FILE, (exc.where, list(error.absolute_path))


@pytest.mark.parametrize("name", ["typo_key", "typo_value"])
def test_corpus_target_mistakes_are_invalid_under_the_schema(name: str) -> None:
    doc = yaml.safe_load((CORPUS / "targets" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert not VALIDATORS["target"].is_valid(doc)
    assert loader_error("target", doc) is not None


def test_corpus_documents_the_loader_takes_are_valid() -> None:
    """The corpus's other manifests are broken beyond what a schema can see (files, entry points,
    signatures): the loader takes them, and so must the schema."""
    taken = 0
    for path in sorted(CORPUS.glob("*.yaml")) + sorted((CORPUS / "targets").glob("*.yaml")):
        kind = "target" if path.parent.name == "targets" else "manifest"
        try:
            doc = yaml.safe_load(path.read_bytes())
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if loader_error(kind, doc) is None:
            errors = [e.message for e in VALIDATORS[kind].iter_errors(doc)]
            assert not errors, f"{path.name}: {errors}"
            taken += 1
    assert taken > 40
