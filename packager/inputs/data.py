"""Real sample data (calibration, golden, evaluation), checked against the manifest's signature."""
from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config.fields import did_you_mean
from ..config.manifest import DataSpec, Manifest, TensorSpec
from ..errors import DataError
from .entrypoints import call_entry

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class SampleSet:
    """Samples as rows along axis 0 of every array.

    ``batched``: axis 0 is the model's symbolic batch dim, so any slice is a valid feed.
    Otherwise the samples are stacked along a new axis and each row is one feed.
    """

    arrays: dict[str, np.ndarray]
    batched: bool
    source: str
    random: bool = False
    notes: tuple[str, ...] = ()  # how the data was read, for the build log (e.g. axis 0 as samples)
    raw: tuple[tuple[str, bytes], ...] = ()  # (file name, bytes) each row was pre-processed from (images: DIR)

    def __len__(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    def take(self, indices: np.ndarray | slice) -> SampleSet:
        raw = tuple(self.raw[i] for i in np.arange(len(self.raw))[indices]) if self.raw else ()
        return SampleSet({k: np.ascontiguousarray(v[indices]) for k, v in self.arrays.items()},
                         self.batched, self.source, self.random, raw=raw)

    def batches(self, batch_size: int) -> Iterator[Feeds]:
        """Feeds for the model: slices of ``batch_size`` rows, or one row at a time."""
        n = len(self)
        if self.batched:
            for start in range(0, n, batch_size):
                yield {k: v[start:start + batch_size] for k, v in self.arrays.items()}
        else:
            for i in range(n):
                yield {k: v[i] for k, v in self.arrays.items()}


def _check_array(name: str, arr: Any, spec: TensorSpec, *, batched: bool, stacked: bool,
                 where: str) -> np.ndarray:
    """One array of a feed against its input spec (``stacked``: it has an extra leading axis)."""
    if not isinstance(arr, np.ndarray):
        try:
            arr = np.asarray(arr)
        except Exception:
            raise DataError(f"input {name!r} is a {type(arr).__name__}, not an array", where=where) from None
    if arr.dtype != np.dtype(spec.dtype):
        raise DataError(f"input {name!r} has dtype {arr.dtype}, the signature says {spec.dtype}",
                        where=where, hint=f"convert it where the data is made: arr.astype('{spec.dtype}')")
    shape = spec.shape or ()
    got = arr.shape[1:] if stacked else arr.shape
    if len(got) != len(shape):
        expect = ("(samples, " + ", ".join(map(str, shape)) + ")") if stacked else str(list(shape))
        raise DataError(f"input {name!r} has shape {list(arr.shape)}, expected {expect}", where=where,
                        hint="each sample must match the manifest's input shape")
    for axis, (want, have) in enumerate(zip(shape, got, strict=False)):
        if isinstance(want, int) and want != have:
            raise DataError(f"input {name!r} has {have} at axis {axis + (1 if stacked else 0)}, "
                            f"the signature fixes it to {want}", where=where,
                            hint=f"the manifest's shape is {list(shape)}")
    if arr.dtype.kind == "f":
        bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise DataError(f"input {name!r} contains {bad} NaN/Inf value(s)", where=where,
                            hint="clean the data: real samples must be finite")
    return arr


def _check_feed(feed: Any, inputs: tuple[TensorSpec, ...], *, batched: bool, stacked: bool,
                where: str) -> Feeds:
    if not isinstance(feed, Mapping):
        raise DataError(f"expected a dict of input name -> array, got {type(feed).__name__}", where=where,
                        hint="yield {'input_name': array, ...} per batch")
    names = [s.name for s in inputs]
    for key in feed:
        if key not in names:
            raise DataError(f"unexpected input {key!r}{did_you_mean(str(key), names)}", where=where,
                            hint=f"the model's inputs are {names}")
    missing = [n for n in names if n not in feed]
    if missing:
        raise DataError(f"missing input(s) {missing}", where=where, hint=f"give every input of {names}")
    return {s.name: _check_array(s.name, feed[s.name], s, batched=batched, stacked=stacked, where=where)
            for s in inputs}


def load_samples(spec: DataSpec, manifest: Manifest, what: str) -> SampleSet:
    """Load ``what`` data (calibration/golden) as a SampleSet of at most ``spec.samples`` rows."""
    batched = manifest.symbolic_batch() is not None
    where = f"{manifest.file}: {what}"
    if spec.random:
        return _random_samples(manifest, spec, batched)
    if spec.file is not None:
        return _load_npz(spec.file, manifest, spec.samples, batched, where)
    if spec.images is not None or spec.texts is not None:
        from .images import load_images
        from .texts import load_texts
        arrays, raw, source = (
            load_images(spec.images, manifest, spec.samples, batched, where) if spec.images is not None
            else load_texts(spec.texts, manifest, spec.samples, batched, where))  # type: ignore[arg-type]
        return SampleSet(arrays, batched, source=source, raw=raw)
    assert spec.entry is not None
    result = call_entry(spec.entry, manifest.base_dir, DataError, f"{where}.entry")
    if isinstance(result, Mapping):
        result = [result]
    if not isinstance(result, Iterable):
        raise DataError(f"{spec.entry} returned {type(result).__name__}", where=f"{where}.entry",
                        hint="return or yield dicts of input name -> array")
    rows: dict[str, list[np.ndarray]] = {s.name: [] for s in manifest.inputs}
    count = 0
    notes: list[str] = []
    try:
        for i, feed in enumerate(result):
            item = f"{where}.entry (item {i})"
            many = not batched and isinstance(feed, Mapping) and _several_of_one(feed, manifest.inputs)
            if many:  # [N, ...] where the signature fixes [1, ...]: N samples, stacked as [N, 1, ...]
                feed = {k: v[:, None] for k, v in feed.items()}
                if not notes:
                    notes.append(f"{spec.entry}: items of several samples for the fixed batch-1 input(s) "
                                 "are read as that many samples of batch one")
            checked = _check_feed(feed, manifest.inputs, batched=batched, stacked=many, where=item)
            for k, v in checked.items():
                rows[k].append(v if batched or many else v[None])
            count += len(next(iter(checked.values()))) if batched or many else 1
            if count >= spec.samples:
                break
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{spec.entry} raised {type(exc).__name__}: {exc} while yielding samples",
                        where=f"{where}.entry",
                        hint="fix the function (run it by hand to see the full traceback, or use "
                             "--debug)") from exc
    if count == 0:
        raise DataError(f"{spec.entry} gave no samples", where=f"{where}.entry",
                        hint="yield at least one feed dict of real samples")
    try:
        arrays = {k: np.concatenate(v)[: spec.samples] for k, v in rows.items()}
    except ValueError as exc:
        raise DataError(f"samples from {spec.entry} do not stack: {exc}", where=f"{where}.entry",
                        hint="every item must have the same non-batch shape") from None
    return SampleSet(arrays, batched, source=f"entry {spec.entry}", notes=tuple(notes))


