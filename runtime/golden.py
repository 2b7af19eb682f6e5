"""Golden data: load it and run it through a model in the bundle's layout (the judging is
``Model.verify``). Imports no Model: the model imports this module, never the other way."""
from __future__ import annotations

import zipfile
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .bundle import Bundle
from .errors import BundleFormatError, FeedError
from .fileio import io_error, is_fault

if TYPE_CHECKING:
    from .compare import ParityReport
    from .model import Model


class GoldenData(NamedTuple):
    """A bundle's golden inputs and outputs (name -> array); ``batched``: one batch along axis 0
    (else one entry per sample, run one by one)."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    batched: bool


def load_npz(path: str, *, where: str | None = None) -> dict[str, np.ndarray]:
    """Read an .npz without pickles; missing/damaged files become runtime errors."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy under an .npz name
            raise ValueError("not an .npz archive (a single .npy array?)")
        with data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an object array: unpickling it could run code
            raise BundleFormatError("npz holds a pickled object array, which is refused "
                                    "(loading pickles can run code)", where=where or path,
                                    hint="store plain numeric arrays (np.savez of numeric "
                                         "dtypes)") from exc
        raise BundleFormatError(f"cannot read npz: {exc}", where=where or path) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, OSError) and is_fault(exc):  # the machine refused, not bad content
            raise io_error(exc, path, "reading", where=where) from exc
        raise BundleFormatError(f"cannot read npz: {exc}", where=where or path) from exc


def load_golden(bundle: Bundle) -> GoldenData:
    """(inputs, outputs, batched) of the bundle's golden data, for ``Model.verify``."""
    if bundle.golden is None:
        raise BundleFormatError("bundle has no golden data", where=str(bundle.root),
                                hint="rebuild the bundle with golden samples to verify it")
    g = bundle.golden
    return GoldenData(load_npz(str(bundle.path(g.inputs))), load_npz(str(bundle.path(g.outputs))),
                      g.batched)


def num_samples(feeds: dict[str, np.ndarray]) -> int:
    """Leading-axis length shared by every unbatched golden array."""
    sizes = {k: (v.shape[0] if v.ndim else -1) for k, v in feeds.items()}
    if len(set(sizes.values())) != 1 or -1 in sizes.values():
        raise FeedError(f"unbatched golden arrays need one shared leading axis, got {sizes}")
    return next(iter(sizes.values()))


def run_golden(model: Model, inputs: dict[str, np.ndarray], batched: bool
               ) -> dict[str, np.ndarray]:
    """Run golden inputs: in one call when batched, else sample by sample, stacked on axis 0."""
    if batched:
        return model.run(inputs)
    n = num_samples(inputs)
    per: list[dict[str, np.ndarray]] = [model.run({k: v[i] for k, v in inputs.items()})
                                        for i in range(n)]
    names = [s.name for s in model.outputs]
    if not per:
        return {name: np.empty((0,)) for name in names}
    return {name: np.stack([p[name] for p in per], axis=0) for name in names}


def check_parity(model: Model, inputs: dict[str, np.ndarray],
                 outputs: dict[str, np.ndarray], batched: bool) -> ParityReport:
    """``model.verify`` on golden data given as its three parts."""
    return model.verify(GoldenData(inputs, outputs, batched))


def first_sample(inputs: dict[str, np.ndarray], batched: bool, batch: int = 1
                 ) -> dict[str, np.ndarray]:
    """A benchmark feed from golden inputs: the first ``batch`` samples (batched) or entry 0."""
    if batched:
        return {k: v[:batch] for k, v in inputs.items()}
    return {k: v[0] for k, v in inputs.items()}
