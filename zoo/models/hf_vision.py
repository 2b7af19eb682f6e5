"""Hugging Face transformers vision models from small configs (nothing downloaded): ViT, MobileNetV2,
ResNet and ConvNeXt image classifiers and a SegFormer semantic segmenter, all NCHW
``pixel_values`` normalised to [-1, 1] as their image processors give them. Trained for a few
seconds on smooth images made in code."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import data
from .hf_text import _Logits
from .spec import Entry, ce, fit_torch, inp, out

PIX = ("pixel_values",)


def vit() -> Any:
    import transformers as t
    cfg = t.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=128, num_labels=data.CLASSES)
    return _Logits.wrap(t.ViTForImageClassification(cfg), PIX)


def mobilenetv2() -> Any:
    import transformers as t
    cfg = t.MobileNetV2Config(image_size=64, depth_multiplier=0.35, num_labels=data.CLASSES)
    return _Logits.wrap(t.MobileNetV2ForImageClassification(cfg), PIX)


def resnet() -> Any:
    import transformers as t
    cfg = t.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                         num_labels=data.CLASSES)
    return _Logits.wrap(t.ResNetForImageClassification(cfg), PIX)


def convnext() -> Any:
    import transformers as t
    cfg = t.ConvNextConfig(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], image_size=64,
                           num_labels=data.CLASSES)
    return _Logits.wrap(t.ConvNextForImageClassification(cfg), PIX)


def segformer() -> Any:
    import transformers as t
    cfg = t.SegformerConfig(num_channels=3, depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128],
                            num_attention_heads=[1, 2, 2, 4], decoder_hidden_size=64, num_labels=3)
    return _Logits.wrap(t.SegformerForSemanticSegmentation(cfg), PIX)


def pixels(size: int):  # type: ignore[no-untyped-def]
    def fn(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        x, y = data.images(n, seed, size=size, scale="signed")
        return {"pixel_values": x}, y
    return fn


def seg_pixels(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.masks(n, seed, size=64)
    return {"pixel_values": x * 2 - 1}, np.ascontiguousarray(y[:, 2::4, 2::4])  # logits are at 1/4 size


def train_cls(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, ce, steps=80, lr=2e-3)


def train_vit(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, ce, steps=240, lr=2e-3)  # patches and attention learn slower than convs


def train_seg(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, lambda o, y: ce(o.permute(0, 2, 3, 1), y), steps=80, lr=3e-3)


def _img(size: int) -> tuple[dict[str, Any], ...]:
    return (inp("pixel_values", "float32", ["batch", 3, size, size], "NCHW"),)


LOGITS = (out("logits", True, ["batch", data.CLASSES]),)

ENTRIES = [
    Entry("vit-cls", "transformers-vision", "torch", "ViTForImageClassification (32x32, patch 8, 2 layers)",
          _img(32), LOGITS, pixels(32), vit, train_vit, tags=("transformer",)),
    Entry("mobilenetv2-hf", "transformers-vision", "torch", "MobileNetV2ForImageClassification (64x64, depth 0.35)",
          _img(64), LOGITS, pixels(64), mobilenetv2, train_cls),
    Entry("resnet-hf", "transformers-vision", "torch", "ResNetForImageClassification (4 stages, 1 block each)",
          _img(64), LOGITS, pixels(64), resnet, train_cls),
    Entry("convnext-hf", "transformers-vision", "torch", "ConvNextForImageClassification (4 stages; LayerNorm, GELU)",
          _img(64), LOGITS, pixels(64), convnext, train_cls),
    Entry("segformer-hf", "transformers-vision", "torch", "SegformerForSemanticSegmentation (MiT, 4 stages; "
          "logits at 1/4 size)", _img(64), (out("logits", False, ["batch", 3, 16, 16]),), seg_pixels, segformer,
          train_seg, tags=("transformer", "segmentation")),
]