def _several_of_one(feed: Mapping[str, Any], inputs: tuple[TensorSpec, ...]) -> bool:
    """An entry item whose every input has several rows where the signature fixes a batch of
    one (each input's shape[0] == 1, the item's arrays [N, ...] with one N > 1)."""
    sizes = set()
    for s in inputs:
        arr = feed.get(s.name)
        if not _batch_of_one(s) or not isinstance(arr, np.ndarray) or arr.ndim != len(s.shape):
            return False
        sizes.add(arr.shape[0])
    return len(sizes) == 1 and sizes != {1}


def _load_npz(path: Path, manifest: Manifest, limit: int, batched: bool, where: str) -> SampleSet:
    if not path.is_file():
        raise DataError(f"data file {path} not found", where=f"{where}.file",
                        hint="paths in a manifest are relative to the manifest's folder")
    if not zipfile.is_zipfile(path):  # np.load would try it as a pickle and say "pickled data"
        raise DataError(f"{path.name} is not an .npz archive (not a zip file)", where=f"{where}.file",
                        hint="write it with numpy.savez(path, input_name=array, ...)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            loaded = {k: npz[k] for k in npz.files}
    except Exception as exc:
        pickled = "pickle" in str(exc).lower()
        raise DataError(f"cannot read {path.name} as an .npz of arrays: "
                        + ("it holds object arrays (pickled Python objects), which are never loaded"
                           if pickled else f"{type(exc).__name__}: {exc}"), where=f"{where}.file",
                        hint="write it with numpy.savez(path, input_name=array, ...) from numeric "
                             "arrays" + ("; pickled objects are refused" if pickled else
                                         "; the file may be truncated")) from None
    notes: tuple[str, ...] = ()
    if not batched:
        loaded, notes = _samples_along_axis0(loaded, manifest.inputs, path.name)
    feeds = _check_feed(loaded, manifest.inputs, batched=batched, stacked=not batched,
                        where=f"{where}.file ({path.name})")
    counts = {len(v) for v in feeds.values()}
    if len(counts) != 1:
        raise DataError(f"arrays in {path.name} have different sample counts {sorted(counts)}",
                        where=f"{where}.file")
    if counts == {0}:
        raise DataError(f"{path.name} holds no samples", where=f"{where}.file",
                        hint="save at least one sample per input")
    source = f"file {path.name}" + (" (axis 0 read as samples of the fixed batch-1 input)" if notes else "")
    return SampleSet({k: v[:limit] for k, v in feeds.items()}, batched, source=source, notes=notes)


def _batch_of_one(spec: TensorSpec) -> bool:
    return bool(spec.shape) and spec.shape[0] == 1


def _samples_along_axis0(arrays: dict[str, Any], inputs: tuple[TensorSpec, ...], where: str
                         ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """For an input whose signature fixes a batch of one ([1, 3, 224, 224]), the array people
    have ([N, 3, 224, 224]: N samples, one axis short of the stacked [N, 1, 3, 224, 224]) is read
    as N samples of batch one. An array of the stacked rank is left as it is."""
    out, notes = dict(arrays), []
    for s in inputs:
        arr = arrays.get(s.name)
        if _batch_of_one(s) and isinstance(arr, np.ndarray) and arr.ndim == len(s.shape):
            out[s.name] = arr[:, None]
            notes.append(f"{where}: input {s.name!r} {list(arr.shape)} read as {arr.shape[0]} samples of "
                         f"{[1, *arr.shape[1:]]} (the signature fixes a batch of one)")
    return out, tuple(notes)


def _random_samples(manifest: Manifest, spec: DataSpec, batched: bool) -> SampleSet:
    rng = np.random.default_rng(spec.seed)
    arrays = {}
    for s in manifest.inputs:
        dims = [d if isinstance(d, int) else 1 for d in (s.shape or ())]
        shape = [spec.samples] + (dims[1:] if batched else dims)
        if np.dtype(s.dtype).kind == "f":
            arrays[s.name] = rng.standard_normal(shape).astype(s.dtype)
        elif s.dtype == "bool":
            arrays[s.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            arrays[s.name] = rng.integers(0, 10, shape).astype(s.dtype)
    return SampleSet(arrays, batched, source="random (manifest asked for random: true)", random=True)


MIN_HELD_OUT_CALIBRATION = 16  # calibration samples left after the golden ones are taken out


def _golden_rows(manifest: Manifest, calibration: SampleSet) -> np.ndarray:
    """The calibration rows drawn as golden inputs (sorted): one rule for the draw and for leaving
    them out of int8 calibration, so the two sets cannot overlap by drift."""
    n = min(manifest.golden.samples, len(calibration))
    return np.sort(np.random.default_rng(manifest.golden.seed).choice(len(calibration), size=n, replace=False))


def golden_samples(manifest: Manifest, calibration: SampleSet | None) -> SampleSet:
    """Golden inputs: the manifest's own golden data, or a seeded draw from the calibration data."""
    spec = manifest.golden
    if not manifest.golden_from_calibration:
        return load_samples(spec, manifest, "golden")
    assert calibration is not None
    idx = _golden_rows(manifest, calibration)
    n = len(idx)
    picked = calibration.take(idx)
    apart = ", kept out of int8 calibration" if len(calibration) - n >= MIN_HELD_OUT_CALIBRATION else ""
    return SampleSet(picked.arrays, picked.batched, f"{n} samples drawn from calibration data "
                     f"({calibration.source}, seed {spec.seed}{apart})", calibration.random, raw=picked.raw)


def calibration_without_golden(manifest: Manifest,
                               calibration: SampleSet | None) -> tuple[SampleSet | None, str | None]:
    """The calibration data int8 is calibrated on: without the samples drawn as golden inputs, so
    parity is checked on samples the quantizer never saw. When too few would be left, all of them,
    and a warning saying so."""
    if calibration is None or not manifest.golden_from_calibration:
        return calibration, None
    idx = _golden_rows(manifest, calibration)
    n = len(idx)
    rest = np.setdiff1d(np.arange(len(calibration)), idx)
    if len(rest) < MIN_HELD_OUT_CALIBRATION:
        return calibration, (
            f"golden inputs are {n} of the {len(calibration)} calibration samples, and int8 is calibrated on all "
            f"of them: parity is checked on samples the quantizer saw (fewer than {MIN_HELD_OUT_CALIBRATION} would "
            f"be left without them); give calibration.samples >= {n + MIN_HELD_OUT_CALIBRATION}, or golden data "
            "of its own")
    kept = calibration.take(rest)
    return SampleSet(kept.arrays, kept.batched, f"{calibration.source}, without the {n} golden samples",
                     calibration.random, calibration.notes, kept.raw), None


@dataclass(frozen=True)
class EvaluationSet:
    """Held-out feeds and integer labels for an accuracy figure."""

    feeds: list[Feeds]
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return int(sum(len(batch) for batch in self.labels))


def load_evaluation(manifest: Manifest) -> EvaluationSet | None:
    """Call the evaluation entry point: (feeds, labels) or an iterable of such pairs."""
    ev = manifest.evaluation
    if ev is None:
        return None
    where = f"{manifest.file}: evaluation.entry"
    result = call_entry(ev.entry, manifest.base_dir, DataError, where)
    if not isinstance(result, (tuple, list)) and not hasattr(result, "__iter__"):
        raise DataError(f"{ev.entry} returned {type(result).__name__}", where=where,
                        hint="return (feeds_dict, labels_array) or a list of such pairs")
    pairs = [result] if isinstance(result, tuple) else list(result)
    batched = manifest.symbolic_batch() is not None
    feeds, labels = [], []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise DataError(f"item {i} is not a (feeds, labels) pair", where=where,
                            hint="return (feeds_dict, labels_array) or a list of such pairs")
        feed = _check_feed(pair[0], manifest.inputs, batched=batched, stacked=False, where=f"{where} (item {i})")
        lab = np.asarray(pair[1])
        if ev.metric == "accuracy" and (lab.dtype.kind not in "iu" or lab.ndim != 1):
            raise DataError(f"labels of item {i} must be a 1-D integer array, got {lab.dtype} {list(lab.shape)}",
                            where=where, hint="accuracy compares class ids; give evaluation.metric an entry "
                                              "point for other labels (boxes, masks, ...)")
        if lab.ndim == 0 or lab.dtype.kind not in "iufb":
            raise DataError(f"labels of item {i} must be a numeric array with samples along axis 0, got "
                            f"{lab.dtype} {list(lab.shape)}", where=where)
        feeds.append(feed)
        labels.append(lab)
    return EvaluationSet(feeds, labels)
