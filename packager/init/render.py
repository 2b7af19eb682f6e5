"""The starter manifest ``edgepack init`` writes, as commented YAML text.

``render`` lays out an ``Inferred`` signature with every section explained, the targets list (one
enabled, the others commented in) and the calibration placeholder ``REPLACE-ME/calibration.npz``;
``data_format`` says what calibration/golden data must look like for given inputs (also used by
``placeholders``); ``dims_text`` and ``rel_posix`` are how dims and paths are spelled (also by
``command``).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..config.targets import available_targets, load_target, resolve_target_ref
from ..errors import EdgepackError
from .signature import Inferred, Tensor

PLACEHOLDER_DIR = "REPLACE-ME"
CALIBRATION_PLACEHOLDER = f"{PLACEHOLDER_DIR}/calibration.npz"
CALIBRATION_SAMPLES = 128
GOLDEN_SAMPLES = 32


# -- what the data must look like --------------------------------------------------------------------

def dims_text(dims: Sequence[Any]) -> str:
    """``[batch, 3, 224, 224]``: dims as the manifest, the comments and the summary show them."""
    return "[" + ", ".join(str(d) for d in dims) + "]"


def data_format(inputs: Sequence[Any], batch: str | None) -> tuple[list[str], list[str], str]:
    """How calibration/golden data must look: (npz lines, entry lines, numpy.savez example)."""
    npz, entry = [], []
    for t in inputs:
        shape = list(t.shape or [])
        if batch:
            npz.append(f"{t.name}: {t.dtype} {dims_text(['N'] + shape[1:])}")
            entry.append(f"{t.name}: {t.dtype} {dims_text(['b'] + shape[1:])}")
        else:
            npz.append(f"{t.name}: {t.dtype} {dims_text(['N'] + shape)}")
            entry.append(f"{t.name}: {t.dtype} {dims_text(shape)}")
    names = [t.name for t in inputs]
    if all(n.isidentifier() for n in names):
        savez = "numpy.savez('data.npz', " + ", ".join(f"{n}=..." for n in names) + ")"
    else:
        savez = "numpy.savez('data.npz', **{" + ", ".join(f"{n!r}: ..." for n in names) + "})"
    return npz, entry, savez


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
        parts.append(f"shape: {dims_text(t.shape)}")
    if with_layout and t.layout:
        parts.append(f"layout: {t.layout}")
    return "{" + ", ".join(parts) + "}"


def rel_posix(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` with forward slashes, as manifest paths are written."""
    return Path(os.path.relpath(path, base)).as_posix()


def _target_lines(enabled: list[str], base: Path) -> tuple[list[str], list[str], list[str]]:
    """The targets: section's lines, the enabled and the commented-out target names."""
    known = available_targets()
    rows: list[tuple[bool, str, str]] = []
    for ref in enabled:
        path = resolve_target_ref(ref, base)
        shown = ref if ref in known and known[ref] == path else rel_posix(path.resolve(), base)
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
        value = f"{rel_posix((inf.base / module_ref).resolve(), manifest_dir)}:{func}" if is_file else inf.entry
        what = "an nn.Module" if inf.framework == "torch" else "a keras.Model"
        add(f"  entry: {_scalar(value)}   # a function returning {what} with its trained weights")
        if inf.kwargs:
            add(f"  kwargs: {yaml.safe_dump(inf.kwargs, default_flow_style=True).strip()}")
        else:
            add("  # kwargs: {}                 # keyword arguments for the entry point")
    else:
        assert inf.path is not None
        kind = "ONNX file" if inf.framework == "onnx" else "SavedModel folder or .keras file"
        add(f"  path: {_scalar(rel_posix(inf.path, manifest_dir))}   # the {kind}")
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
        add("# export (optional): opset: upgrade the model to at least this opset. Left out, the model keeps")
        add("# its own; only candidates that need a newer one upgrade their copy (int8 dynamic: 11, static: 13).")
        add("# export: {opset: 17}")
    elif inf.framework == "torch":
        add("# export (optional): opset (default 17); exporter: auto | dynamo | torchscript (torch -> ONNX);")
        add("# torchscript: auto | trace | script (auto: trace, script where the trace warns of a branch).")
        add("# export: {opset: 17, exporter: auto, torchscript: auto}")
    else:
        add("# export (optional): opset for tf2onnx (default 17).")
        add("# export: {opset: 17}")
    return "\n".join(L) + "\n", on, commented
