"""Conversions from a source model to an artifact format, one module each."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TFLiteArtifact:
    """A TFLite flatbuffer, how its signature keys map to the manifest's names, and its record."""

    data: bytes
    io_map: dict[str, dict[str, str]]
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
