"""Fuzz the manifest and target loaders: any input either loads or raises our error type.

Three kinds of input: random YAML-able documents, the shipped manifests/targets with one or a few
random mutations (a value replaced, a key dropped, renamed or added), and random bytes/text written
to a file and loaded from disk. Anything but a valid object or a ConfigError (ManifestError /
TargetError) is a bug: a KeyError, TypeError, ValueError... would reach the user as a traceback.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packager.config.manifest import Manifest, load_manifest, parse_manifest
from packager.config.targets import Target, load_target, parse_target
from packager.errors import ManifestError, TargetError

from ...conftest import REPO

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

SHIPPED_MANIFESTS = sorted((REPO / "manifests").glob("*.yaml"))
SHIPPED_TARGETS = sorted((REPO / "packager" / "shipped_targets").glob("*.yaml"))
MANIFEST_DOCS = {p.name: yaml.safe_load(p.read_text()) for p in SHIPPED_MANIFESTS}
TARGET_DOCS = {p.name: yaml.safe_load(p.read_text()) for p in SHIPPED_TARGETS}

# words the loaders look for, so random documents reach past the first key check
KEYS = sorted({
    "name", "description", "source", "framework", "entry", "path", "kwargs", "inputs", "outputs",
    "dtype", "shape", "layout", "scores", "tolerances", "calibration", "golden", "evaluation",
    "targets", "export", "opset", "exporter", "torchscript", "file", "random", "samples", "batch_size",
    "seed", "output", "metric", "atol", "rtol", "min_cosine", "min_top1", "max_mismatch",
    "max_range_error", "fp32", "fp16", "int8", "arch", "python", "threads", "candidates", "requirements",
    "precision_fallback", "notes", "id", "format", "precision", "backend", "providers",
    "provider_options", "quantization", "io", "mode", "per_channel", "calibration_method", "common",
    "onnxruntime", "tflite",
})
WORDS = KEYS + ["torch", "onnx", "tensorflow", "float32", "int64", "batch", "x86_64", "aarch64", "3.11",
                "static", "dynamic", "CPUExecutionProvider", "XNNPACK", "cpu", "model.py:build",
                "data.npz", "x86-cpu", "NCHW", "accuracy", "minmax", "delegate:lib.so", ""]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS), st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(), st.booleans(), st.none())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=6)),
    max_leaves=30,
)


def _check_manifest(doc: Any, tmp: Path) -> None:
    try:
        result = parse_manifest(doc, "fuzz.yaml", tmp)
    except ManifestError as exc:
        assert exc.message and exc.where and exc.where.startswith("fuzz.yaml"), exc
        return
    assert isinstance(result, Manifest)


def _check_target(doc: Any) -> None:
    try:
        result = parse_target(doc, "fuzz.yaml")
    except TargetError as exc:
        assert exc.message and exc.where and exc.where.startswith("fuzz.yaml"), exc
        return
    assert isinstance(result, Target)


@FUZZ
@given(doc=documents)
def test_random_documents(doc: Any) -> None:
    _check_manifest(doc, Path("/nonexistent-base"))
    _check_target(doc)


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(KEYS), documents, max_size=12))
def test_random_mappings_of_known_keys(doc: dict[str, Any]) -> None:
    _check_manifest(doc, Path("/nonexistent-base"))
    _check_target(doc)


# -- mutations of the shipped documents ------------------------------------------------------------
def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document (the root included)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def mutated(draw: st.DrawFn, docs: dict[str, Any]) -> Any:
    doc = copy.deepcopy(docs[draw(st.sampled_from(sorted(docs)))])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "add", "wrap"]))
        if action == "replace":
            parent[key] = draw(documents)
        elif action == "wrap":  # a value put one level too deep or too shallow
            parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, str(parent[key])]))
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            new = draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)))
            parent[new + ("" if new != key else "s")] = parent.pop(key)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(documents)
        elif action == "add" and isinstance(parent, list):
            parent.append(draw(documents))
    return doc


@FUZZ
@given(doc=mutated(MANIFEST_DOCS))
def test_mutated_shipped_manifests(doc: Any) -> None:
    _check_manifest(doc, REPO / "manifests")


@FUZZ
@given(doc=mutated(TARGET_DOCS))
def test_mutated_shipped_targets(doc: Any) -> None:
    _check_target(doc)


def test_shipped_documents_load() -> None:
    """The mutation fuzzers start from valid documents."""
    for name, doc in MANIFEST_DOCS.items():
        assert isinstance(parse_manifest(doc, name, REPO / "manifests"), Manifest)
    for name, doc in TARGET_DOCS.items():
        assert isinstance(parse_target(doc, name), Target)


# -- bytes and text on disk ----------------------------------------------------------------------
YAML_TOKENS = ["\n", "  ", "- ", ": ", "{", "}", "[", "]", ",", "'", '"', "&a ", "*a", "? ", "!!",
               "!!python/object:os.system ",
               "!!binary ", "!!timestamp ", "!!float ", "!!int ", "!!set ", "<<: ", "%YAML 1.1\n", "---\n", "...\n",
               "#",
               "|", ">", "\t", "2024-13-45", "0x", "1e400", "9" * 400, ".nan", ".inf", "~", "null", "yes", "\\x00",
               "\x00", "\ufeff", "é"] + [w + ": " for w in KEYS[:20]] + WORDS


def _shipped_texts() -> list[str]:
    return [p.read_text() for p in SHIPPED_MANIFESTS + SHIPPED_TARGETS]


@st.composite
def mangled_text(draw: st.DrawFn) -> bytes:
    """Shipped files with bytes cut, flipped or spliced in; or token soup; or raw bytes."""
    kind = draw(st.sampled_from(["mangle", "tokens", "bytes", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "tokens":
        return "".join(draw(st.lists(st.sampled_from(YAML_TOKENS), max_size=40))).encode()
    if kind == "deep":  # deeply nested flow collections
        depth = draw(st.integers(10, 300))
        return (draw(st.sampled_from(["name: ", "targets: ", ""])) + "[" * depth + "]" * draw(
            st.integers(0, depth))).encode()
    data = bytearray(draw(st.sampled_from(_shipped_texts())).encode())
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["cut", "flip", "insert"]))
        if op == "cut":
            del data[i:i + draw(st.integers(1, 40))]
        elif op == "flip":
            data[i] = draw(st.integers(0, 255))
        else:
            data[i:i] = draw(st.sampled_from(YAML_TOKENS)).encode()
    return bytes(data)


@FUZZ
@given(data=mangled_text())
def test_files_on_disk(data: bytes, tmp_path_factory: Any) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "fuzz.yaml"
    path.write_bytes(data)
    try:
        assert isinstance(load_manifest(path), Manifest)
    except ManifestError as exc:
        assert exc.where and str(path) in exc.where, exc
    try:
        assert isinstance(load_target(str(path)), Target)
    except TargetError as exc:
        assert exc.where and str(path) in exc.where, exc


FOUND_TEXTS = [
    "name: 2024-13-45\n",                 # a timestamp that is not a date: ValueError in PyYAML
    "? [a, b]\n: 1\n",                    # a list as a key: TypeError in the duplicate-key check
    "{[a]: 1}\n",
    "name: !!set [a]\n",                  # a tagged set: TypeError in the duplicate-key check
    "name: !!int abc\n",                  # explicit tags whose value does not fit: ValueError
    "name: !!float abc\n",
    "!!float \n",                         # an empty float: IndexError inside PyYAML
    "!!bool \n",                          # an empty bool: KeyError inside PyYAML
    "name: !!timestamp abc\n",            # AttributeError inside PyYAML
    "name: " + "[" * 5000 + "]" * 5000 + "\n",  # RecursionError
]


@pytest.mark.parametrize("text", FOUND_TEXTS, ids=range(len(FOUND_TEXTS)))
def test_texts_that_once_crashed(text: str, tmp_path: Path) -> None:
    path = tmp_path / "found.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError, match="malformed YAML"):
        load_manifest(path)
    with pytest.raises(TargetError, match="malformed YAML"):
        load_target(str(path))


TARGET = {"name": "t", "arch": "x86_64", "python": "3.11", "requirements": [],
          "candidates": [{"format": "onnx", "precision": "fp32"}]}


@pytest.mark.parametrize("doc, expected", [
    ({"tolerances": {"fp32": {"atol": 10 ** 400}}}, "too large"),   # OverflowError in float()
    ({"tolerances": {"fp32": {"atol": float("nan")}}}, "NaN"),      # NaN accepted as a tolerance
    ({"calibration": {"random": True, "seed": -1}}, "must be >= 0"),  # ValueError later in numpy
])
def test_documents_that_once_crashed(doc: dict[str, Any], expected: str) -> None:
    base = dict(MANIFEST_DOCS["digits-cnn.yaml"])
    base.update(doc)
    with pytest.raises(ManifestError, match=expected):
        parse_manifest(base, "found.yaml", REPO / "manifests")


def test_empty_provider_list_is_refused() -> None:
    doc = copy.deepcopy(TARGET)
    doc["candidates"][0]["providers"] = []
    with pytest.raises(TargetError, match="at least one"):
        parse_target(doc, "found.yaml")
