"""edgepack's host-side packager: manifest -> converted, quantized, verified bundles per target."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from .config.manifest import Manifest, load_manifest  # noqa: E402
from .config.targets import Target, available_targets, load_target  # noqa: E402
from .errors import (  # noqa: E402
    BuildError,
    ConfigError,
    ConversionError,
    DataError,
    EdgepackError,
    ManifestError,
    ParityError,
    SourceError,
    TargetError,
    UnsupportedError,
)

if TYPE_CHECKING:
    from .results import BuildResult


def build(manifest_path: str | Path, out_dir: str | Path, *, targets: list[str] | None = None,
          allow_parity_failure: bool = False, sign: str | Path | None = None) -> BuildResult:
    """Build one verified bundle per target of a manifest into ``out_dir``.

    The pipeline is imported here, not at package import, because it pulls in onnx.
    """
    from .pipeline import build as _build
    return _build(manifest_path, out_dir, targets=targets, allow_parity_failure=allow_parity_failure, sign=sign)


def push(bundle: str | Path, reference: str, **options: object) -> object:
    """Push a bundle folder or archive to an OCI registry (``packager.oci_push.push``: its options
    and its ``PushResult``); imported when called."""
    from .oci_push import push as _push
    return _push(bundle, reference, **options)  # type: ignore[arg-type]


__all__ = ["__version__", "build", "push", "load_manifest", "load_target", "available_targets", "Manifest",
           "Target", "EdgepackError", "ConfigError", "ManifestError", "TargetError", "SourceError",
           "DataError", "ConversionError", "UnsupportedError", "ParityError", "BuildError"]
