"""A candidate's ``explain`` record in bundle.json (written by the packager, read by the runtime):
the probe model and float references ``verify --explain`` runs on the device (``runtime/explain.py``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import BundleFormatError


@dataclass(frozen=True)
class ProbeTensor:
    """One intermediate tensor the probe outputs: which node makes it, where, and the host's SNR."""

    node: str
    op_type: str
    tensor: str  # the float model's name: the key of its values in the references file
    output: str  # the probe's output that stands for it (a DequantizeLinear's, or the tensor itself)
    depth: int  # position in the float model's node order
    inputs: tuple[int, ...]  # indices (in ``ExplainData.tensors``) of the nearest probed tensors it is made from
    host_snr_db: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inputs": list(self.inputs)}


@dataclass(frozen=True)
class ExplainData:
    """A candidate's ``explain`` record in bundle.json: its probe, the float references, the tensors."""

    probe: str  # bundle-relative path of the probe model
    references: str  # bundle-relative .npz: tensor name -> float values on the first ``samples`` golden rows
    samples: int
    tensors: tuple[ProbeTensor, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, "references": self.references, "samples": self.samples,
                "tensors": [t.to_dict() for t in self.tensors]}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> ExplainData:
        try:
            tensors = tuple(ProbeTensor(node=str(t["node"]), op_type=str(t["op_type"]), tensor=str(t["tensor"]),
                                        output=str(t["output"]), depth=int(t["depth"]),
                                        inputs=tuple(int(i) for i in t["inputs"]),
                                        host_snr_db=float(t["host_snr_db"])) for t in data["tensors"])
            made = cls(probe=str(data["probe"]), references=str(data["references"]), samples=int(data["samples"]),
                       tensors=tensors)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"malformed explain record ({type(exc).__name__}: {exc})", where=where,
                                    hint="rebuild the bundle with edgepack") from None
        if any(i < 0 or i >= pos for pos, t in enumerate(tensors) for i in t.inputs):
            raise BundleFormatError("an explain tensor names an input that is not earlier in the list", where=where,
                                    hint="rebuild the bundle with edgepack")
        return made
