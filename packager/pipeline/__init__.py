"""A build, scheduled: one manifest -> one verified bundle per target.

The inputs are loaded once (or restored from their record), each candidate's route is chosen
(``routing``, with its fallback) and its steps (``packager.steps``) run once per key (``chain``),
here or in worker processes (``pool``), every artifact is checked on this host (``checks``; an
int8 ONNX one that misses parity is ``explain``-ed node by node), the per-target ``policy`` picks
the candidates, ``document`` assembles bundle.json as the runtime's typed ``Bundle`` and
``output`` writes it; ``reports`` writes the build's own report.
"""
from __future__ import annotations

from ..steps import SUPPORTED_FORMATS, UNSUPPORTED_ROUTES
from .builder import Builder
from .document import tool_versions
from .inputs import Inputs, StaleInputsError
from .output import check_out_dir
from .pool import PARALLEL_CONVERT_MIN_BYTES, PARALLEL_CONVERT_MIN_CORES
from .record import InputsRecord
from .reports import write_reports
from .run import build

__all__ = ["PARALLEL_CONVERT_MIN_BYTES", "PARALLEL_CONVERT_MIN_CORES", "SUPPORTED_FORMATS", "UNSUPPORTED_ROUTES",
           "Builder", "Inputs", "InputsRecord", "StaleInputsError", "build", "check_out_dir", "tool_versions",
           "write_reports"]
