"""The one rule for cache keys: a step's output key = hash(step, its input's key, config, tools).

Keys chain like Olive's model ids: an artifact's key holds its input model's key, which holds
the source model's key, so a changed weight, manifest field, target or tool version is another
key (never a stale hit), and history is a hash chain. Every cached thing of a build (the inputs
record, the data, the base ONNX model, each artifact, each host check) is keyed here. edgepack's
own code is part of every key too: a fixed pass in a development checkout (same version number)
must not be served the artifact the old code made.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..cache import code_hash, make_key
from ..cache import tool_versions as installed_versions

__all__ = ["installed_versions", "step_key"]


def step_key(step: str, input_key: str | None, config: Mapping[str, Any],
             tools: Iterable[str] | Mapping[str, str] = ()) -> str:
    """The key of ``step``'s output from ``input_key`` (None for a root) with ``config`` (JSON-able)
    and ``tools``: distribution names (their installed versions are looked up) or name -> version."""
    versions = dict(tools) if isinstance(tools, Mapping) else installed_versions(*sorted(set(tools)))
    return make_key(step, input_key, dict(config), {**versions, "edgepack-code": code_hash()})
