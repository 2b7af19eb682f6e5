"""Pre- and post-processing as declared in the manifest and recorded in bundle.json: images into
an input, text into a text model's id inputs (``tokenizer``), scores into top-k labels.

The resize, normalisation and layout a model was trained with are the most common cause of
"right on the host, wrong on the device" that no conversion check sees, because users redo them by
hand on the device. So they are data in the bundle, run by one implementation
(``runtime.prepost``) both at build time (making golden tensors from raw images) and on the device
(serving, ``run --input cat.jpg``, and the end-to-end golden check). This module holds only the
typed spec, both ways (``from_dict(to_dict(x)) == x``), like ``bundle_json``.

Image pre-processing runs in a fixed order, the one torchvision pipelines use: decode (EXIF
orientation applied), colour mode, resize, centre crop, ``pixel * scale``, ``(x - mean) / std``,
layout, dtype.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import BundleFormatError
from .integrity import check_relpath
from .signature import Signature, TensorSpec

COLORS = ("L", "RGB", "BGR")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
IMAGE_LAYOUTS = ("NCHW", "NHWC")
DEFAULT_SCALE = 1.0 / 255.0


def _pair(value: Any, key: str, where: str, *, single: bool) -> tuple[int, int] | int | None:
    """[height, width] (or, where ``single``, one int: the shorter side) as read from JSON."""
    if value is None:
        return None
    if single and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        return (int(value[0]), int(value[1]))
    raise BundleFormatError(f"{key!r} must be [height, width]" + (" or the shorter side's length" if single else "")
                            + f", got {value!r}", where=where)


def _floats(value: Any, key: str, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if (isinstance(value, (list, tuple)) and value
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        return tuple(float(v) for v in value)
    raise BundleFormatError(f"{key!r} must be a list of numbers, one per channel, got {value!r}", where=where)


@dataclass(frozen=True)
class ImagePreprocess:
    """How raw image bytes become one input tensor."""

    color: str = "RGB"
    resize: tuple[int, int] | int | None = None  # (height, width), or the shorter side (aspect kept)
    interpolation: str = "bilinear"
    crop: tuple[int, int] | None = None  # centre crop (height, width), after the resize
    scale: float = DEFAULT_SCALE  # applied to 0..255 pixel values
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3

    def to_dict(self) -> dict[str, Any]:
        return {"decode": "image", "color": self.color,
                "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
                "interpolation": self.interpolation, "crop": list(self.crop) if self.crop else None,
                "scale": self.scale, "mean": list(self.mean) if self.mean else None,
                "std": list(self.std) if self.std else None}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> ImagePreprocess:
        if not isinstance(data, dict) or data.get("decode") != "image":
            raise BundleFormatError("pre-processing must be an object with decode: image", where=where,
                                    hint="rebuild the bundle with a matching edgepack version")
        color, interp, scale = data.get("color", "RGB"), data.get("interpolation", "bilinear"), data.get("scale")
        if color not in COLORS:
            raise BundleFormatError(f"color {color!r} is not one of {', '.join(COLORS)}", where=where)
        if interp not in INTERPOLATIONS:
            raise BundleFormatError(f"interpolation {interp!r} is not one of {', '.join(INTERPOLATIONS)}",
                                    where=where)
        if scale is None:
            scale = DEFAULT_SCALE
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
            raise BundleFormatError(f"scale must be a positive number, got {scale!r}", where=where)
        crop = _pair(data.get("crop"), "crop", where, single=False)
        assert crop is None or isinstance(crop, tuple)
        spec = cls(color=color, resize=_pair(data.get("resize"), "resize", where, single=True),
                   interpolation=interp, crop=crop, scale=float(scale),
                   mean=_floats(data.get("mean"), "mean", where), std=_floats(data.get("std"), "std", where))
        spec.check_channels(where)
        return spec

    def check_channels(self, where: str) -> None:
        """mean/std give one value per channel (or one for all), and std is never 0."""
        for key, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, self.channels):
                raise BundleFormatError(f"{key} has {len(values)} values; color {self.color} has "
                                        f"{self.channels} channel(s)", where=where,
                                        hint=f"give one value per channel ({self.channels}) or one for all")
        if self.std is not None and any(v == 0 for v in self.std):
            raise BundleFormatError("std holds 0 (division by zero)", where=where)

    def check_input(self, spec: TensorSpec, where: str) -> tuple[str, int, int | str, int | str]:
        """(layout, channels axis, height, width) of the input this image feeds; its shape and
        layout must fit an image of this colour mode."""
        layout = spec.layout
        if layout not in IMAGE_LAYOUTS or len(spec.shape) != 4:
            raise BundleFormatError(f"input {spec.name!r} is fed from an image, so it needs a 4-axis shape and "
                                    f"layout NCHW or NHWC (got {list(spec.shape)}, layout {layout})", where=where,
                                    hint="declare e.g. shape: [batch, 3, 224, 224] and layout: NCHW")
        axis = 1 if layout == "NCHW" else 3
        channels = spec.shape[axis]
        if channels != self.channels:
            raise BundleFormatError(f"input {spec.name!r} has {channels} channel(s) (layout {layout}), but color "
                                    f"{self.color} gives {self.channels}", where=where,
                                    hint="use color: L for one channel, RGB or BGR for three")
        h, w = (spec.shape[2], spec.shape[3]) if layout == "NCHW" else (spec.shape[1], spec.shape[2])
        return layout, axis, h, w


TOKEN_ROLES = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class TextPreprocess:
    """How raw text becomes a text model's id inputs: WordPiece with a vocabulary the bundle carries."""

    vocab: str  # the vocab.txt (bundle-relative in bundle.json), one token per line
    length: int  # the sequence length: ids are truncated and padded to it
    inputs: dict[str, str]  # role (input_ids, attention_mask, token_type_ids) -> the model's input name
    lowercase: bool = True
    name: str = "text"  # what clients call the raw text (a BYTES input of that name)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "wordpiece", "vocab": self.vocab, "length": self.length, "inputs": dict(self.inputs),
                "lowercase": self.lowercase, "name": self.name}

    @classmethod
    def from_dict(cls, data: Any, *, where: str, signature: Signature) -> TextPreprocess:
        if not isinstance(data, dict) or data.get("kind") != "wordpiece":
            raise BundleFormatError("the tokenizer must be an object with kind: wordpiece", where=where,
                                    hint="rebuild the bundle with a matching edgepack version")
        vocab, length, inputs = data.get("vocab"), data.get("length"), data.get("inputs")
        lowercase, name = data.get("lowercase", True), data.get("name", "text")
        if not isinstance(vocab, str):
            raise BundleFormatError("the tokenizer's vocab must be a file name", where=where)
        check_relpath(vocab, f"{where}.vocab")
        if not isinstance(length, int) or isinstance(length, bool) or length < 2:
            raise BundleFormatError(f"the tokenizer's length must be an integer >= 2, got {length!r}", where=where)
        names = {s.name for s in signature.inputs}
        if (not isinstance(inputs, dict) or "input_ids" not in inputs or set(inputs) - set(TOKEN_ROLES)
                or not all(v in names for v in inputs.values())):
            raise BundleFormatError(f"the tokenizer's inputs must map {', '.join(TOKEN_ROLES)} (input_ids at "
                                    f"least) to the model's inputs {sorted(names)}, got {inputs!r}", where=where)
        if not isinstance(lowercase, bool) or not isinstance(name, str) or not name:
            raise BundleFormatError("the tokenizer's lowercase must be true/false and its name a string", where=where)
        return cls(vocab=vocab, length=length, inputs=dict(inputs), lowercase=lowercase, name=name)


