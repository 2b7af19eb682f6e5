"""ONNX sources: a model file, checked against the manifest and run as-is for the reference."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config.manifest import Manifest
from ..config.targets import CandidateSpec
from ..errors import SourceError, UnsupportedError
from ..onnx_check import ORT_DOMAINS, describe_ops, ort_only_ops
from ..onnx_utils import ONNX_DTYPES, graph_io, load_onnx, opset_of


@dataclass
class OnnxSource:
    """The source ONNX model; the reference runs it unmodified on onnxruntime's CPU provider."""

    model: Any
    manifest: Manifest
    sha256: str
    framework: str = "onnx"
    _session: Any = None

    @property
    def cache_key(self) -> str:
        return self.sha256

    @property
    def description(self) -> str:
        return f"onnx file {self.manifest.source.path}"

    @classmethod
    def load(cls, manifest: Manifest) -> OnnxSource:
        path = manifest.source.path
        assert path is not None
        where = f"{manifest.file}: source.path"
        model = load_onnx(path, where)
        check_signature(model, manifest)
        return cls(model=model, manifest=manifest, sha256=hashlib.sha256(path.read_bytes()).hexdigest())

    def reference(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            try:
                self._session = ort.InferenceSession(self.model.SerializeToString(), opts,
                                                     providers=["CPUExecutionProvider"])
            except Exception as exc:
                first = " ".join(str(exc).split())
                custom = custom_ops(self.model)
                if custom:
                    shown = ", ".join(f"{op!r} (domain {dom!r})" for dom, op in custom)
                    raise SourceError(f"the model uses op(s) {shown} that the onnx format as run by "
                                      f"onnxruntime cannot express: {first}",
                                      where=f"{self.manifest.file}: source.path",
                                      hint="re-export the model with standard ONNX ops only (custom "
                                           "ops need a kernel library on every device)") from exc
                raise SourceError(f"onnxruntime cannot run the source model: {first}",
                                  where=f"{self.manifest.file}: source.path",
                                  hint="check the model with onnx.checker and onnxruntime by hand") from exc
        names = [o.name for o in self.manifest.outputs]
        try:
            values = self._session.run(names, {s.name: feeds[s.name] for s in self.manifest.inputs})
        except Exception as exc:
            raise SourceError(f"onnxruntime failed to run the source model: {' '.join(str(exc).split())}",
                              where=f"{self.manifest.file}: inputs",
                              hint="check the manifest's input shapes against the model's") from None
        return dict(zip(names, values, strict=True))


STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", *ORT_DOMAINS)


def runtime_refusal(manifest: Manifest, spec: CandidateSpec, missing: UnsupportedError | None
                    ) -> UnsupportedError | None:
    """Why a candidate for another runtime than onnxruntime cannot take this ONNX source: the
    onnxruntime-only ops it uses, named with their domains (and ``missing``'s reason, when the
    format has no route from ONNX anyway). None when the model has no such ops."""
    path = manifest.source.path
    if spec.backend == "onnxruntime" or path is None:
        return None
    ops, opset = _runtime_only(Path(path))
    if not ops:
        return None
    besides = f"; besides, {missing.message}" if missing is not None else ""
    return UnsupportedError(f"the model uses onnxruntime-only op(s) {describe_ops(ops, opset)}: a {spec.format} "
                            f"candidate ({spec.backend}) cannot run them{besides}", where=f"candidate {spec.id}",
                            hint="use onnx candidates (onnxruntime runs these ops), or give as the source the "
                                 "model from before onnxruntime's optimizer fused them (the plain export)")


def _runtime_only(path: Path) -> tuple[list[tuple[str, str]], int]:
    """The onnxruntime-only ops of an ONNX file and its opset, read once per file version."""
    try:
        stat = path.stat()
    except OSError:
        return [], 0  # the source's own load reports a missing file
    return _runtime_only_at(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _runtime_only_at(path: str, mtime_ns: int, size: int) -> tuple[list[tuple[str, str]], int]:
    import onnx
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - the source's own load reports an unreadable file
        return [], 0
    return ort_only_ops(model), opset_of(model)


def custom_ops(model: Any) -> list[tuple[str, str]]:
    """(domain, op_type) of every node outside the standard ONNX (and onnxruntime) domains."""
    found = {(n.domain, n.op_type) for n in model.graph.node if n.domain not in STANDARD_DOMAINS}
    return sorted(found)


def check_signature(model: Any, manifest: Manifest) -> None:
    """The manifest's inputs/outputs must exist in the model with the same dtype and rank."""
    where = f"{manifest.file}: inputs"
    ins, outs = graph_io(model)
    for spec in manifest.inputs:
        if spec.name not in ins:
            raise SourceError(f"the model has no input {spec.name!r} (it has {list(ins)})", where=where,
                              hint="use the model's input names in the manifest")
        elem, dims = ins[spec.name]
        _check_tensor(spec.name, spec.dtype, spec.shape, elem, dims, where)
    extra = [n for n in ins if n not in {s.name for s in manifest.inputs}]
    if extra:
        raise SourceError(f"the model has input(s) {extra} the manifest does not list", where=where,
                          hint="list every model input in the manifest")
    for out in manifest.outputs:
        if out.name not in outs:
            raise SourceError(f"the model has no output {out.name!r} (it has {list(outs)})",
                              where=f"{manifest.file}: outputs")


def _check_tensor(name: str, dtype: str, shape: Any, elem: int, dims: list[Any] | None, where: str) -> None:
    got = ONNX_DTYPES.get(elem, f"onnx type {elem}")
    if got != dtype:
        raise SourceError(f"input {name!r} is {got} in the model, {dtype} in the manifest", where=where,
                          hint=f"set dtype: {got}")
    if shape is not None and dims is not None:
        if len(dims) != len(shape):
            raise SourceError(f"input {name!r} has rank {len(dims)} in the model {dims}, "
                              f"{len(shape)} in the manifest {list(shape)}", where=where,
                              hint=f"write the model's shape in the manifest: {dims}")
        for axis, (want, have) in enumerate(zip(shape, dims, strict=False)):
            if isinstance(want, str) and isinstance(have, int):
                raise SourceError(f"input {name!r} axis {axis} is fixed to {have} in the model, the manifest "
                                  f"makes it the symbol {want!r}", where=where,
                                  hint=f"write {have} at axis {axis} of the input's shape, or re-export the "
                                       "model with a dynamic axis")
            if isinstance(want, int) and isinstance(have, int) and want != have:
                raise SourceError(f"input {name!r} axis {axis} is {have} in the model, {want} in "
                                  "the manifest", where=where, hint=f"the model's shape is {dims}")
