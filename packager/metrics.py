"""The manifest's evaluation metric (top-1 accuracy, or the user's entry point) and its budget
(``evaluation.max_accuracy_drop``): one place for the numbers the build reports, the policy drops
candidates by, and the mixed-precision search keeps going for."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config.manifest import EvaluationSpec, Manifest
from .errors import DataError


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows whose class (the scores' argmax, or the class ids themselves) is the label's."""
    scores = np.asarray(scores)
    if scores.dtype.kind in "iub" and scores.size == len(labels):  # already class ids
        pred = scores.reshape(len(labels))
    else:
        pred = scores.reshape(len(labels), -1).argmax(axis=-1)
    return float((pred == labels).mean()) if len(labels) else 0.0


def metric_value(outputs: Mapping[str, np.ndarray], labels: np.ndarray, spec: EvaluationSpec, base_dir: Path,
                 where: str) -> float:
    """The metric of ``outputs`` (every output over the evaluation data, samples along axis 0)."""
    if spec.metric == "accuracy":
        return top1(outputs[spec.output], labels)
    from .inputs.entrypoints import resolve_entry
    fn = resolve_entry(spec.metric, base_dir, DataError, where)
    try:
        value = fn(dict(outputs), labels)
    except Exception as exc:  # user code: reported with where it ran
        raise DataError(f"{spec.metric} raised {type(exc).__name__}: {exc}", where=where,
                        hint=f"it is called as {spec.metric_name}(outputs, labels) with outputs "
                             f"{ {k: list(np.shape(v)) for k, v in outputs.items()} }") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise DataError(f"{spec.metric} returned {value!r}, not a finite number", where=where,
                        hint="return one float (e.g. the mean IoU over the evaluation data)")
    return float(value)


def budget_miss(spec: EvaluationSpec | None, reference: float | None, value: float | None) -> str | None:
    """Why a candidate's metric misses the manifest's budget (max_accuracy_drop), or None."""
    if spec is None or spec.max_drop is None or reference is None or value is None:
        return None
    drop = (reference - value if spec.higher_is_better else value - reference) * 100
    if drop <= spec.max_drop + 1e-9:
        return None
    side = "below" if spec.higher_is_better else "above"
    return (f"{spec.metric_name} {value:.4g} is {drop:.2f} points {side} the original model's {reference:.4g} "
            f"(max_accuracy_drop {spec.max_drop:g})")


@dataclass(frozen=True)
class Budget:
    """What the mixed-precision search checks a candidate's metric against: the evaluation feeds
    (manifest names, model batches) and labels, the original model's value, and the spec. It
    pickles: the TFLite search runs in a child process."""

    spec: EvaluationSpec
    base_dir: Path
    where: str
    feeds: list[dict[str, np.ndarray]]
    labels: np.ndarray
    reference: float

    @classmethod
    def of(cls, manifest: Manifest, evaluation: Any, reference: float | None) -> Budget | None:
        """The manifest's budget, when it has one and the evaluation data and reference are there."""
        spec = manifest.evaluation
        if spec is None or spec.max_drop is None or evaluation is None or reference is None:
            return None
        return cls(spec, manifest.base_dir, f"{manifest.file}: evaluation.metric", list(evaluation.feeds),
                   np.concatenate(evaluation.labels), reference)

    def miss(self, outputs: Mapping[str, np.ndarray]) -> str | None:
        return budget_miss(self.spec, self.reference, metric_value(outputs, self.labels, self.spec, self.base_dir,
                                                                   self.where))
