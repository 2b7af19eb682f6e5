"""Keras models written in code, NHWC: a ResNet block net, a UNet-like segmenter, an SSD-like
detector (boxes + class logits), a two-input/two-output net, a masked LSTM text classifier (int32
ids, dynamic sequence axis, Embedding(mask_zero=True)), a GRU over sensor traces and a
depthwise-separable keyword-spotting CNN on log-mel features. Fitted for a few epochs each."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import data
from .spec import Entry, fit_keras, inp, out

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SIZE = 32


def _k() -> Any:
    import keras
    return keras


def resnet_tiny() -> Any:
    k = _k()
    L = k.layers

    def block(x: Any, filters: int, stride: int) -> Any:
        h = L.Conv2D(filters, 3, stride, padding="same", use_bias=False)(x)
        h = L.ReLU()(L.BatchNormalization()(h))
        h = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(h))
        if stride != 1 or x.shape[-1] != filters:
            x = L.BatchNormalization()(L.Conv2D(filters, 1, stride, use_bias=False)(x))
        return L.ReLU()(L.Add()([h, x]))

    i = k.Input((SIZE, SIZE, 3), name="image")
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(i)))
    for f, s in ((16, 1), (32, 2), (64, 2)):
        h = block(h, f, s)
    return k.Model(i, L.Dense(data.CLASSES, name="logits")(L.GlobalAveragePooling2D()(h)))


def unet_tiny() -> Any:
    k = _k()
    L = k.layers

    def conv(x: Any, f: int) -> Any:
        for _ in range(2):
            x = L.ReLU()(L.BatchNormalization()(L.Conv2D(f, 3, padding="same")(x)))
        return x

    i = k.Input((SIZE, SIZE, 3), name="image")
    a = conv(i, 16)
    b = conv(L.MaxPooling2D()(a), 32)
    c = conv(L.MaxPooling2D()(b), 64)
    d = conv(L.Concatenate()([L.Conv2DTranspose(32, 2, 2)(c), b]), 32)
    e = conv(L.Concatenate()([L.UpSampling2D(interpolation="bilinear")(d), a]), 16)
    return k.Model(i, L.Conv2D(3, 1, name="mask_logits")(e))


def ssd_tiny() -> Any:
    k = _k()
    L = k.layers
    i = k.Input((SIZE, SIZE, 3), name="image")
    h = i
    for f in (16, 32, 48):
        h = L.ReLU()(L.BatchNormalization()(L.Conv2D(f, 3, 2, padding="same")(h)))
    boxes = L.Activation("sigmoid")(L.Reshape((32, 4))(L.Conv2D(8, 3, padding="same")(h)))
    logits = L.Reshape((32, 4))(L.Conv2D(8, 3, padding="same")(h))
    return k.Model(i, [L.Identity(name="boxes")(boxes), L.Identity(name="class_logits")(logits)])


def two_in_two_out() -> Any:
    k = _k()
    L = k.layers
    image, meta = k.Input((SIZE, SIZE, 3), name="image"), k.Input((8,), name="meta")
    h = L.Conv2D(16, 3, 2, padding="same", activation="relu")(image)
    h = L.GlobalAveragePooling2D()(L.Conv2D(32, 3, 2, padding="same", activation="relu")(h))
    both = L.Concatenate()([h, L.Dense(32, activation="relu")(meta)])
    return k.Model([image, meta], [L.Dense(data.CLASSES, name="logits")(both), L.Dense(1, name="value")(both)])


def lstm_text() -> Any:
    k = _k()
    L = k.layers
    i = k.Input((None,), dtype="int32", name="input_ids")
    h = L.LSTM(48)(L.Embedding(512, 32, mask_zero=True)(i))
    return k.Model(i, L.Dense(data.CLASSES, name="logits")(h))


def gru_signal() -> Any:
    k = _k()
    L = k.layers
    i = k.Input((24, 6), name="signal")
    h = L.GRU(32)(L.GRU(32, return_sequences=True)(i))
    return k.Model(i, L.Dense(data.CLASSES, name="logits")(h))


def dscnn_kws() -> Any:
    k = _k()
    L = k.layers
    i = k.Input((64, 16, 1), name="mel")
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, (5, 3), (2, 1), padding="same")(i)))
    for _ in range(3):
        h = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(h)))
        h = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 1)(h)))
    return k.Model(i, L.Dense(data.CLASSES, name="logits")(L.GlobalAveragePooling2D()(h)))


# -- data and training ----------------------------------------------------------------------------


def image_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.images(n, seed, size=SIZE, layout="NHWC")
    return {"image": x}, y


def seg_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.masks(n, seed, size=SIZE, layout="NHWC")
    return {"image": x}, y


def det_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets per anchor slot (4x4 cells x 2): every slot regresses the box; the slot of the cell
    holding the object's centre is its class + 1, the others background."""
    x, t = data.boxes(n, seed, size=SIZE, layout="NHWC", classes=3)
    cell = (np.minimum((t["box"][:, 1] * 4).astype(int), 3) * 4 + np.minimum((t["box"][:, 0] * 4).astype(int), 3))
    cls = np.zeros((n, 32), np.int64)
    cls[np.arange(n), cell * 2] = t["cls"] + 1
    return {"image": x}, {"boxes": np.repeat(t["box"][:, None], 32, 1), "class_logits": cls}


