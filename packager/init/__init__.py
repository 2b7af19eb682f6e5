"""``edgepack init MODEL``: infer a model's signature and write a starter manifest.

The public names of the subpackage are re-exported here; ``packager.cli`` and ``packager.pipeline``
import from ``packager.init`` only.
"""
from __future__ import annotations

from .command import (
    CALIBRATION_PLACEHOLDER,
    CALIBRATION_SAMPLES,
    DEFAULT_BATCH,
    DEFAULT_TARGET,
    EXAMPLE_INPUT_HELP,
    GOLDEN_SAMPLES,
    PLACEHOLDER_DIR,
    Inferred,
    InitResult,
    Tensor,
    check_placeholders,
    data_format,
    example_feeds,
    format_summary,
    infer_model,
    init_manifest,
    model_name,
    render,
)

__all__ = [
    "CALIBRATION_PLACEHOLDER", "CALIBRATION_SAMPLES", "DEFAULT_BATCH", "DEFAULT_TARGET", "EXAMPLE_INPUT_HELP",
    "GOLDEN_SAMPLES", "PLACEHOLDER_DIR", "Inferred", "InitResult", "Tensor", "check_placeholders",
    "data_format", "example_feeds", "format_summary", "infer_model", "init_manifest", "model_name", "render",
]
