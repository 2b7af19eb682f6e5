"""TensorFlow, imported once, and Keras -> SavedModel, the one way: ``edgepack init``, the
TensorFlow source and the conversions import TensorFlow here, and read a ``.keras`` file or a
Keras model through a temporary SavedModel's ``serving_default`` signature, with the same safety
(``safe_mode``: a Lambda layer's code is refused, never run) and messages."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import SourceError, not_installed
from ..quiet import quiet


def import_tf() -> Any:
    """TensorFlow, imported quietly; a clear error naming the extra when it is missing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet("tensorflow", "absl"):
            import tensorflow as tf
    except ImportError:
        raise not_installed("a tensorflow source", "TensorFlow", "tensorflow") from None
    return tf


def load_keras_file(path: Path, where: str) -> Any:
    """A ``.keras`` file as a Keras model (never compiled, never running code it carries)."""
    import keras
    try:
        with quiet("tensorflow", "absl"):
            return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # any load failure is the file's
        raise SourceError(f"cannot load {path.name}: {exc}", where=where,
                          hint="check the file loads with keras.models.load_model(path, safe_mode=True)") from None


def export_saved_model(keras_model: Any, folder: Path, where: str) -> None:
    """Write ``keras_model`` as a SavedModel with a serving signature into ``folder``."""
    try:
        with quiet("tensorflow", "absl"):
            keras_model.export(str(folder), format="tf_saved_model", verbose=False)
    except Exception as exc:
        raise SourceError(f"exporting the Keras model to a SavedModel failed: {exc}", where=where,
                          hint="the model must be built (called once or given an Input) to "
                               "have a signature") from None


def serving_signature(saved: Path, where: str) -> tuple[Any, Any]:
    """(the loaded SavedModel, its ``serving_default`` signature): keep the first alive."""
    tf = import_tf()
    try:
        with quiet("tensorflow", "absl"):
            loaded = tf.saved_model.load(str(saved))
        return loaded, loaded.signatures["serving_default"]
    except Exception as exc:
        raise SourceError(f"cannot load the SavedModel's serving_default signature: {exc}", where=where,
                          hint="export the model with a serving signature") from None
