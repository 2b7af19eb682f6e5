"""keras.applications architectures with ``weights=None`` (nothing downloaded) at small input sizes
and a 4-class head, NHWC: MobileNetV2 with a softmax head and with logits
(``classifier_activation=None``), EfficientNetB0 (logits; its own Rescaling/Normalization layers
take [0, 255] pixels), ResNet50 (softmax) and MobileNetV3Small (logits, hard-swish). Each is
fitted for a couple of epochs on smooth images, so batch-norm statistics match the data."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from . import data
from .spec import Entry, fit_keras, inp, out

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def app(factory: str, size: int, head: str | None, out_name: str, **kwargs: Any) -> Callable[[], Any]:
    """keras.applications.<factory>(weights=None, classes=4, classifier_activation=head) wrapped
    in a model with an input named ``image`` and an output named ``out_name``."""
    def make() -> Any:
        import keras
        inputs = keras.Input(shape=(size, size, 3), name="image")
        base = getattr(keras.applications, factory)(weights=None, input_shape=(size, size, 3), include_top=True,
                                                   classes=data.CLASSES, classifier_activation=head, **kwargs)
        return keras.Model(inputs, keras.layers.Identity(name=out_name)(base(inputs)))
    make.__name__ = factory
    return make


def pixels(size: int, scale: str) -> Callable[[int, int], tuple[dict[str, np.ndarray], np.ndarray]]:
    def fn(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        x, y = data.images(n, seed, size=size, layout="NHWC", scale=scale)
        return {"image": x}, y
    return fn


def trainer(from_logits: bool, epochs: int = 4, n: int = 256) -> Callable[[Any, Entry], None]:
    """A few epochs with batch-norm momentum 0.5: 32 steps leave moving statistics that match the
    data (at keras.applications' 0.999 they would still be the initial 0/1, and inference-mode
    outputs near constant)."""
    def train(model: Any, entry: Entry) -> None:
        import keras
        fit_keras(model, entry, keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  epochs=epochs, n=n, lr=2e-3, bn_momentum=0.5)
    return train


def _image(size: int) -> tuple[dict[str, Any], ...]:
    return (inp("image", "float32", ["batch", size, size, 3], "NHWC"),)


def _entry(name: str, arch: str, factory: str, size: int, head: str | None, scale: str, **kw: Any) -> Entry:
    out_name = "probs" if head == "softmax" else "logits"
    return Entry(name, "keras-applications", "tensorflow", arch, _image(size),
                 (out(out_name, True, ["batch", data.CLASSES]),), pixels(size, scale),
                 app(factory, size, head, out_name, **kw), trainer(head is None),
                 tags=("softmax-head",) if head == "softmax" else ("logits-head",))


ENTRIES = [
    _entry("keras-mobilenetv2", "keras.applications.MobileNetV2 (alpha 0.35, 96x96), softmax head",
           "MobileNetV2", 96, "softmax", "signed", alpha=0.35),
    _entry("keras-mobilenetv2-logits", "keras.applications.MobileNetV2 (alpha 0.35, 96x96), "
           "classifier_activation=None", "MobileNetV2", 96, None, "signed", alpha=0.35),
    _entry("keras-efficientnetb0", "keras.applications.EfficientNetB0 (64x64, built-in rescaling), logits",
           "EfficientNetB0", 64, None, "pixel"),
    _entry("keras-resnet50", "keras.applications.ResNet50 (64x64), softmax head", "ResNet50", 64, "softmax",
           "signed"),
    _entry("keras-mobilenetv3small", "keras.applications.MobileNetV3Small (64x64, hard-swish, built-in "
           "rescaling), logits", "MobileNetV3Small", 64, None, "pixel"),
]
