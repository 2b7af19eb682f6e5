"""Device targets: what a device runs, in order of preference, and what it must pip install."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import TargetError
from .fields import (
    NAME_PATTERN,
    NAME_RULE,
    Field,
    ListOf,
    Node,
    OneOf,
    Section,
    did_you_mean,
    read_yaml,
)

FORMATS = ("onnx", "tflite", "torchscript")
PRECISIONS = ("fp32", "fp16", "int8")
BACKEND_OF_FORMAT = {"onnx": "onnxruntime", "tflite": "tflite", "torchscript": "torchscript"}
QUANT_MODES = ("static", "dynamic")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_FALLBACKS = ("none", "mixed")
QuantFallback = Literal["none", "mixed"]
ARCHES = ("x86_64", "aarch64", "armv7l")
IO_TYPES = ("float", "int8")
# what runs a candidate when the target names nothing: onnxruntime EPs, TFLite delegates, torch devices
DEFAULT_PROVIDERS = {"onnx": "CPUExecutionProvider", "tflite": "XNNPACK", "torchscript": "cpu"}
TORCH_DEVICES = ("cpu", "cuda")
KNOWN_ORT_PROVIDERS = (
    "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider",
    "OpenVINOExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider",
    "XnnpackExecutionProvider", "ROCMExecutionProvider", "QNNExecutionProvider",
    "ACLExecutionProvider", "ArmNNExecutionProvider",
)
BACKENDS = tuple(sorted(set(BACKEND_OF_FORMAT.values())))

# the shipped targets travel inside the package (pyproject: package-data), so a regular
# `pip install` has them as well as an editable install or the checkout
SHIPPED_TARGETS_DIR = Path(__file__).resolve().parents[1] / "shipped_targets"

# -- the declarations: what each section of a target holds (packager/config/schema.py reads them too) --
QUANTIZATION = Section("Quantization", "how an int8 candidate is quantized", (
    Field("mode", str, "static: calibrated on the manifest's data; dynamic: weights only, activations "
                       "at run time", required=True, choices=QUANT_MODES),
    Field("per_channel", bool, "one weight scale per output channel instead of per tensor", default=False),
    Field("calibration_method", str, "how static activation ranges are chosen", default="minmax",
          choices=CALIBRATION_METHODS),
    Field("fallback", str, "when int8 static misses parity: none (the candidate is dropped) or mixed (the "
                           "nodes that add the most error stay float, one per round, until parity holds; at "
                           "most 10 % of the nodes; ONNX and TFLite candidates: a TFLite int8 that misses parity "
                           "is then made from the ONNX model by onnx2tf and ai-edge-quantizer)", default="none",
          choices=QUANT_FALLBACKS),
))
CANDIDATE = Section("Candidate", "one artifact the target asks for: format, precision and how to run it", (
    Field("id", str, "a name for the candidate (default: its variant, e.g. onnx-int8-static-pc)",
          pattern=NAME_PATTERN, message=f"candidate id {{value!r}} {NAME_RULE}"),
    Field("format", str, "the artifact's format", required=True, choices=FORMATS),
    Field("precision", str, "the artifact's precision", required=True, choices=PRECISIONS),
    Field("backend", str, "what runs it; fixed by the format (onnx: onnxruntime, tflite: tflite, "
                          "torchscript: torchscript)", choices=BACKENDS),
    Field("providers", ListOf(str, min_items=1),
          "in order of preference: onnxruntime execution providers (CPUExecutionProvider, ...), TFLite "
          "XNNPACK or delegate:<library>, torch devices cpu/cuda (default: the CPU one)",
          message="needs at least one provider"),
    Field("provider_options", ListOf(dict), "one mapping of options per provider ({} for none)"),
    Field("quantization", QUANTIZATION, "int8 only: how the model is quantized"),
    Field("io", str, "full-int8 TFLite only: float or int8 input/output tensors", default="float",
          choices=IO_TYPES),
))
REQUIREMENTS = Section("Requirements", "pinned pip requirements: common ones, and per backend the ones "
                                       "a bundle needs only when it holds an artifact for that backend", (
    Field("common", ListOf(str), "always installed"),
) + tuple(Field(b, ListOf(str), f"installed when the bundle holds a {b} artifact") for b in BACKENDS))
TARGET = Section("Target", "a device: what it runs, in order of preference, and what it must pip install", (
    Field("name", str, "the target's name", required=True, pattern=NAME_PATTERN,
          message=f"target name {{value!r}} {NAME_RULE}"),
    Field("description", str, "one line about the device", default=""),
    Field("arch", str, "the device's CPU architecture", required=True, choices=ARCHES),
    Field("python", str, 'the device\'s Python version, quoted: "3.11"', required=True,
          pattern=r"^3\.[0-9]+$", message='python version {value!r} must look like "3.11"'),
    Field("threads", int, "threads for inference (0: the runtime decides)", default=0, minimum=0),
    Field("candidates", ListOf(CANDIDATE, min_items=1), "artifacts to build, in order of preference",
          required=True),
    Field("requirements", OneOf((ListOf(str), REQUIREMENTS)),
          "pinned pip requirements: a list (always installed) or {common: [...], <backend>: [...]}",
          required=True),
    Field("precision_fallback", bool, "drop a candidate that fails parity and fall back to the next",
          default=False),
    Field("drop_slower_quantized", bool, "drop an fp16/int8 candidate that is not faster than fp32 "
                                         "on the build host", default=False),
    Field("explain_bytes", int, "bytes each int8 candidate (ONNX, TFLite) may add to the bundle so that "
                                "`python -m runtime verify --explain` can localise its error on the device (float "
                                "values of its most telling tensors on golden samples; for ONNX also the int8 model "
                                "with those tensors as outputs); 0: none", default=0, minimum=0,
          hint="a byte count, e.g. explain_bytes: 4000000 (4 MB per candidate), or 0 for none"),
    Field("notes", str, "free text for the people installing the bundle", default=""),
))


@dataclass(frozen=True)
class Quantization:
    """How an int8 candidate is quantized."""

    mode: str = "static"
    per_channel: bool = False
    calibration_method: str = "minmax"
    fallback: QuantFallback = "none"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "per_channel": self.per_channel,
                "calibration_method": self.calibration_method,
                **({"fallback": self.fallback} if self.fallback != "none" else {})}


@dataclass(frozen=True)
class CandidateSpec:
    """One artifact a target asks for: format, precision, and how to run it."""

    id: str
    format: str
    precision: str
    backend: str
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    provider_options: tuple[dict[str, Any], ...] = ()
    quantization: Quantization | None = None
    io: str = "float"  # tflite full int8: float or int8 input/output tensors

    @property
    def variant(self) -> str:
        """The artifact this candidate needs; candidates with the same variant share one file."""
        if self.precision == "int8" and self.quantization:
            q = self.quantization
            tag = f"int8-{q.mode}"
            if q.mode == "static":
                tag += ("-pc" if q.per_channel else "") + ("" if q.calibration_method == "minmax"
                                                           else f"-{q.calibration_method}")
                tag += "-mixed" if q.fallback == "mixed" else ""
            return f"{self.format}-{tag}" + ("-int8io" if self.io == "int8" else "")
        return f"{self.format}-{self.precision}"


@dataclass(frozen=True)
class Target:
    """A device description loaded from a target YAML file."""

    name: str
    description: str
    arch: str
    python: str
    threads: int
    candidates: tuple[CandidateSpec, ...]
    requirements: tuple[str, ...]                       # always installed
    backend_requirements: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per backend in the bundle
    precision_fallback: bool = False
    drop_slower_quantized: bool = False  # drop an fp16/int8 candidate not faster than fp32 on the host
    explain_bytes: int = 0  # per int8 candidate: the per-node references for verify --explain
    notes: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "arch": self.arch,
                "python": self.python, "threads": self.threads}

    def requirements_for(self, backends: set[str]) -> list[str]:
        """Pins a bundle needs: the common ones plus those of the backends it contains."""
        out = list(self.requirements)
        for backend in sorted(backends):
            out += [r for r in self.backend_requirements.get(backend, ()) if r not in out]
        return out


def target_search_path() -> list[Path]:
    """Every folder a target name is looked up in, in order, whether it exists or not:
    $EDGEPACK_TARGETS_PATH, ./targets, then the shipped ones."""
    dirs = [Path(p) for p in os.environ.get("EDGEPACK_TARGETS_PATH", "").split(os.pathsep) if p]
    return dirs + [Path.cwd() / "targets", SHIPPED_TARGETS_DIR]


def target_search_dirs() -> list[Path]:
    """The folders of target_search_path() that exist (each once)."""
    seen: list[Path] = []
    for d in target_search_path():
        if d.is_dir() and d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def no_targets_error() -> TargetError:
    """No target YAML file anywhere: says where it looked and how to get the shipped ones back."""
    looked = ", ".join(str(d) for d in target_search_path())
    # the shipped folder always holds files in a sound install, so its absence is the cause
    hint = (f"the shipped targets are missing from this install ({SHIPPED_TARGETS_DIR}): reinstall edgepack "
            "(pip install --force-reinstall edgepack; from a checkout: pip install .); or put your own "
            "target YAML files in ./targets/ or in a folder named by $EDGEPACK_TARGETS_PATH")
    return TargetError("no target YAML files found", where=f"looked in {looked}", hint=hint)


def available_targets() -> dict[str, Path]:
    """Every target name that can be found, mapped to its file (first search dir wins)."""
    found: dict[str, Path] = {}
    for d in target_search_dirs():
        for path in sorted(d.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def resolve_target_ref(ref: str, base: Path | None = None) -> Path:
    """A target given by name (``rpi4``) or by path (``my/device.yaml``) -> its file."""
    looks_like_path = ref.endswith((".yaml", ".yml")) or "/" in ref or os.sep in ref
    if looks_like_path:
        for candidate in ([base / ref] if base else []) + [Path(ref)]:
            if candidate.is_file():
                return candidate
        raise TargetError(f"target file {ref!r} not found", where=ref,
                          hint="give an existing target YAML path, or a shipped target name "
                               "(see 'edgepack targets')")
    known = available_targets()
    if not known:
        error = no_targets_error()
        raise TargetError(f"unknown target {ref!r}: {error.message}", where=error.where,
                          hint=f"{error.hint}; or give the path of a target YAML file")
    if ref not in known:
        raise TargetError(f"unknown target {ref!r}{did_you_mean(ref, known)}", where=ref,
                          hint=f"known targets: {', '.join(sorted(known))}; "
                               "or give the path of your own target YAML file")
    return known[ref]


def load_target(ref: str, base: Path | None = None) -> Target:
    """Load and validate a target by name or path."""
    path = resolve_target_ref(ref, base)
    return parse_target(read_yaml(path, TargetError, "target"), str(path))


def parse_target(data: Any, file: str) -> Target:
    """Validate a parsed target document."""
    root = Node(data, file, "", TargetError)
    root.mapping(TARGET)
    name = root.get("name")
    python = root.value["python"]
    if isinstance(python, float):  # `python: 3.10` parses as 3.1; insist on a string
        raise root.fail(f"python version {python!r} must be a quoted string", "python",
                        hint='write python: "3.11" (unquoted 3.10 would read as 3.1)')
    python = root.get("python")
    threads = root.get("threads")
    candidates = tuple(_parse_candidate(n) for n in root.items("candidates"))
    ids = [c.id for c in candidates]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise root.fail(f"candidate id(s) {dupes} appear more than once", "candidates",
                        hint="give each candidate a distinct 'id:'")
    common, per_backend = _parse_requirements(root, candidates)
    return Target(
        name=name,
        description=root.get("description"),
        arch=root.get("arch"),
        python=python,
        threads=threads,
        candidates=candidates,
        requirements=common,
        backend_requirements=per_backend,
        precision_fallback=root.get("precision_fallback"),
        drop_slower_quantized=root.get("drop_slower_quantized"),
        explain_bytes=root.get("explain_bytes"),
        notes=root.get("notes"),
        source=file,
    )


def _parse_requirements(root: Node, candidates: tuple[CandidateSpec, ...]
                        ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """``requirements:`` is a list (always installed) or a mapping {common, <backend>: [...]}.

    Per-backend pins go into a bundle's requirements.txt only when one of its candidates uses
    that backend, so a Pi bundle without a TFLite artifact does not ask for LiteRT.
    """
    if isinstance(root.value.get("requirements"), list):
        return tuple(root.strings("requirements")), {}
    node = root.child("requirements")
    node.mapping(REQUIREMENTS)
    per = {b: tuple(node.strings(b)) for b in BACKENDS if node.has(b)}
    missing = sorted({c.backend for c in candidates} - set(per))
    if missing:
        raise node.fail(f"no pinned requirements for backend(s) {missing} that candidates use",
                        hint=f"add e.g. {missing[0]}: [<package>==<version>]")
    return tuple(node.strings("common")), per


def _parse_candidate(node: Node) -> CandidateSpec:
    node.mapping(CANDIDATE)
    fmt = node.get("format")
    precision = node.get("precision")
    backend = node.get("backend", default=BACKEND_OF_FORMAT[fmt], choices=(BACKEND_OF_FORMAT[fmt],))
    quant: Quantization | None = None
    qnode = node.section("quantization")
    if precision == "int8":
        if qnode is None:
            raise node.fail("int8 needs a 'quantization:' section", "quantization",
                            hint="add quantization: {mode: static} (calibrated) or {mode: dynamic}")
        qnode.mapping(QUANTIZATION)
        quant = Quantization(mode=qnode.get("mode"), per_channel=qnode.get("per_channel"),
                             calibration_method=qnode.get("calibration_method"), fallback=qnode.get("fallback"))
        if quant.fallback == "mixed" and (fmt not in ("onnx", "tflite") or quant.mode != "static"):
            raise qnode.fail(f"fallback: mixed applies to onnx and tflite int8 static candidates, not {fmt} int8 "
                             f"{quant.mode}", "fallback",
                             hint="remove it, or use it on a format: onnx or tflite, mode: static candidate")
    elif qnode is not None:
        raise node.fail(f"'quantization' only applies to int8, not {precision}", "quantization",
                        hint="remove it, or set precision: int8")
    io = node.get("io")
    if io == "int8" and not (fmt == "tflite" and quant and quant.mode == "static"):
        raise node.fail("io: int8 applies to full-int8 TFLite candidates only", "io",
                        hint="use format: tflite, precision: int8, quantization: {mode: static}")
    providers = tuple(node.strings("providers", default=[DEFAULT_PROVIDERS[fmt]],
                                   hint=f"leave 'providers' out for the default ({DEFAULT_PROVIDERS[fmt]})"))
    if fmt == "torchscript":
        for i, p in enumerate(providers):
            if p not in TORCH_DEVICES:
                raise node.child("providers").fail(f"{p!r} is not a torch device{did_you_mean(p, TORCH_DEVICES)}",
                                                   i, hint="use cpu or cuda")
    if fmt == "tflite":
        for i, p in enumerate(providers):
            if p != "XNNPACK" and not p.startswith("delegate:"):
                raise node.child("providers").fail(
                    f"{p!r} is not a TFLite delegate", i,
                    hint="use XNNPACK (the default CPU path) or delegate:<library>, e.g. delegate:libedgetpu.so.1")
    if fmt == "onnx":
        for i, p in enumerate(providers):
            if not p.endswith("ExecutionProvider"):
                raise node.child("providers").fail(
                    f"{p!r} is not an onnxruntime execution provider name{did_you_mean(p, KNOWN_ORT_PROVIDERS)}",
                    i, hint="names look like CPUExecutionProvider, CUDAExecutionProvider")
    options: list[dict[str, Any]] = []
    for entry in node.items("provider_options"):
        if not isinstance(entry.value, dict):
            raise entry.fail("expected a mapping of provider options")
        options.append(dict(entry.value))
    if options and len(options) != len(providers):
        raise node.fail(f"{len(options)} provider_options for {len(providers)} providers",
                        "provider_options", hint="give one mapping per provider (use {} for none)")
    spec = CandidateSpec(id="", format=fmt, precision=precision, backend=backend,
                         providers=providers, provider_options=tuple(options), quantization=quant, io=io)
    cid = node.get("id", default=spec.variant)
    return CandidateSpec(**{**spec.__dict__, "id": cid})
