"""Train the Keras digits CNN (seconds on a CPU) and save it as a .keras file.

    python examples/keras_digits/train.py [--epochs 30] [--force]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import WEIGHTS, nhwc, test_split  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if WEIGHTS.is_file() and not args.force:
        print(f"model already at {WEIGHTS} (use --force to retrain)")
        return 0
    import keras
    import numpy as np
    from data import train_split
    keras.utils.set_random_seed(0)
    x, y = train_split()
    inp = keras.Input(shape=(8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(h))
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(nhwc(x), y, epochs=args.epochs, batch_size=64, verbose=0)
    feeds, labels = test_split()
    acc = float(np.mean(model.predict(feeds["image"], verbose=0).argmax(1) == labels))
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    model.save(WEIGHTS)
    print(f"trained Keras digits CNN: test accuracy {acc:.4f}; saved to {WEIGHTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
