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
    """A context that switches a transformers model from SDPA to eager attention and back, or
    None when the model is not one (or already eager)."""
    config = getattr(module, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    setter = getattr(module, "set_attn_implementation", None)
    if impl != "sdpa" or not callable(setter):
        return None

    @contextlib.contextmanager
    def swap() -> Iterator[None]:
        setter("eager")
        try:
            yield
        finally:
            setter(impl)  # the source model is used after the export: leave it as it was
    return swap
