"""transformers models export their attention as PyTorch's SDPA by default; the ONNX graph of
that (a boolean mask built from Range/GreaterOrEqual/And/Expand, an IsNaN+Where after each
Softmax) runs about 9 % slower on onnxruntime than the eager attention's plain MatMul+Softmax,
which is what Optimum's export has. The exporter choice tries the eager attention as one more
export; parity and timing decide, as for the exporters themselves."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

EAGER_SUFFIX = " with eager attention"


def eager_attention(module: Any) -> Callable[[], contextlib.AbstractContextManager[None]] | None:
    """A context that switches the transformers models in ``module`` (the module itself, or one it
    wraps, as a user's wrapper that returns ``.logits`` does) from SDPA to eager attention and back,
    or None when there is none (or it is eager already)."""
    found = [m for m in ([module, *module.modules()] if callable(getattr(module, "modules", None)) else [module])
             if getattr(getattr(m, "config", None), "_attn_implementation", None) == "sdpa"
             and callable(getattr(m, "set_attn_implementation", None))]
    if not found:
        return None

    @contextlib.contextmanager
    def swap() -> Iterator[None]:
        for m in found:
            m.set_attn_implementation("eager")
        try:
            yield
        finally:
            for m in reversed(found):  # the source model is used after the export: leave it as it was
                m.set_attn_implementation("sdpa")

    return swap
