"""Input/output signatures and the feed check that runs before every inference.

Bad feeds fail here with the input's name and a fix, instead of deep inside a backend.
Expectations are precomputed once per model (``FeedValidator``) because this is the hot path.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    def from_dict(cls, data: Any, *, where: str) -> TensorSpec:
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
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> Signature:
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
        self._count = len(self._names)
        self._dtypes = tuple(np.dtype(s.dtype) for s in self._specs)
        self._ranks = tuple(len(s.shape) for s in self._specs)
        # (axis, size) for fixed dims, (axis, symbol) for symbolic ones, per input.
        self._fixed = tuple(tuple((i, d) for i, d in enumerate(s.shape) if isinstance(d, int))
                            for s in self._specs)
        self._symbolic = tuple(tuple((i, d) for i, d in enumerate(s.shape) if isinstance(d, str))
                               for s in self._specs)
        # A symbolic dim only constrains anything where its name occurs again: each later
        # occurrence is compared with the first one, (axis, name, first input, first axis).
        first: dict[str, tuple[str, int]] = {}
        again: list[tuple[tuple[int, str, str, int], ...]] = []
        for spec, symbolic in zip(self._specs, self._symbolic, strict=True):
            mine = []
            for axis, symbol in symbolic:
                if symbol in first:
                    mine.append((axis, symbol, *first[symbol]))
                else:
                    first[symbol] = (spec.name, axis)
            again.append(tuple(mine))
        # The hot path: one tuple per input with everything precomputed. A fully fixed shape
        # is compared in one go; mixed shapes compare their fixed axes.
        self._checks = tuple(
            (spec.name, dtype, rank, spec.shape if len(fixed) == rank else None, fixed, rep, spec)
            for spec, dtype, rank, fixed, rep in zip(self._specs, self._dtypes, self._ranks,
                                                     self._fixed, again, strict=True))

    def __call__(self, feeds: Any) -> None:
        # type() first: isinstance(x, Mapping) is an ABC check costing ~0.5 µs per call.
        if type(feeds) is not dict and not isinstance(feeds, Mapping):
            raise FeedError(f"feeds must be a dict of name -> numpy array, got "
                            f"{type(feeds).__name__}", hint=f"pass {{{self._names[0]!r}: array}}")
        # Same count and every name present means no unexpected key either (keys are unique).
        if len(feeds) != self._count:
            self._check_names(feeds)
        for name in self._names:
            if name not in feeds:
                self._check_names(feeds)
        ndarray = np.ndarray
        for name, dtype, rank, whole, fixed, again, spec in self._checks:
            arr = feeds[name]
            if not isinstance(arr, ndarray):
                raise FeedError(f"expected a numpy array, got {type(arr).__name__}",
                                where=name, hint=f"pass np.asarray(value, dtype=np.{dtype})")
            got = arr.dtype
            if got is not dtype and got != dtype:
                raise FeedError(f"dtype {got} does not match {dtype}", where=name,
                                hint=f"cast explicitly: array.astype(np.{dtype})")
            shape = arr.shape
            if len(shape) != rank:
                raise FeedError(f"rank {len(shape)} (shape {list(shape)}) does not match rank "
                                f"{rank} {list(spec.shape)}", where=name,
                                hint="add or remove axes (e.g. a batch axis with x[None])")
            if whole is not None:
                if shape != whole:
                    self._check_fixed(shape, fixed, spec)
            else:
                for axis, size in fixed:
                    if shape[axis] != size:
                        self._check_fixed(shape, fixed, spec)
            for axis, symbol, first_name, first_axis in again:
                size = feeds[first_name].shape[first_axis]
                if shape[axis] != size:
                    raise FeedError(
                        f"axis {axis} ({symbol!r}) has size {shape[axis]} but {first_name!r} axis "
                        f"{first_axis} has {symbol!r} = {size}", where=name,
                        hint=f"every dim named {symbol!r} must have the same size")

    def _check_names(self, feeds: Mapping[Any, Any]) -> None:
        """Raise for an unexpected key (first) or a missing input (off the hot path)."""
        for key in feeds:
            if key not in self._name_set:
                close = difflib.get_close_matches(str(key), self._names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"inputs are {list(self._names)}"
                raise FeedError("unexpected input", where=str(key), hint=hint)
        missing = [n for n in self._names if n not in feeds]
        if missing:
            raise FeedError(f"missing input(s) {missing}", where=missing[0],
                            hint=f"the model needs {list(self._names)}")

    @staticmethod
    def _check_fixed(shape: tuple[int, ...], fixed: tuple[tuple[int, int], ...],
                     spec: TensorSpec) -> None:
        """Raise for the first fixed axis whose size differs (off the hot path)."""
        for axis, size in fixed:
            if shape[axis] != size:
                raise FeedError(f"axis {axis} has size {shape[axis]}, expected {size} "
                                f"(shape {list(shape)} vs {list(spec.shape)})", where=spec.name)


def validate_feeds(feeds: Any, inputs: Sequence[TensorSpec]) -> None:
    """One-off check of feeds against input specs; use FeedValidator to check repeatedly."""
    FeedValidator(inputs)(feeds)
