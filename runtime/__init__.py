"""edgepack device runtime: load a bundle, pick the candidate that works here, run, verify.

Importing this package needs only the standard library and numpy; backends import their
framework (onnxruntime, ...) only when a candidate is tried. Run from inside a bundle, it first
makes sure that only the bundle's listed source runs (``runtime.code_guard``).
"""
from __future__ import annotations

from .code_cache import load_code_guard as _load_code_guard

_load_code_guard(__name__, __file__).protect(__name__, __file__)

# ruff: noqa: E402 (the imports below go through the guard's checked finder)
from .bundle import Bundle, open_bundle
from .compare import OutputReport, ParityReport, Tolerance, compare
from .errors import (
                     ArchiveError,
                     BackendError,
                     BundleFormatError,
                     FeedError,
                     FileIOError,
                     IntegrityError,
                     NoCandidateError,
                     OutputError,
                     RegistryError,
                     RuntimeBundleError,
                     SignatureError,
                     UnknownCandidateError,
)
from .finite import check_finite
from .model import Model, load
from .signature import TensorSpec
from .signing import verify_signature

__version__ = "0.1.0"


def pull(reference: str, dest_dir: str = ".", **options: object) -> object:
    """Fetch a bundle pushed with ``edgepack push`` from an OCI registry into ``dest_dir``
    (``runtime.oci.pull.pull``: its options and its ``PullResult``); imported when called."""
    from .oci.pull import pull as _pull
    return _pull(reference, dest_dir, **options)  # type: ignore[arg-type]


__all__ = ["ArchiveError", "BackendError", "Bundle", "BundleFormatError", "FeedError",
           "FileIOError", "IntegrityError", "Model", "NoCandidateError", "OutputError",
           "OutputReport", "ParityReport", "RegistryError", "RuntimeBundleError", "SignatureError", "TensorSpec",
           "Tolerance", "UnknownCandidateError", "__version__", "check_finite", "compare", "load",
           "open_bundle", "pull", "verify_signature"]
