"""Dynamic axes beyond the batch for a torch model's manifest: asked (``--dynamic``) or probed.

A text model takes ``[batch, seq]`` token ids: exported with a fixed sequence length, every
request must be padded to it (Optimum exports the axis dynamic). An nn.Module states no
signature, so init probes: axis 1 of token ids and masks (integer [B, L]), frame sequences
([B, T, F] floats) and waveforms (float [B, T], T >= 400), with the inputs of the same length
beside them, is lengthened by a few steps; when the model still runs, that axis becomes a symbol
(``seq``) in the inputs and in every output axis that followed. Images and feature vectors are
not probed: a CNN takes any spatial size, but the device formats want it fixed.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SourceError
from .signature import SYMBOL_RE

DEFAULT_SEQ = "seq"
WAVEFORM_MIN = 400  # a float [B, T] input this long is audio samples, not a feature vector
_GROW = 3  # steps added to the probed axis (repeating the first ones: valid ids stay valid)
_SPEC = re.compile(r"^(?:(?P<input>[^:=]+):)?(?P<axis>\d+)=(?P<symbol>.+)$")


@dataclass(frozen=True)
class AxisSpec:
    """``--dynamic [INPUT:]AXIS=SYMBOL``: ``input`` None applies to every input with that axis."""

    input: str | None
    axis: int
    symbol: str


def parse_dynamic(specs: Sequence[str]) -> list[AxisSpec]:
    """The ``--dynamic`` options, checked (axis 0 is the batch's: --batch-dim names it)."""
    out = []
    for text in specs:
        m = _SPEC.match(text.strip())
        if not m:
            raise SourceError(f"--dynamic {text!r} is not [INPUT:]AXIS=SYMBOL", where="--dynamic",
                              hint="e.g. --dynamic input_ids:1=seq, or --dynamic 1=seq for every input")
        axis, symbol = int(m["axis"]), m["symbol"]
        if axis == 0:
            raise SourceError(f"--dynamic {text!r} names axis 0, the batch axis", where="--dynamic",
                              hint="use --batch-dim SYMBOL for axis 0")
        if not SYMBOL_RE.match(symbol):
            raise SourceError(f"--dynamic {text!r}: {symbol!r} is not a symbol", where="--dynamic",
                              hint="use a name like seq or frames (letters, digits, _)")
        out.append(AxisSpec(m["input"], axis, symbol))
    return out


Runner = Callable[[dict[str, np.ndarray]], list[tuple[str, np.ndarray]] | str]
"""Runs the model on feeds: its outputs as (name, array), or why it failed."""


def probe_sequence_axes(feeds: dict[str, np.ndarray], outs: list[tuple[str, np.ndarray]], run: Runner,
                        batch: str | None) -> tuple[dict[str, dict[int, str]], dict[str, dict[int, str]], list[str]]:
    """(input axes, output axes, notes): the sequence axes the model takes at another length."""
    groups: dict[int, list[str]] = {}
    if batch:
        for name, arr in feeds.items():
            if _sequence_like(arr):
                groups.setdefault(arr.shape[1], []).append(name)
        for name, arr in feeds.items():  # a float mask or features beside token ids of the same length
            if arr.ndim in (2, 3) and arr.shape[1] in groups and name not in groups[arr.shape[1]]:
                groups[arr.shape[1]].append(name)
    ins: dict[str, dict[int, str]] = {}
    outs_axes: dict[str, dict[int, str]] = {}
    notes: list[str] = []
    for length, names in groups.items():
        grown = {k: (np.concatenate([v, v[:, :_GROW]], axis=1) if k in names else v) for k, v in feeds.items()}
        got = run(grown)
        shown = ", ".join(names)
        if isinstance(got, str):
            if not any(feeds[n].dtype.kind in "iub" for n in names):  # features, not a sequence: as expected
                continue
            notes.append(f"axis 1 of {shown} stays fixed at {length}: the model fails at {length + _GROW} ({got}); "
                         f"--dynamic NAME:1=SYMBOL makes it symbolic anyway")
            continue
        followed = {n: [ax for ax in range(1, a.ndim) if a.shape[ax] == length
                        and dict(got).get(n) is not None and dict(got)[n].ndim == a.ndim
                        and dict(got)[n].shape[ax] == length + _GROW] for n, a in outs}
        symbol = DEFAULT_SEQ if len(groups) == 1 else f"{DEFAULT_SEQ}{length}"
        for n in names:
            ins.setdefault(n, {})[1] = symbol
        for n, axes in followed.items():
            for ax in axes:
                outs_axes.setdefault(n, {})[ax] = symbol
        notes.append(f"axis 1 of {shown} is the symbol {symbol!r}: the model runs at length {length} and "
                     f"{length + _GROW}" + (f" (outputs follow: {', '.join(n for n, a in followed.items() if a)})"
                                           if any(followed.values()) else "")
                     + "; --static-axes keeps it fixed")
    return ins, outs_axes, notes


def _sequence_like(arr: np.ndarray) -> bool:
    """Token ids or masks [B, L] (integers), frames [B, T, F], or a waveform [B, T] (T >= 400)."""
    if arr.ndim == 2:
        return arr.dtype.kind in "iub" or arr.shape[1] >= WAVEFORM_MIN
    return arr.ndim == 3 and arr.dtype.kind == "f"


def apply_specs(specs: list[AxisSpec], shapes: dict[str, list[int | str]]) -> list[str]:
    """Write ``--dynamic`` symbols into the input ``shapes`` (in place); unknown inputs or axes
    are errors naming what exists."""
    for spec in specs:
        targets = [spec.input] if spec.input else [n for n, s in shapes.items() if len(s) > spec.axis]
        if spec.input and spec.input not in shapes:
            raise SourceError(f"--dynamic names input {spec.input!r}; the model's inputs are {list(shapes)}",
                              where="--dynamic", hint="use one of the input names shown")
        if not targets or any(len(shapes[n]) <= spec.axis for n in targets):
            raise SourceError(f"--dynamic: no axis {spec.axis} in {spec.input or 'any input'} "
                              f"({', '.join(f'{n} {s}' for n, s in shapes.items())})", where="--dynamic",
                              hint="axes count from 0 (the batch)")
        for n in targets:
            shapes[n][spec.axis] = spec.symbol
    return [f"--dynamic: axis {s.axis} of {s.input or 'every input that has it'} is {s.symbol!r}" for s in specs]
