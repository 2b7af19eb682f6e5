"""The packager's one exception tree. Every user error names what is wrong, where, and the fix."""
from __future__ import annotations

from runtime.errors import HintedError


class EdgepackError(HintedError):
    """Base of every error the packager raises on purpose (the CLI prints it without a traceback).

    ``where`` is the file and field (``manifests/x.yaml: inputs[0].dtype``) or the step concerned;
    ``hint`` says how to fix it; ``code`` is a stable id for scripts and tests.
    """

    code = "edgepack-error"


class ConfigError(EdgepackError):
    """A manifest or target document is malformed, mistyped or inconsistent."""

    code = "config"


class ManifestError(ConfigError):
    """A manifest is invalid."""

    code = "manifest"


class TargetError(ConfigError):
    """A target is invalid or unknown."""

    code = "target"


class SourceError(EdgepackError):
    """The source model cannot be found, loaded, or does not match the manifest's signature."""

    code = "source"


class DataError(EdgepackError):
    """Calibration, golden or evaluation data is missing, malformed or does not fit the signature."""

    code = "data"


class ConversionError(EdgepackError):
    """A conversion or pass (export, simplify, quantize) failed."""

    code = "conversion"


class UnsupportedError(ConversionError):
    """The requested format/precision route is not supported."""

    code = "unsupported"


class ParityError(EdgepackError):
    """An artifact does not compute what the original model computes, within tolerance."""

    code = "parity"


class BuildError(EdgepackError):
    """One or more targets failed to build (the summary holds the details)."""

    code = "build"
