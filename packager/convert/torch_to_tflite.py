"""torch -> TFLite with litert-torch (optional extra ``[tflite-torch]``; its import is heavy).

litert-torch lowers a torch.export graph to TFLite. It handles static shapes only (a symbolic
batch fails on reshapes), so the artifact is compiled for a batch of 1 and the runtime feeds a
larger batch one slice at a time (``static_batch`` in bundle.json).
Precisions: fp32; int8 static (PT2E, calibrated on real samples; int8 I/O). int8 dynamic is refused:
litert-torch 0.10's PT2E dynamic path gives wrong outputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..config.manifest import Manifest
from ..config.targets import Quantization
from ..errors import ConversionError, UnsupportedError, not_installed
from ..quiet import quiet
from . import TFLiteArtifact
from .tflite_io import with_io_dtypes


def _import_litert_torch() -> Any:
    try:
        with quiet("absl", "jax", "torch"):
            import litert_torch
    except ImportError:
        raise not_installed("PyTorch -> TFLite", "litert-torch", "tflite-torch", cls=UnsupportedError) from None
    return litert_torch


def torch_to_tflite(module: Any, manifest: Manifest, calibration: list[dict[str, np.ndarray]] | None, *,
                    precision: str, quantization: Quantization | None, io: str) -> TFLiteArtifact:
    """Convert ``module`` with litert-torch for a batch of one sample."""
    import torch

    from ..sources.torch_source import ordered_outputs
    if precision == "fp16":
        raise UnsupportedError("fp16 TFLite from PyTorch is not offered: litert-torch has no float16 "
                               "weight mode", hint="use fp32 or int8 static for a PyTorch model's TFLite artifact")
    if quantization is not None and quantization.mode == "dynamic":
        # checked with litert-torch 0.10: PT2E dynamic int8 lowers to a model whose outputs are garbage
        raise UnsupportedError("int8 dynamic TFLite from PyTorch is not offered: litert-torch's PT2E dynamic "
                               "path produces wrong results", hint="use int8 static (calibrated) or fp32")
    litert_torch = _import_litert_torch()
    if calibration is None or not calibration:
        raise ConversionError("no sample data to trace the model with", where="tflite")
    first = calibration[0]
    args = tuple(torch.from_numpy(np.ascontiguousarray(first[s.name][:1])) for s in manifest.inputs)
    model = ordered_outputs(module, [o.name for o in manifest.outputs], args)
    details: dict[str, Any] = {"converter": f"litert-torch {getattr(litert_torch, '__version__', '')}".strip(),
                               "static_batch": 1, "io": "float32"}
    notes: list[str] = []
    try:
        with quiet("absl", "jax", "torch"):
            if precision == "fp32":
                converted = litert_torch.convert(model, args)
            else:
                assert quantization is not None
                converted, samples = _pt2e(litert_torch, model, args, manifest, calibration, quantization)
                details.update(weights="int8", quantization=f"PT2E {quantization.mode}",
                               per_channel=quantization.per_channel)
                if quantization.mode == "static":
                    details.update(activations="int8", io="int8 (quantized by the runtime)",
                                   calibration_samples=samples)
                    if io == "float":
                        notes.append("litert-torch's static int8 model has int8 inputs/outputs; the "
                                     "runtime quantizes float feeds, so callers still pass floats")
            data = converted.model_content()
    except (UnsupportedError, ConversionError):
        raise
    except Exception as exc:
        text = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ConversionError(f"litert-torch conversion ({precision}) failed: {text}", where="tflite",
                              hint="use onnx or torchscript candidates for this model") from None
    names_in = [s.name for s in manifest.inputs]
    names_out = [o.name for o in manifest.outputs]
    io_map = {"inputs": {n: f"args_{i}" for i, n in enumerate(names_in)},
              "outputs": {n: f"output_{i}" for i, n in enumerate(names_out)}}
    fixed = {s.name: {str(axis): int(first[s.name].shape[axis]) for axis, d in enumerate(s.shape or ())
                      if axis > 0 and isinstance(d, str)} for s in manifest.inputs}
    fixed = {k: v for k, v in fixed.items() if v}
    if fixed:  # litert-torch compiles static shapes: a symbolic sequence length becomes the example's
        details["static_axes"] = fixed
        notes.append("compiled for fixed " + ", ".join(f"{n} axis {a} = {length}" for n, axes in fixed.items()
                                                        for a, length in axes.items())
                     + " (litert-torch compiles static shapes): the runtime refuses other lengths for this "
                       "candidate; the ONNX candidates keep those axes dynamic")
    io_map, dtype_notes = with_io_dtypes(data, io_map, manifest)
    return TFLiteArtifact(data=data, io_map=io_map, details=details, notes=notes + dtype_notes)


def _pt2e(litert_torch: Any, model: Any, args: tuple[Any, ...], manifest: Manifest,
          calibration: list[dict[str, np.ndarray]], q: Quantization) -> tuple[Any, int]:
    """PT2E quantization (XNNPACK-style symmetric int8), observers fed with real samples."""
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e
    dynamic = q.mode == "dynamic"
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=q.per_channel, is_dynamic=dynamic))
    prepared = quantize_pt2e.prepare_pt2e(torch.export.export(model, args).module(), quantizer)
    samples = 0
    with torch.no_grad():
        for feed in calibration:
            n = len(next(iter(feed.values())))
            for i in range(n):
                prepared(*[torch.from_numpy(np.ascontiguousarray(feed[s.name][i:i + 1])) for s in manifest.inputs])
                samples += 1
            if dynamic:  # dynamic quantization needs one pass only, to settle the graph
                break
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    return litert_torch.convert(converted, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)), samples
