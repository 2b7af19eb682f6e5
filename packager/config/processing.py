"""The manifest's ``preprocess`` (per input) and ``postprocess`` (per output) sections.

They become the runtime's own ``runtime.processing`` spec, so the bundle records exactly what the
device will run; every rule that involves the input's shape (channels, the size after resize and
crop) is checked here, before anything is built.
"""
from __future__ import annotations

from pathlib import Path

from runtime.errors import BundleFormatError
from runtime.processing import COLORS, DEFAULT_SCALE, INTERPOLATIONS, ImagePreprocess, Postprocess, TextPreprocess
from runtime.signature import TensorSpec

from .fields import Field, ListOf, Node, OneOf, Section, item

_SIZE = ListOf(item(int, "a length in pixels", minimum=1), min_items=2)
PREPROCESS = Section("Preprocess", "how a raw image becomes this input, run the same way at build time and on the "
                                   "device: decode, color, resize, crop, pixel * scale, (x - mean) / std; the "
                                   "layout and dtype are the input's own", (
    Field("decode", str, "what the raw data is", required=True, choices=("image",)),
    Field("color", str, "the colour mode the image is converted to (L: grey, one channel)", default="RGB",
          choices=COLORS),
    Field("resize", OneOf((item(int, "the shorter side's length; the aspect ratio is kept", minimum=1), _SIZE)),
          "[height, width], or one number: the shorter side's length (aspect ratio kept, as torchvision's "
          "Resize(n))"),
    Field("interpolation", str, "the resize filter (Pillow's)", default="bilinear", choices=INTERPOLATIONS),
    Field("crop", _SIZE, "a centre crop [height, width], after the resize"),
    Field("scale", float, "multiplies the 0..255 pixel values (default 1/255, as torchvision's ToTensor)",
          minimum=0.0),
    Field("mean", ListOf(float, min_items=1), "subtracted per channel after scaling"),
    Field("std", ListOf(float, min_items=1), "divides per channel after the mean"),
))
POSTPROCESS = Section("Postprocess", "what is done to this output's scores on the device (and for the "
                                     "end-to-end golden check)", (
    Field("softmax", bool, "softmax over the last axis", default=False),
    Field("top_k", int, "report the k best classes (1: argmax); defaults to 1 when labels are given", minimum=1),
    Field("labels", str, "a text file with one label per line, in class order (relative to the manifest); it is "
                         "carried in the bundle"),
))

TOKENIZER = Section("Tokenizer", "how raw text becomes a text model's id inputs (BERT WordPiece), the same at build "
                                 "time and on the device; the vocabulary travels in the bundle", (
    Field("vocab", str, "the WordPiece vocab.txt, one token per line (relative to the manifest)", required=True),
    Field("lowercase", bool, "lower-case and strip accents first (uncased models)", default=True),
    Field("max_length", int, "tokens per text, [CLS] and [SEP] included: truncated and padded to it (default: the "
                             "ids input's fixed length)", minimum=2),
    Field("ids", str, "the model input taking the token ids", default="input_ids"),
    Field("mask", str, "the model input taking the attention mask (default: attention_mask, if the model has it)"),
    Field("type_ids", str, "the model input taking the token type ids (default: token_type_ids, if the model "
                           "has it)"),
    Field("name", str, "what raw text is called in serve requests and golden data", default="text"),
))


def parse_tokenizer(node: Node, inputs: tuple[TensorSpec, ...], base_dir: Path) -> TextPreprocess:
    """The manifest's ``tokenizer`` section, checked against the inputs it feeds (the vocabulary path
    made absolute; the build copies it into the bundle)."""
    node.mapping(TOKENIZER)
    specs = {s.name: s for s in inputs}
    roles: dict[str, str] = {}
    for role, key, default in (("input_ids", "ids", "input_ids"), ("attention_mask", "mask", "attention_mask"),
                               ("token_type_ids", "type_ids", "token_type_ids")):
        name = node.get(key)
        if name is None and default in specs and key != "ids":
            name = default
        if name is None:
            continue
        if name not in specs:
            raise node.fail(f"the model has no input {name!r} (its inputs: {', '.join(specs)})", key,
                            hint=f"name the input that takes the {role.replace('_', ' ')}")
        roles[role] = name
    shapes = {name: specs[name] for name in roles.values()}
    for name, spec in shapes.items():
        if np_kind(spec.dtype) != "int" or len(spec.shape) != 2:
            raise node.fail(f"input {name!r} is {spec.dtype} {list(spec.shape)}; token inputs are integers of shape "
                            "[batch, length]", hint="declare it e.g. {dtype: int64, shape: [batch, 32]}")
    fixed = {spec.shape[1] for spec in shapes.values() if isinstance(spec.shape[1], int)}
    length = node.get("max_length")
    if len(fixed) > 1:
        raise node.fail(f"the token inputs have different lengths {sorted(fixed)}", hint="give them one length")
    if length is None and not fixed:
        raise node.fail("the token inputs' length is symbolic, so the tokenizer needs max_length", "max_length",
                        hint="e.g. max_length: 128")
    if length is not None and fixed and length not in fixed:
        raise node.fail(f"max_length {length} differs from the inputs' fixed length {fixed.pop()}", "max_length",
                        hint="leave max_length out, or make it the inputs' length")
    if inputs and set(specs) - set(roles.values()):
        left = sorted(set(specs) - set(roles.values()))
        raise node.fail(f"text makes {', '.join(roles.values())}, but the model also takes {', '.join(left)}",
                        hint="name them with ids/mask/type_ids, or feed the model tensors")
    return TextPreprocess(vocab=str(base_dir / node.get("vocab")), length=length or fixed.pop(), inputs=roles,
                          lowercase=node.get("lowercase"), name=node.get("name"))


