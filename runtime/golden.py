"""Golden data: load it, run it through a model in the bundle's layout, judge parity."""
from __future__ import annotations

import zipfile
from typing import TYPE_CHECKING

import numpy as np

from .bundle import Bundle
from .compare import ParityReport, compare
from .errors import BundleFormatError, FeedError
from .fileio import io_error, is_fault

if TYPE_CHECKING:
    from .model import Model


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


def load_golden(bundle: Bundle) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], bool]:
    """(inputs, outputs, batched) of the bundle's golden data."""
    if bundle.golden is None:
        raise BundleFormatError("bundle has no golden data", where=str(bundle.root),
                                hint="rebuild the bundle with golden samples to verify it")
    g = bundle.golden
    return (load_npz(str(bundle.path(g.inputs))), load_npz(str(bundle.path(g.outputs))),
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
    """Run the model on golden inputs and compare with its candidate's stored tolerances."""
    cand = model.candidate_spec
    got = run_golden(model, inputs, batched)
    names = [s.name for s in model.outputs]
    missing_ref = [n for n in names if n not in outputs]
    if missing_ref:
        raise BundleFormatError(f"golden outputs lack {missing_ref}", where=str(model.bundle.root))
    missing_tol = [n for n in names if n not in cand.tolerance]
    if missing_tol:
        raise BundleFormatError(f"no tolerance for output(s) {missing_tol}",
                                where=f"candidate {cand.id}",
                                hint="rebuild the bundle; every output needs a tolerance")
    scores = {s.name: s.scores for s in model.outputs if s.scores is not None}
    return compare({n: outputs[n] for n in names}, got, cand.tolerance, scores=scores)


def first_sample(inputs: dict[str, np.ndarray], batched: bool, batch: int = 1
                 ) -> dict[str, np.ndarray]:
    """A benchmark feed from golden inputs: the first ``batch`` samples (batched) or entry 0."""
    if batched:
        return {k: v[:batch] for k, v in inputs.items()}
    return {k: v[0] for k, v in inputs.items()}
