"""Dtype conversions between the bundle's signature and an artifact whose converter changed a
tensor's dtype (litert-torch makes int64 token ids int32; a float16 model may take float16).

The candidate's ``io_map`` records the artifact's dtype per signature name
(``input_dtypes`` / ``output_dtypes``); ``Model.run`` converts feeds to it and results back.
A narrowing conversion is range-checked: an int64 id that does not fit int32 is an error naming
the input and the values, never a silent wrap.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import BackendError, FeedError, RuntimeBundleError

# the dtypes an io_map may name (what converters produce at a model's edge)
IO_DTYPES = frozenset({"float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"})
_QUANTIZED = frozenset({"int8", "uint8", "int16"})  # with a float signature: the backend (de)quantizes


def cast_checked(arr: np.ndarray, dtype: np.dtype, what: str, *,
                 error: type[RuntimeBundleError] = FeedError) -> np.ndarray:
    """``arr`` as ``dtype``, or ``error`` when a value would change (wrap, overflow, fraction)."""
    src = arr.dtype
    if src == dtype:
        return arr
    problem = _loss(arr, dtype)
    if problem is not None:
        raise error(f"{what} is {src.name}; the artifact's tensor is {dtype.name} and {problem}",
                    where=what, hint=f"keep the values within {dtype.name}'s range, or rebuild with a candidate "
                                     f"whose artifact keeps {src.name} (the ONNX candidates do)")
    if dtype == np.bool_:
        return arr != 0
    return arr.astype(dtype)


def _loss(arr: np.ndarray, dtype: np.dtype) -> str | None:
    """Why converting ``arr`` to ``dtype`` would change a value, or None when it would not."""
    src = arr.dtype
    if arr.size == 0:
        return None
    if dtype == np.bool_:
        if src.kind == "f" or src.kind in "iu":
            bad = int(np.count_nonzero((arr != 0) & (arr != 1)))
            return f"{bad} value(s) are neither 0 nor 1" if bad else None
        return None
    if src == np.bool_:
        return None
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if src.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                return "some values are not whole numbers"
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            outside = int(np.count_nonzero((arr < info.min) | (arr > info.max)))
            return (f"{outside} value(s) lie outside its range [{info.min}, {info.max}] "
                    f"(min {lo}, max {hi})")
        return None
    if dtype.kind == "f":
        finfo = np.finfo(dtype)
        if src.kind == "f" and finfo.bits < src.itemsize * 8:
            finite = np.isfinite(arr)
            big = int(np.count_nonzero(finite & (np.abs(arr) > finfo.max)))
            return f"{big} finite value(s) exceed its largest value {float(finfo.max):g}" if big else None
        if src.kind in "iu":
            exact = 2 ** (finfo.nmant + 1)
            big = int(np.count_nonzero(np.abs(arr.astype(np.float64)) > exact))
            return f"{big} value(s) exceed {exact}, beyond which it cannot hold every integer" if big else None
    return None


@dataclass(frozen=True)
class IoCasts:
    """The conversions one candidate needs: (signature name, to dtype) for feeds and results."""

    inputs: tuple[tuple[str, np.dtype], ...]  # to the artifact's dtype
    outputs: tuple[tuple[str, np.dtype], ...]  # back to the signature's dtype

    @classmethod
    def of(cls, signature_dtypes: tuple[Mapping[str, str], Mapping[str, str]],
           artifact_dtypes: tuple[Mapping[str, str], Mapping[str, str]]) -> IoCasts | None:
        """From the signature's dtypes and the io_map's (inputs, outputs); None when nothing
        differs (the hot path stays as it is). Integer tensors quantized from a float signature
        are the backend's (scale and zero point), not a cast."""
        parts: list[tuple[tuple[str, np.dtype], ...]] = []
        for i, (sig, art) in enumerate(zip(signature_dtypes, artifact_dtypes, strict=True)):
            pairs = []
            for name, art_dtype in art.items():
                want = sig.get(name)
                if want is None or want == art_dtype or (art_dtype in _QUANTIZED and want.startswith("float")):
                    continue
                pairs.append((name, np.dtype(art_dtype if i == 0 else want)))
            parts.append(tuple(pairs))
        if not parts[0] and not parts[1]:
            return None
        return cls(parts[0], parts[1])

    def feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(feeds)
        for name, dtype in self.inputs:
            if name in out:
                out[name] = cast_checked(np.asarray(out[name]), dtype, f"input {name!r}")
        return out

    def results(self, results: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(results)
        for name, dtype in self.outputs:
            if name in out:
                out[name] = cast_checked(np.asarray(out[name]), dtype, f"output {name!r}", error=BackendError)
        return out

    def describe(self) -> list[str]:
        """One line per conversion, for notes."""
        return ([f"input {n!r} converted to {d.name} for the artifact" for n, d in self.inputs]
                + [f"output {n!r} converted to {d.name} from the artifact's" for n, d in self.outputs])


def parse_dtypes(data: object, key: str, where: str) -> dict[str, str]:
    """``io_map.input_dtypes`` / ``output_dtypes``: signature name -> one of IO_DTYPES."""
    from .errors import BundleFormatError
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and v in IO_DTYPES for k, v in data.items()):
        raise BundleFormatError(f"'io_map.{key}' must map signature names to dtypes of {sorted(IO_DTYPES)}",
                                where=where)
    return dict(data)
