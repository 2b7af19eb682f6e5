"""Every zoo model, one module per family; ``entry(name)`` and ``ENTRIES`` (in scoreboard order).

Each module holds ``ENTRIES``: ``zoo.models.spec.Entry`` records (name, framework, how to make and
fit the model, the samples its calibration entry point yields, its inputs and outputs). Nothing is
downloaded: transformers models come from small configs, keras.applications from ``weights=None``.
"""
from __future__ import annotations

from . import hf_audio, hf_text, hf_vision, keras_apps, keras_nets, onnx_exports, torch_nets
from .spec import Entry

FAMILIES = (torch_nets, hf_text, hf_vision, hf_audio, keras_apps, keras_nets, onnx_exports)
ENTRIES: dict[str, Entry] = {e.name: e for module in FAMILIES for e in module.ENTRIES}
assert len(ENTRIES) == sum(len(m.ENTRIES) for m in FAMILIES), "zoo model names must be unique"


def entry(name: str) -> Entry:
    try:
        return ENTRIES[name]
    except KeyError:
        raise KeyError(f"no zoo model {name!r}; known: {', '.join(ENTRIES)}") from None


__all__ = ["ENTRIES", "Entry", "entry"]
