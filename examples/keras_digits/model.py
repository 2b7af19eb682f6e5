"""A small Keras CNN trained on scikit-learn's digits in NHWC layout; the manifest's entry point."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "artifacts" / "digits_keras.keras"
sys.path.insert(0, str(HERE.parent / "digits"))


def build_model():  # type: ignore[no-untyped-def]
    """The trained Keras model (manifest entry point); train.py makes the weights."""
    import keras
    if not WEIGHTS.is_file():
        raise FileNotFoundError(f"no trained model at {WEIGHTS}; run: python examples/keras_digits/train.py")
    return keras.models.load_model(WEIGHTS, compile=False)


def nhwc(images):  # type: ignore[no-untyped-def]
    """(n, 1, 8, 8) NCHW images -> (n, 8, 8, 1) NHWC, as TensorFlow models take them."""
    return images.transpose(0, 2, 3, 1).copy()


def calibration(batch_size: int = 32):  # type: ignore[no-untyped-def]
    """Real training images, NHWC."""
    from data import train_split
    x, _ = train_split()
    x = nhwc(x)
    for start in range(0, len(x), batch_size):
        yield {"image": x[start:start + batch_size]}


def test_split():  # type: ignore[no-untyped-def]
    """Held-out images (NHWC) and labels."""
    from data import test_split as nchw_test
    feeds, labels = nchw_test()
    return {"image": nhwc(feeds["image"])}, labels
