"""Run a bundle's pre/post-processing: image bytes -> input tensor, text -> token ids, scores ->
top-k labels.

The one implementation: the packager makes golden tensors from raw images with it, and the device
uses it to serve, for ``run --input cat.jpg`` and for the end-to-end golden check, so what the
model was checked on at build time is what it gets on the device. Pillow (the ``image`` extra) is
imported only when an image is decoded.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bundle import Bundle
from .errors import BundleFormatError, FeedError
from .processing import ImagePreprocess, Postprocess, Processing, TextPreprocess
from .signature import TensorSpec
from .tokenizer import WordPiece

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
PILLOW_HINT = "install Pillow on this device: pip install pillow (or the runtime wheel's 'image' extra)"


def _pillow() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:
        raise FeedError("decoding images needs Pillow, which is not installed", hint=PILLOW_HINT) from exc
    return Image, ImageOps


def _resized(img: Any, pre: ImagePreprocess, resample: int) -> Any:
    if pre.resize is None:
        return img
    w, h = img.size
    if isinstance(pre.resize, int):  # the shorter side becomes resize, the aspect ratio is kept (torchvision's rule)
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(pre.resize * long / short)
        size = (pre.resize, new_long) if w <= h else (new_long, pre.resize)
    else:
        size = (pre.resize[1], pre.resize[0])
    return img if size == (w, h) else img.resize(size, resample=resample)


def _cropped(img: Any, pre: ImagePreprocess, where: str) -> Any:
    if pre.crop is None:
        return img
    ch, cw = pre.crop
    w, h = img.size
    if ch > h or cw > w:
        raise FeedError(f"the image is {h}x{w} after resize, smaller than the {ch}x{cw} centre crop", where=where,
                        hint="send a larger image, or declare a resize that makes it at least the crop's size")
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def image_tensor(data: bytes, pre: ImagePreprocess, spec: TensorSpec, *, where: str) -> np.ndarray:
    """One encoded image (JPEG, PNG, ...) as a batch-of-one feed for input ``spec``."""
    layout, _, want_h, want_w = pre.check_input(spec, where)
    image, image_ops = _pillow()
    try:
        with image.open(io.BytesIO(data)) as opened:
            img = image_ops.exif_transpose(opened)  # camera photos: the orientation they are shown in
            img = img.convert("L" if pre.color == "L" else "RGB")
    except (OSError, SyntaxError, ValueError, image.DecompressionBombError) as exc:
        why = "not an image format Pillow reads" if isinstance(exc, image.UnidentifiedImageError) else str(exc)
        raise FeedError(f"cannot decode the image ({len(data)} bytes): {why}", where=where,
                        hint="send an image file (JPEG, PNG, BMP, WebP)") from None
    img = _cropped(_resized(img, pre, getattr(image.Resampling, pre.interpolation.upper())), pre, where)
    w, h = img.size
    for axis, want, got in (("height", want_h, h), ("width", want_w, w)):
        if isinstance(want, int) and want != got:
            raise FeedError(f"the image is {h}x{w} after pre-processing; input {spec.name!r} needs {axis} {want}",
                            where=where, hint="the bundle's resize/crop should produce the input's size: "
                                              "rebuild it with a matching resize or crop")
    pixels = np.asarray(img, dtype=np.float32)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else (pixels[:, :, ::-1] if pre.color == "BGR" else pixels)
    arr: np.ndarray = pixels * np.float32(pre.scale)
    if pre.mean is not None:
        arr = arr - np.asarray(pre.mean, dtype=np.float32)
    if pre.std is not None:
        arr = arr / np.asarray(pre.std, dtype=np.float32)
    if layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    dtype = np.dtype(spec.dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        arr = np.clip(np.rint(arr), info.min, info.max)
    return np.ascontiguousarray(arr[None].astype(dtype))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 then back (stable for large logits)."""
    z = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Ranked:
    """One class in a top-k list."""

    index: int
    label: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "score": self.score}


