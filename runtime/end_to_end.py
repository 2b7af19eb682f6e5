"""End-to-end golden check: raw images (or texts) -> this device's pre-processing -> the model ->
outputs.

Tensor-to-tensor parity cannot see a device that decodes or resizes differently (another Pillow,
another libjpeg) or a pipeline redone by hand. A bundle built from images keeps them
(``golden.raw``); here each is pre-processed on this device by ``runtime.prepost`` and compared
with the tensor the build made from it, then the model runs on the device's own tensors and its
outputs are judged against the reference outputs under the candidate's tolerances.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BundleFormatError
from .fileio import io_error

if TYPE_CHECKING:
    from .compare import ParityReport
    from .golden import GoldenData
    from .model import Model

LSB_ALLOWED = 2.0  # pixel steps a device's decoder/resizer may differ by (libjpeg, Pillow versions)


@dataclass(frozen=True)
class EndToEndReport:
    """What the end-to-end check found (``passed``: both parts passed)."""

    input: str
    samples: int
    preprocess_max_abs: float
    preprocess_limit: float
    worst_file: str
    parity: ParityReport
    kind: str = "image"  # or "text"

    @property
    def preprocess_passed(self) -> bool:
        return self.preprocess_max_abs <= self.preprocess_limit

    @property
    def passed(self) -> bool:
        return self.preprocess_passed and self.parity.passed

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "kind": self.kind, "samples": self.samples, "passed": self.passed,
                "preprocess": {"max_abs": self.preprocess_max_abs, "limit": self.preprocess_limit,
                               "worst_file": self.worst_file, "passed": self.preprocess_passed},
                "outputs": [o.to_dict() for o in self.parity.outputs]}

    def why(self) -> str:
        """What failed, in one line ('' when it passed)."""
        parts = []
        if not self.preprocess_passed:
            parts.append(f"this device's pre-processing differs from the build's by {self.preprocess_max_abs:.3g} "
                         f"(limit {self.preprocess_limit:.3g}, worst {self.worst_file})")
        parts += [f"{o.name} from images: {', '.join(o.failures)}" for o in self.parity.outputs if not o.passed]
        return "; ".join(parts)

    def lines(self, indent: str = "  ") -> list[str]:
        from .compare import format_parity_rows
        verdict = "PASS" if self.preprocess_passed else "FAIL"
        return [f"end to end ({self.samples} {self.kind}s -> {self.input}): "
                f"{'PASS' if self.passed else 'FAIL'}",
                f"{indent}pre-processing on this device vs the build's: max |diff| "
                f"{self.preprocess_max_abs:.3g} (limit {self.preprocess_limit:.3g}, worst {self.worst_file}): "
                f"{verdict}",
                *format_parity_rows(self.parity.outputs, indent=indent).splitlines()]


def raw_source(model: Model) -> tuple[str, str] | None:
    """(the name raw golden data goes to, "image" or "text"), or None: the bundle has none."""
    bundle = model.bundle
    if bundle.golden is None or not bundle.golden.raw or not bundle.processing:
        return None
    raw = bundle.processing.raw_inputs
    return next(iter(raw.items())) if len(raw) == 1 else None


def why_not_checked(model: Model) -> str | None:
    """Why the end-to-end check cannot run here although the bundle has golden images (Pillow is
    missing: the tensor parity still counts, and this is shown beside it)."""
    import importlib.util
    source = raw_source(model)
    if source is None or source[1] != "image" or importlib.util.find_spec("PIL") is not None:
        return None
    from .prepost import PILLOW_HINT
    return f"not checked: decoding the golden images needs Pillow, which is not installed ({PILLOW_HINT})"


def preprocess_limit(model: Model, name: str) -> float:
    """How far the device's tensor may be from the build's: LSB_ALLOWED pixel steps after scaling
    (token ids: not at all)."""
    if model.bundle.processing is not None and model.bundle.processing.text is not None:
        return 0.0
    pre = model.bundle.processing.inputs[name] if model.bundle.processing else None
    spec = next(s for s in model.bundle.signature.inputs if s.name == name)
    if pre is None or np.dtype(spec.dtype).kind in "iu":
        return LSB_ALLOWED
    return LSB_ALLOWED * pre.scale / min(pre.std or (1.0,)) + 1e-6


def check_end_to_end(model: Model, golden: GoldenData) -> EndToEndReport | None:
    """Run the bundle's raw golden images through this device's pre-processing and the model
    (None when the bundle has none, as one built from tensors, or when ``why_not_checked``)."""
    from .compare import compare
    from .golden import run_golden
    from .prepost import Processor

    bundle = model.bundle
    source = raw_source(model)
    if source is None or why_not_checked(model) is not None:
        return None
    assert bundle.golden is not None
    name, kind = source
    raw = bundle.golden.raw
    samples = len(next(iter(golden.inputs.values())))
    if len(raw) != samples:
        raise BundleFormatError(f"golden.raw lists {len(raw)} files for {samples} golden samples",
                                where=str(bundle.root), hint="rebuild the bundle")
    processor = Processor(bundle)
    rows: list[dict[str, np.ndarray]] = []
    worst, worst_file = -1.0, raw[0]
    for i, rel in enumerate(raw):
        path = bundle.path(rel)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise io_error(exc, path, "reading") from exc
        made = processor.feeds({name: [data]})  # each (1, ...): one sample, a batch of one
        for key, tensor in made.items():
            want = golden.inputs[key][i:i + 1] if golden.batched else golden.inputs[key][i]
            diff = float(np.max(np.abs(tensor.astype(np.float64) - want.astype(np.float64)))) if want.size else 0.0
            if diff > worst:
                worst, worst_file = diff, rel
        rows.append(made)
    made_names = list(rows[0])
    feeds = {k: v for k, v in golden.inputs.items() if k not in made_names}  # inputs raw data does not make
    for key in made_names:
        stacked = [r[key] for r in rows]
        feeds[key] = np.concatenate(stacked) if golden.batched else np.stack(stacked)
    got = run_golden(model, feeds, golden.batched)
    cand = model.candidate_spec
    scores = {s.name: s.scores for s in bundle.signature.outputs if s.scores is not None}
    names = [s.name for s in bundle.signature.outputs]
    parity = compare({n: golden.outputs[n] for n in names}, got, cand.tolerance, scores=scores)
    return EndToEndReport(input=name, samples=len(raw), preprocess_max_abs=max(worst, 0.0),
                          preprocess_limit=preprocess_limit(model, name), worst_file=worst_file, parity=parity,
                          kind=kind)
