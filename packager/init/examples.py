"""The example inputs a torch model is run on: what ``--example-input`` values mean.

Each value is dims (``1x3x224x224``, random data, optionally ``name=`` and ``:dtype``) or an ``.npy``
file, one per ``forward()`` argument; or, once, an ``.npz`` keyed by input name or an entry point
returning the arrays. ``example_feeds`` turns them into named arrays in ``forward()``'s order.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config.manifest import DTYPES
from ..errors import SourceError
from .signature import ENTRY_RE

EXAMPLE_INPUT_HELP = (
    "--example-input 1x3x224x224 (dims joined by x, float32 unless ':int64' etc. follows; "
    "'name=1x3x224x224' names the input), once per forward() argument in order; or "
    "--example-input x.npy (one array per argument), --example-input inputs.npz (arrays keyed by "
    "input name), --example-input data.py:example (a function returning an array, a tuple of "
    "arrays or a dict name -> array)")

_DIMS_SPEC_RE = re.compile(r"^(?:(?P<name>[A-Za-z_][A-Za-z0-9_.]*)=)?(?P<dims>\d+(?:x\d+)*)"
                           r"(?::(?P<dtype>[A-Za-z0-9]+))?$")
_USE_DTYPES = f"use one of: {', '.join(DTYPES)}"   # hint of an example with an unhandled dtype


def as_array(value: Any, what: str) -> np.ndarray:
    """``value`` (a torch tensor or array-like) as a numpy array of a dtype edgepack handles."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        try:
            value = value.numpy()
        except TypeError as exc:
            raise SourceError(f"{what} has torch dtype {value.dtype}, which numpy cannot hold: {exc}",
                              where="--example-input", hint=_USE_DTYPES) from None
    arr = np.asarray(value)
    if arr.dtype.name not in DTYPES:
        raise SourceError(f"{what} has dtype {arr.dtype}, which edgepack does not handle",
                          where="--example-input", hint=_USE_DTYPES)
    return arr


def _random_array(shape: list[int], dtype: str, rng: np.random.Generator) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 10, shape).astype(dtype)


def _positional(params: list[str], i: int) -> str:
    """The name of the ``i``-th example input: forward()'s argument name, or input_<i> past them."""
    return params[i] if i < len(params) else f"input_{i}"


def example_feeds(specs: Sequence[str], params: list[str], cwd: Path) -> dict[str, np.ndarray]:
    """The example inputs named and in forward()'s order, from the --example-input values."""
    rng = np.random.default_rng(0)
    whole = [s for s in specs if s.endswith(".npz") or (ENTRY_RE.match(s) and not _DIMS_SPEC_RE.match(s)
                                                        and not s.endswith(".npy"))]
    if whole:
        if len(specs) != 1:
            raise SourceError(f"{whole[0]} gives every input: pass it as the only --example-input",
                              where="--example-input", hint=EXAMPLE_INPUT_HELP)
        return _whole_feed(specs[0], params, cwd)
    feeds: dict[str, np.ndarray] = {}
    for i, spec in enumerate(specs):
        m = _DIMS_SPEC_RE.match(spec)
        if m:
            dtype = m.group("dtype") or "float32"
            if dtype not in DTYPES:
                raise SourceError(f"--example-input {spec!r}: unknown dtype {dtype!r}", where="--example-input",
                                  hint=_USE_DTYPES)
            name = m.group("name") or _positional(params, i)
            arr = _random_array([int(d) for d in m.group("dims").split("x")], dtype, rng)
        else:
            name, _, file = spec.rpartition("=") if "=" in spec else ("", "", spec)
            name = name or _positional(params, i)
            if not file.endswith(".npy"):
                raise SourceError(f"cannot read --example-input {spec!r}", where="--example-input",
                                  hint=EXAMPLE_INPUT_HELP)
            arr = _load_npy(cwd / file, spec)
        if name in feeds:
            raise SourceError(f"two example inputs are named {name!r}", where="--example-input",
                              hint="give each a distinct name=")
        feeds[name] = arr
    return feeds


def _existing(path: Path) -> Path:
    """``path`` if it is a file; else the error every example file gives."""
    if not path.is_file():
        raise SourceError(f"example input file {path} not found", where="--example-input",
                          hint="paths are relative to the current folder")
    return path


def _load_npy(path: Path, spec: str) -> np.ndarray:
    _existing(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"cannot read {path.name}: {exc}", where="--example-input",
                          hint="write it with numpy.save(path, array) from a numeric array") from None
    if isinstance(arr, np.lib.npyio.NpzFile):  # pragma: no cover - .npy suffix on an npz
        raise SourceError(f"{path.name} is an .npz archive", where="--example-input",
                          hint="name it .npz to pass every input at once")
    return as_array(arr, f"example input {spec!r}")


def _whole_feed(spec: str, params: list[str], cwd: Path) -> dict[str, np.ndarray]:
    if spec.endswith(".npz"):
        path = _existing(cwd / spec)
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw: Any = {k: npz[k] for k in npz.files}
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"cannot read {path.name} as an .npz of arrays: {exc}", where="--example-input",
                              hint="write it with numpy.savez(path, input_name=array, ...)") from None
    else:
        from ..inputs.entrypoints import call_entry
        raw = call_entry(spec, cwd, SourceError, "--example-input")
    if isinstance(raw, dict):
        items = {str(k): as_array(v, f"example input {k!r}") for k, v in raw.items()}
        if set(items) <= set(params):  # forward()'s order: the model is called positionally
            items = {k: items[k] for k in params if k in items}
        if not items:
            raise SourceError(f"{spec} gives no arrays", where="--example-input", hint=EXAMPLE_INPUT_HELP)
        return items
    values = list(raw) if isinstance(raw, (tuple, list)) else [raw]
    return {_positional(params, i): as_array(v, f"example input {i}") for i, v in enumerate(values)}