class Processor:
    """A bundle's processing, ready to run: labels read once and checked against the outputs."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.spec: Processing = bundle.processing or Processing()
        self._inputs = {s.name: s for s in bundle.signature.inputs}
        self.labels: dict[str, list[str]] = {}
        for s in bundle.signature.outputs:
            post = self.spec.outputs.get(s.name)
            if post is not None and post.labels:
                self.labels[s.name] = read_labels(bundle, post, s)
        self.wordpiece: WordPiece | None = None
        if self.spec.text is not None:
            self.wordpiece = read_vocab(bundle, self.spec.text)

    @property
    def raw_inputs(self) -> dict[str, str]:
        """What may come raw: name -> "image" or "text"."""
        return self.spec.raw_inputs

    def feeds(self, raw: Mapping[str, Sequence[bytes]]) -> dict[str, np.ndarray]:
        """Feeds from raw data: encoded images per input, or UTF-8 texts for the tokenizer (several:
        stacked along the batch axis)."""
        out: dict[str, np.ndarray] = {}
        for name, datas in raw.items():
            kind = self.spec.raw_inputs.get(name)
            if kind is None:
                takers = ", ".join(self.spec.raw_inputs) or "nothing in this bundle"
                raise FeedError(f"{name!r} takes a tensor, not raw data", where=name, hint=f"raw data goes to {takers}")
            if not datas:
                raise FeedError(f"nothing given for {name!r}", where=name)
            if kind == "text":
                out.update(self.text_feeds([_utf8(d, f"{name}[{i}]") for i, d in enumerate(datas)]))
                continue
            pre = self.spec.inputs[name]
            tensors = [image_tensor(d, pre, self._inputs[name], where=f"{name}[{i}]") for i, d in enumerate(datas)]
            out[name] = tensors[0] if len(tensors) == 1 else np.concatenate(tensors)
        return out

    def text_feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The model's id inputs for ``texts`` (one row each), in the dtypes the signature says."""
        text = self.spec.text
        assert text is not None and self.wordpiece is not None
        encoded = self.wordpiece.encode(texts, text.length)
        return {name: encoded[role].astype(self._inputs[name].dtype) for role, name in text.inputs.items()}

    def post(self, name: str, values: np.ndarray) -> tuple[np.ndarray, list[list[Ranked]] | None]:
        """(scores after softmax if declared, the top-k per sample if declared) of one output."""
        spec: Postprocess | None = self.spec.outputs.get(name)
        if spec is None:
            return values, None
        scores = softmax(values) if spec.softmax else values
        return scores, (self.ranked(name, scores, spec.top_k) if spec.top_k is not None else None)

    def top_k(self, name: str, values: np.ndarray, k: int) -> list[list[Ranked]]:
        """The ``k`` best classes per sample of an output (softmax first where the bundle declares it)."""
        spec = self.spec.outputs.get(name)
        return self.ranked(name, softmax(values) if spec is not None and spec.softmax else values, k)

    def ranked(self, name: str, scores: np.ndarray, k: int) -> list[list[Ranked]]:
        rows = scores.reshape(-1, scores.shape[-1]) if scores.ndim else scores.reshape(1, 1)
        k = min(k, rows.shape[-1])
        labels = self.labels.get(name)
        out = []
        for row in rows:
            best = np.argsort(-row, kind="stable")[:k]
            out.append([Ranked(int(i), labels[int(i)] if labels else None, float(row[i])) for i in best])
        return out

    def postprocess(self, outputs: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        """Every output with post-processing: {"scores": array, "top_k": [[Ranked, ...] per sample]}."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.spec.outputs:
            scores, ranked = self.post(name, outputs[name])
            out[name] = {"scores": scores, "top_k": ranked}
        return out


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedError(f"the text is not UTF-8 ({exc.reason} at byte {exc.start})", where=where,
                        hint="send text encoded as UTF-8") from None


def read_vocab(bundle: Bundle, text: TextPreprocess) -> WordPiece:
    """The bundle's WordPiece vocabulary."""
    path = bundle.path(text.vocab)
    try:
        return WordPiece.from_lines(path.read_text(encoding="utf-8").splitlines(), lowercase=text.lowercase)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleFormatError(f"cannot read the tokenizer's vocabulary: {exc}", where=str(path),
                                hint="rebuild the bundle; the vocabulary is part of it") from None


def read_labels(bundle: Bundle, post: Postprocess, spec: TensorSpec) -> list[str]:
    """The labels file of an output: one label per line; as many as the output has classes."""
    assert post.labels is not None
    path = bundle.path(post.labels)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleFormatError(f"cannot read the labels of output {spec.name!r}: {exc}", where=str(path),
                                hint="rebuild the bundle; the labels file is part of it") from None
    labels = check_labels(lines, spec, str(path))
    return labels


def check_labels(lines: list[str], spec: TensorSpec, where: str) -> list[str]:
    """Labels without trailing blank lines; their count must be the output's last axis."""
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    labels = [line.strip() for line in lines]
    classes = spec.shape[-1] if spec.shape else None
    if isinstance(classes, int) and len(labels) != classes:
        raise BundleFormatError(f"{len(labels)} labels for output {spec.name!r}, which has {classes} classes",
                                where=where, hint="write one label per line, one line per class, in class order")
    return labels
