"""The signature ``edgepack init`` infers, and the rules that name its dims.

Every framework module (``infer_onnx``, ``infer_tf``, ``infer_torch``) returns an ``Inferred`` made
of ``Tensor`` rows; the helpers here are the naming rules they share, so that a dim, a batch axis or
a model name is spelled the same way whatever the model came from, and always in a form the
manifest accepts (its own patterns are compiled here once).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.fields import NAME_PATTERN
from ..config.manifest import DTYPES, ENTRY_PATTERN, SYMBOL_PATTERN
from ..errors import SourceError

DEFAULT_BATCH = "batch"

ENTRY_RE = re.compile(ENTRY_PATTERN)      # what the manifest accepts as entry
SYMBOL_RE = re.compile(SYMBOL_PATTERN)    # what the manifest accepts as a dim
NAME_RE = re.compile(NAME_PATTERN)        # what the manifest accepts as name

SUPPORTED_DTYPES = f"supported dtypes: {', '.join(DTYPES)}"   # hint of a model's unhandled dtype
RETURN_THE_MODEL = "return the model object with its trained weights loaded"  # hint of a wrong entry


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


def model_name(text: str) -> str:
    """A manifest-valid name from a file stem or class name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    name = re.sub(r"-{2,}", "-", name)
    return name if name and NAME_RE.match(name) else "model"


def natural_key(key: str) -> list[Any]:
    """Sort key: output_2 before output_10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def guess_layout(framework: str, shape: list[int | str] | None) -> str | None:
    """NCHW/NHWC for a 4-D input: the framework's convention, else where the few channels are."""
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


# -- models that state their own dims (ONNX, TensorFlow) ---------------------------------------------

def _symbol(text: str) -> str:
    sym = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return sym if SYMBOL_RE.match(sym) else f"d_{sym}"


def name_dims(raw: list[Any], tensor: str, *, batch: str | None, fixed_batch: bool,
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


def _dynamic0(dims: list[Any] | None) -> bool:
    """Axis 0 of ``dims`` is there and not a fixed size."""
    if not dims:
        return False
    return not (isinstance(dims[0], int) and dims[0] > 0)


def choose_batch(ins: dict[str, list[Any] | None], model: str, batch_dim: str | None,
                 fixed_batch: bool) -> tuple[str | None, list[str]]:
    """The batch symbol for a model whose dims are known: its dynamic axis 0, or what was asked."""
    notes: list[str] = []
    if fixed_batch:
        if any(_dynamic0(d) for d in ins.values()):
            notes.append("axis 0 is dynamic in the model; --fixed-batch wrote 1 in the manifest")
        return None, notes
    if batch_dim is not None:
        fixed = [n for n, d in ins.items() if not _dynamic0(d)]
        if fixed:
            shown = ", ".join(f"{n} {ins[n]}" for n in fixed)
            raise SourceError(f"--batch-dim: axis 0 of input(s) {shown} is fixed in the model, it cannot be "
                              "a symbolic batch dim", where=model,
                              hint="re-export the model with a dynamic first axis, or leave out --batch-dim")
        return batch_dim, notes
    if ins and all(_dynamic0(d) for d in ins.values()):
        return DEFAULT_BATCH, notes
    if any(_dynamic0(d) for d in ins.values()):
        notes.append("only some inputs have a dynamic axis 0, so there is no shared batch dim: every "
                     "sample is fed on its own")
    return None, notes
