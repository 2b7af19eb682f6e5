"""edgepack device runtime: load a bundle, pick the candidate that works here, run, verify.

Importing this package needs only the standard library and numpy; backends import their
framework (onnxruntime, ...) only when a candidate is tried.
"""
from __future__ import annotations

from .bundle import Bundle, open_bundle
from .compare import OutputReport, ParityReport, Tolerance, compare
from .errors import (ArchiveError, BackendError, BundleFormatError, FeedError, IntegrityError,
                     NoCandidateError, RuntimeBundleError, SignatureError, UnknownCandidateError)
from .model import Model, load
from .signature import TensorSpec
from .signing import verify_signature

__version__ = "0.1.0"

__all__ = ["ArchiveError", "BackendError", "Bundle", "BundleFormatError", "FeedError",
           "IntegrityError", "Model", "NoCandidateError", "OutputReport", "ParityReport",
           "RuntimeBundleError", "SignatureError", "TensorSpec", "Tolerance",
           "UnknownCandidateError", "__version__", "compare", "load", "open_bundle",
           "verify_signature"]