def np_kind(dtype: str) -> str:
    return "int" if dtype in ("int8", "uint8", "int16", "int32", "int64") else "other"


def _size(node: Node, key: str) -> tuple[int, int] | None:
    value = node.value.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise node.fail(f"expected [height, width], got {value!r}", key, hint=f"e.g. {key}: [224, 224]")
    for i, v in enumerate(value):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise node.child(key).fail(f"expected a positive integer (pixels), got {v!r}", i)
    return (value[0], value[1])


def _floats(node: Node, key: str) -> tuple[float, ...] | None:
    value = node.value.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise node.fail(f"expected a list of numbers (one per channel), got {value!r}", key,
                        hint=f"e.g. {key}: [0.485, 0.456, 0.406]")
    for i, v in enumerate(value):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
            raise node.child(key).fail(f"expected a number, got {v!r}", i)
    return tuple(float(v) for v in value)


def parse_preprocess(node: Node, spec: TensorSpec) -> ImagePreprocess:
    """An input's ``preprocess`` section, checked against the input it feeds."""
    node.mapping(PREPROCESS)
    node.get("decode")  # checked: "image" is the one kind of raw data
    raw_resize = node.value.get("resize")
    resize: tuple[int, int] | int | None
    if isinstance(raw_resize, int) and not isinstance(raw_resize, bool):
        if raw_resize < 1:
            raise node.fail(f"resize must be >= 1, got {raw_resize}", "resize")
        resize = raw_resize
    else:
        resize = _size(node, "resize")
    scale = node.get("scale")
    if scale == 0:
        raise node.fail("scale must be greater than 0", "scale", hint="1/255 = 0.00392156862745098 maps 0..255 to 0..1")
    pre = ImagePreprocess(color=node.get("color"), resize=resize, interpolation=node.get("interpolation"),
                          crop=_size(node, "crop"), scale=DEFAULT_SCALE if scale is None else scale,
                          mean=_floats(node, "mean"), std=_floats(node, "std"))
    try:
        pre.check_channels(node.where())
        _, _, h, w = pre.check_input(spec, node.where())
    except BundleFormatError as exc:
        raise node.fail(exc.message, hint=exc.hint) from None
    fixed = (h, w) if isinstance(h, int) and isinstance(w, int) else None
    final = pre.crop or (pre.resize if isinstance(pre.resize, tuple) else None)
    if fixed is None:
        return pre
    if final is None:
        raise node.fail(f"input {spec.name!r} is {h}x{w}, but nothing here makes every image that size",
                        hint=f"add resize: [{h}, {w}], or resize: {min(h, w)} with crop: [{h}, {w}]")
    if final != fixed:
        raise node.fail(f"images come out {final[0]}x{final[1]} (after resize and crop), input {spec.name!r} "
                        f"is {h}x{w}", "crop" if pre.crop else "resize", hint=f"make it [{h}, {w}]")
    return pre


def parse_postprocess(node: Node, base_dir: Path) -> Postprocess:
    """An output's ``postprocess`` section; the labels path is made absolute (the build reads it,
    copies it into the bundle and records its place there)."""
    node.mapping(POSTPROCESS)
    labels = node.get("labels")
    path = base_dir / labels if labels is not None else None
    top_k = node.get("top_k")
    return Postprocess(softmax=node.get("softmax"), top_k=top_k if top_k is not None or path is None else 1,
                       labels=str(path) if path else None)