def multi_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x, y = data.images(n, seed, size=SIZE, layout="NHWC")
    meta = data.tabular(n, seed + 1)
    value = (meta[:, :3].sum(1, keepdims=True) * 0.5 + 0.25 * y[:, None]).astype(np.float32)
    return {"image": x, "meta": meta}, {"logits": y, "value": value}


def text_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    feeds, y = data.tokens(n, seed, seq=16)
    return {"input_ids": feeds["input_ids"].astype(np.int32)}, y


def signal_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.signals(n, seed)
    return {"signal": x}, y


def mel_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.log_mel(n, seed, mels=16, frames=64)
    return {"mel": np.ascontiguousarray(x.transpose(0, 2, 1)[..., None])}, y


def train_sparse(model: Any, entry: Entry) -> None:
    import keras
    fit_keras(model, entry, keras.losses.SparseCategoricalCrossentropy(from_logits=True), epochs=6)


def train_det(model: Any, entry: Entry) -> None:
    import keras
    fit_keras(model, entry, {"boxes": keras.losses.Huber(),
                             "class_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}, epochs=8)


def train_multi(model: Any, entry: Entry) -> None:
    import keras
    fit_keras(model, entry, {"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                             "value": keras.losses.MeanSquaredError()}, epochs=6)


IMAGE = inp("image", "float32", ["batch", SIZE, SIZE, 3], "NHWC")
LOGITS = (out("logits", True, ["batch", data.CLASSES]),)

ENTRIES = [
    Entry("keras-resnet-tiny", "cnn-in-code", "tensorflow", "Keras ResNet basic blocks with batch norm",
          (IMAGE,), LOGITS, image_data, resnet_tiny, train_sparse),
    Entry("keras-unet-tiny", "cnn-in-code", "tensorflow", "Keras UNet-like segmenter (Conv2DTranspose, bilinear "
          "UpSampling2D, skip concats), NHWC per-pixel logits", (IMAGE,),
          (out("mask_logits", True, ["batch", SIZE, SIZE, 3]),), seg_data, unet_tiny, train_sparse,
          tags=("segmentation",)),
    Entry("keras-ssd-tiny", "detection", "tensorflow", "Keras SSD-like head: 32 anchor slots, sigmoid boxes + "
          "class logits", (IMAGE,),
          (out("boxes", False, ["batch", 32, 4]), out("class_logits", True, ["batch", 32, 4])),
          det_data, ssd_tiny, train_det, tags=("multi-output", "detection")),
    Entry("keras-two-in-two-out", "multi-io", "tensorflow", "Keras image + tabular inputs; logits + regression",
          (IMAGE, inp("meta", "float32", ["batch", 8], "NC")), (out("logits", True, ["batch", 4]),
                                                              out("value", False, ["batch", 1])),
          multi_data, two_in_two_out, train_multi, tags=("multi-input", "multi-output")),
    Entry("keras-lstm-text", "rnn", "tensorflow", "Keras Embedding(mask_zero=True) + LSTM text classifier "
          "(int32 ids, dynamic seq)", (inp("input_ids", "int32", ["batch", "seq"]),), LOGITS, text_data, lstm_text,
          train_sparse, tags=("dynamic-seq", "masking")),
    Entry("keras-gru-signal", "rnn", "tensorflow", "Keras stacked GRU over 24-step sensor windows",
          (inp("signal", "float32", ["batch", 24, 6]),), LOGITS, signal_data, gru_signal, train_sparse),
    Entry("keras-dscnn-kws", "audio", "tensorflow", "Keras depthwise-separable keyword-spotting CNN on 64x16 "
          "log-mel features", (inp("mel", "float32", ["batch", 64, 16, 1], "NHWC"),), LOGITS, mel_data, dscnn_kws,
          train_sparse, tags=("audio",)),
]
