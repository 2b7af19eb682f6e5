"""``edgepack init MODEL``: infer a model's signature and write a starter manifest.

Read in this order; each module does one job:

    command.py       the command: check the options, infer, render, check the text loads, write it;
                     what it prints (``init_manifest``, ``format_summary``)
    infer.py         the model argument: which kind of model it is (file, folder, entry point),
                     handed to one of the three below; what to give instead when it is none
    infer_onnx.py    ONNX: the signature the graph states
    infer_tf.py      TensorFlow/Keras: the signature the SavedModel's serving_default states
    infer_torch.py   torch: the signature seen by running the model, and whether axis 0 is a batch
    examples.py      torch's --example-input values as named arrays
    signature.py     ``Inferred``/``Tensor`` and the naming rules every framework shares
    render.py        the manifest text, every section commented
    placeholders.py  a build or validate of a manifest whose REPLACE-ME placeholder is still there

``packager.cli`` and ``packager.pipeline`` import from ``packager.init`` only: the names below.
"""
from __future__ import annotations

from .command import DEFAULT_TARGET, InitResult, format_summary, init_manifest
from .examples import EXAMPLE_INPUT_HELP, example_feeds
from .infer import infer_model
from .placeholders import check_placeholders
from .render import CALIBRATION_PLACEHOLDER, CALIBRATION_SAMPLES, GOLDEN_SAMPLES, PLACEHOLDER_DIR, data_format, render
from .signature import DEFAULT_BATCH, Inferred, Tensor, model_name

__all__ = [
    "CALIBRATION_PLACEHOLDER", "CALIBRATION_SAMPLES", "DEFAULT_BATCH", "DEFAULT_TARGET", "EXAMPLE_INPUT_HELP",
    "GOLDEN_SAMPLES", "PLACEHOLDER_DIR", "Inferred", "InitResult", "Tensor", "check_placeholders",
    "data_format", "example_feeds", "format_summary", "infer_model", "init_manifest", "model_name", "render",
]
