"""Input/output signatures and the feed check that runs before every inference.

Bad feeds fail here with the input's name and a fix, instead of deep inside a backend.
Expectations are precomputed once per model (``FeedValidator``) because this is the hot path.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import BundleFormatError, FeedError


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: dtype, shape (ints fixed, strings symbolic), optional layout."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    layout: str | None = None
    scores: bool | None = None  # outputs only: class scores (enables the top-1 check)

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> "TensorSpec":
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise BundleFormatError("tensor spec needs a string 'name'", where=where)
        name = data["name"]
        where = f"{where}[{name}]"
        try:
            if not isinstance(data.get("dtype"), str):
                raise TypeError("dtype must be a string")
            dtype = np.dtype(data["dtype"]).name
        except TypeError as exc:
            raise BundleFormatError(f"unknown dtype {data.get('dtype')!r}", where=where,
                                    hint="use a numpy dtype name such as 'float32'") from exc
        shape = data.get("shape")
        if not isinstance(shape, list) or not all(
                (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
                or (isinstance(d, str) and d) for d in shape):
            raise BundleFormatError("'shape' must be a list of non-negative ints or names",
                                    where=where)
        layout = data.get("layout")
        scores = data.get("scores")
        return cls(name=name, dtype=dtype, shape=tuple(shape),
                   layout=layout if isinstance(layout, str) else None,
                   scores=scores if isinstance(scores, bool) else None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.layout is not None:
            out["layout"] = self.layout
        if self.scores is not None:
            out["scores"] = self.scores
        return out

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        text = f"{self.name}: {self.dtype}[{dims}]"
        return text + (f" {self.layout}" if self.layout else "")


@dataclass(frozen=True)
class Signature:
    """The model's inputs and outputs, in bundle order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> "Signature":
        parts = []
        for key in ("inputs", "outputs"):
            items = data.get(key)
            if not isinstance(items, list) or not items:
                raise BundleFormatError(f"'{key}' must be a non-empty list", where=where)
            specs = tuple(TensorSpec.from_dict(s, where=f"{where}.{key}") for s in items)
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                raise BundleFormatError(f"duplicate {key} names {names}", where=where)
            parts.append(specs)
        return cls(inputs=parts[0], outputs=parts[1])

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [s.to_dict() for s in self.inputs],
                "outputs": [s.to_dict() for s in self.outputs]}


class FeedValidator:
    """Checks feeds against input specs; built once, called per inference."""

    def __init__(self, inputs: Sequence[TensorSpec]) -> None:
        self._specs = tuple(inputs)
        self._names = tuple(s.name for s in self._specs)
        self._name_set = frozenset(self._names)
        self._dtypes = tuple(np.dtype(s.dtype) for s in self._specs)
        self._ranks = tuple(len(s.shape) for s in self._specs)
        # (axis, size) for fixed dims, (axis, symbol) for symbolic ones, per input.
        self._fixed = tuple(tuple((i, d) for i, d in enumerate(s.shape) if isinstance(d, int))
                            for s in self._specs)
        self._symbolic = tuple(tuple((i, d) for i, d in enumerate(s.shape) if isinstance(d, str))
                               for s in self._specs)

    def __call__(self, feeds: Any) -> None:
        if not isinstance(feeds, Mapping):
            raise FeedError(f"feeds must be a dict of name -> numpy array, got "
                            f"{type(feeds).__name__}", hint=f"pass {{{self._names[0]!r}: array}}")
        for key in feeds:
            if key not in self._name_set:
                close = difflib.get_close_matches(str(key), self._names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"inputs are {list(self._names)}"
                raise FeedError("unexpected input", where=str(key), hint=hint)
        missing = [n for n in self._names if n not in feeds]
        if missing:
            raise FeedError(f"missing input(s) {missing}", where=missing[0],
                            hint=f"the model needs {list(self._names)}")
        seen: dict[str, tuple[int, str, int]] = {}
        for spec, dtype, rank, fixed, symbolic in zip(self._specs, self._dtypes, self._ranks,
                                                      self._fixed, self._symbolic):
            arr = feeds[spec.name]
            if not isinstance(arr, np.ndarray):
                raise FeedError(f"expected a numpy array, got {type(arr).__name__}",
                                where=spec.name, hint=f"pass np.asarray(value, dtype=np.{dtype})")
            if arr.dtype != dtype:
                raise FeedError(f"dtype {arr.dtype} does not match {dtype}", where=spec.name,
                                hint=f"cast explicitly: array.astype(np.{dtype})")
            shape = arr.shape
            if len(shape) != rank:
                raise FeedError(f"rank {len(shape)} (shape {list(shape)}) does not match rank "
                                f"{rank} {list(spec.shape)}", where=spec.name,
                                hint="add or remove axes (e.g. a batch axis with x[None])")
            for axis, size in fixed:
                if shape[axis] != size:
                    raise FeedError(f"axis {axis} has size {shape[axis]}, expected {size} "
                                    f"(shape {list(shape)} vs {list(spec.shape)})",
                                    where=spec.name)
            for axis, symbol in symbolic:
                prev = seen.get(symbol)
                if prev is None:
                    seen[symbol] = (shape[axis], spec.name, axis)
                elif prev[0] != shape[axis]:
                    raise FeedError(
                        f"axis {axis} ({symbol!r}) has size {shape[axis]} but {prev[1]!r} axis "
                        f"{prev[2]} has {symbol!r} = {prev[0]}", where=spec.name,
                        hint=f"every dim named {symbol!r} must have the same size")


def validate_feeds(feeds: Any, inputs: Sequence[TensorSpec]) -> None:
    """One-off check of feeds against input specs; use FeedValidator to check repeatedly."""
    FeedValidator(inputs)(feeds)
