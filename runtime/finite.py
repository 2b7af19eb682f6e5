"""Non-finite input values (NaN, +-inf) in float feeds: counted per input.

Nothing in a model says "this input was NaN": a float model passes NaN through, but an int8 one
quantizes it to an ordinary integer and answers with finite, confident-looking scores. The CLI
(``run``, ``bench``) warns about such inputs and refuses them under ``--strict``; from Python,
``Model.run(feeds, check_finite=True)`` or ``check_finite(feeds)`` raise a FeedError. The check
reads every value, so it is opt-in: ``Model.run``'s default path does not pay for it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import FeedError

STRICT_HINT = ("replace or drop those values before running (np.nan_to_num, or find where they "
               "come from): outputs computed from them are not meaningful, and an int8 model "
               "turns them into ordinary-looking numbers")


class NonFinite:
    """How many values of one input are NaN / +inf / -inf.

    A plain class, not a dataclass: ``runtime/__main__`` imports this module on every start, and
    a dataclass compiles its generated methods at import time (cold start, see Benchmarks)."""

    __slots__ = ("name", "count", "total", "nan", "inf")

    def __init__(self, name: str, count: int, total: int, nan: int, inf: int) -> None:
        self.name, self.count, self.total, self.nan, self.inf = name, count, total, nan, inf

    @property
    def text(self) -> str:
        kinds = ", ".join(f"{n} {k}" for n, k in ((self.nan, "NaN"), (self.inf, "inf")) if n)
        return f"{self.count} of {self.total} values are not finite ({kinds})"

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.name, "nonfinite": self.count, "total": self.total,
                "nan": self.nan, "inf": self.inf}


def nonfinite_inputs(feeds: Mapping[str, Any]) -> list[NonFinite]:
    """The float (and complex) feeds holding NaN or inf, in feed order; integer feeds never do."""
    found = []
    for name, value in feeds.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "fc":
            continue
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            nan = int(np.count_nonzero(np.isnan(arr)))
            found.append(NonFinite(str(name), bad, int(arr.size), nan, bad - nan))
    return found


def nonfinite_error(found: list[NonFinite]) -> FeedError:
    """One FeedError for every offending input: where = the first, the message lists all."""
    first, rest = found[0], found[1:]
    message = first.text + "".join(f"; also {f.name}: {f.text}" for f in rest)
    return FeedError(message, where=first.name, hint=STRICT_HINT)


def check_finite(feeds: Mapping[str, Any]) -> None:
    """Raise FeedError naming each input with NaN/inf values and how many; else return."""
    found = nonfinite_inputs(feeds)
    if found:
        raise nonfinite_error(found)
