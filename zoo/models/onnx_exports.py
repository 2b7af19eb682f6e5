"""ONNX sources: torch zoo models exported with torch.onnx.export as users do it, at several opsets
(11, 13, 14, 17, 18), most with the TorchScript-based exporter (``dynamo=False``, what older
tutorials and Optimum-era files are), some with ``dynamo=True``. The packager then gets the .onnx
file alone (``framework: onnx``): its TFLite candidates go through onnx2tf, its int8 ones through
onnxruntime's quantizer after the opset upgrade the route needs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import hf_audio, hf_text, hf_vision, torch_nets
from .spec import Entry

_TORCH = {e.name: e for e in (*torch_nets.ENTRIES, *hf_text.ENTRIES, *hf_vision.ENTRIES, *hf_audio.ENTRIES)}

# (base torch entry, opset, dynamo)
EXPORTS = [
    ("resnet-tiny", 11, False),
    ("mobilenet-tiny", 13, False),
    ("unet-tiny", 18, True),
    ("ssd-tiny", 11, False),
    ("two-in-two-out", 13, False),
    ("lstm-text", 11, False),
    ("bigru-signal", 14, False),
    ("bert-cls", 14, False),
    ("distilbert-cls", 18, True),
    ("gpt2-lm", 18, True),  # dynamo=False: 'aten::diff' (transformers' masks) has no ONNX symbolic
    ("vit-cls", 14, False),
    ("mobilenetv2-hf", 13, False),
    ("convnext-hf", 17, True),
    ("segformer-hf", 17, False),
    ("whisper-encoder-cls", 18, True),
]


def onnx_entry(base: str, opset: int, dynamo: bool) -> Entry:
    b = _TORCH[base]
    how = "dynamo=True" if dynamo else "dynamo=False"
    return Entry(f"onnx-{base}-op{opset}", b.family, "onnx", f"{b.arch}; exported by torch.onnx.export("
                 f"opset_version={opset}, {how})", b.inputs, b.outputs, b.data, base=base, opset=opset,
                 dynamo=dynamo, tags=(*b.tags, "exported-onnx") + (("old-opset",) if opset < 13 else ()),
                 calibration=b.calibration, golden=b.golden)


ENTRIES = [onnx_entry(*e) for e in EXPORTS]


def base_of(entry: Entry) -> Entry:
    assert entry.base is not None
    return _TORCH[entry.base]


def export(entry: Entry, model: Any, path: Path) -> None:
    """torch.onnx.export(model) to ``path`` with the entry's opset and exporter; symbolic dims of
    the signature (batch, seq) become dynamic axes."""
    import torch
    example = entry.example(2)
    args = tuple(torch.from_numpy(example[s["name"]]) for s in entry.inputs)
    in_names = [s["name"] for s in entry.inputs]
    out_names = [o["name"] for o in entry.outputs]

    def axes(spec: dict[str, Any]) -> dict[int, str]:
        return {i: d for i, d in enumerate(spec.get("shape") or ()) if isinstance(d, str)}

    if entry.dynamo:
        dims: dict[str, Any] = {}
        shapes = tuple({i: dims.setdefault(d, torch.export.Dim(d)) for i, d in axes(s).items()} or None
                       for s in entry.inputs)
        torch.onnx.export(model, args, str(path), dynamo=True, opset_version=entry.opset, input_names=in_names,
                          output_names=out_names, dynamic_shapes=shapes, external_data=False, verbose=False)
    else:
        dynamic = {s["name"]: axes(s) for s in (*entry.inputs, *entry.outputs) if axes(s)}
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=entry.opset, input_names=in_names,
                          output_names=out_names, dynamic_axes=dynamic or None, do_constant_folding=True)
