"""Models the benchmarks build in code (no download): a tiny MLP and MobileNetV2, both Keras.

Manifest entry points (benchmarks/manifests/*.yaml). Weights are seeded random: the benchmarks
measure time, not accuracy; random calibration is declared in the manifests.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def mlp():  # type: ignore[no-untyped-def]
    """x float32[batch, 16] -> logits float32[batch, 10]: two Dense layers (~900 parameters)."""
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(16,), name="x")
    h = keras.layers.Dense(32, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(h))


def mobilenetv2():  # type: ignore[no-untyped-def]
    """keras.applications.MobileNetV2 architecture (3.5M parameters), random weights, NHWC."""
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(224, 224, 3), name="image")
    base = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
                                          include_top=True, classes=1000)
    return keras.Model(inp, keras.layers.Identity(name="logits")(base(inp)))


def relu16mb():  # type: ignore[no-untyped-def]
    """x float32[batch, 1024, 4096] -> y = relu(x): one op with a 16 MiB output per sample (the
    run_into measurement: time goes to moving the output, not computing it)."""
    import keras
    inp = keras.Input(shape=(1024, 4096), name="x")
    return keras.Model(inp, keras.layers.ReLU(name="y")(inp))