@dataclass(frozen=True)
class Postprocess:
    """What is done to one output's scores: softmax over the last axis, and top-k with labels."""

    softmax: bool = False
    top_k: int | None = None
    labels: str | None = None  # the labels file (bundle-relative in bundle.json), one label per line

    def to_dict(self) -> dict[str, Any]:
        return {"softmax": self.softmax, "top_k": self.top_k, "labels": self.labels}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Postprocess:
        if not isinstance(data, dict):
            raise BundleFormatError("post-processing must be an object", where=where)
        softmax, top_k, labels = data.get("softmax", False), data.get("top_k"), data.get("labels")
        if not isinstance(softmax, bool):
            raise BundleFormatError("softmax must be true or false", where=where)
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise BundleFormatError(f"top_k must be a positive integer, got {top_k!r}", where=where)
        if labels is not None:
            if not isinstance(labels, str):
                raise BundleFormatError("labels must be a file name", where=where)
            check_relpath(labels, f"{where}.labels")
        return cls(softmax=softmax, top_k=top_k, labels=labels)


@dataclass(frozen=True)
class Processing:
    """Pre-processing per input fed from raw data, post-processing per output."""

    inputs: dict[str, ImagePreprocess] = field(default_factory=dict)
    outputs: dict[str, Postprocess] = field(default_factory=dict)
    text: TextPreprocess | None = None

    def __bool__(self) -> bool:
        return bool(self.inputs or self.outputs or self.text)

    @property
    def raw_inputs(self) -> dict[str, str]:
        """What clients may send raw: name -> "image" (an input fed from images) or "text"."""
        out = {name: "image" for name in self.inputs}
        if self.text is not None:
            out[self.text.name] = "text"
        return out

    def files(self) -> list[str]:
        """Bundle files the processing reads (labels, the vocabulary)."""
        return [p.labels for p in self.outputs.values() if p.labels] + ([self.text.vocab] if self.text else [])

    def to_dict(self) -> dict[str, Any]:
        out = {"inputs": {k: v.to_dict() for k, v in self.inputs.items()},
               "outputs": {k: v.to_dict() for k, v in self.outputs.items()}}
        return {**out, "text": self.text.to_dict()} if self.text is not None else out

    @classmethod
    def from_dict(cls, data: Any, *, where: str, signature: Signature) -> Processing:
        if not isinstance(data, dict) or not all(isinstance(data.get(k, {}), dict) for k in ("inputs", "outputs")):
            raise BundleFormatError("'processing' must be {\"inputs\": {...}, \"outputs\": {...}}", where=where)
        ins = {s.name: s for s in signature.inputs}
        outs = {s.name for s in signature.outputs}
        inputs = {}
        for name, raw in (data.get("inputs") or {}).items():
            if name not in ins:
                raise BundleFormatError(f"processing names input {name!r}, which the signature lacks", where=where)
            inputs[name] = ImagePreprocess.from_dict(raw, where=f"{where}.inputs.{name}")
            inputs[name].check_input(ins[name], f"{where}.inputs.{name}")
        outputs = {}
        for name, raw in (data.get("outputs") or {}).items():
            if name not in outs:
                raise BundleFormatError(f"processing names output {name!r}, which the signature lacks", where=where)
            outputs[name] = Postprocess.from_dict(raw, where=f"{where}.outputs.{name}")
        text = data.get("text")
        return cls(inputs=inputs, outputs=outputs, text=None if text is None else TextPreprocess.from_dict(
            text, where=f"{where}.text", signature=signature))
