"""onnxsim simplification; when it fails the unsimplified model is kept and the reason recorded."""
from __future__ import annotations

import onnx

from ..onnx_utils import node_count
from . import PassResult


def simplify(model: onnx.ModelProto) -> PassResult:
    """Simplify with onnxsim, checking the result numerically (onnxsim's own check)."""
    before = node_count(model)
    from ..quiet import quiet
    try:
        import onnxsim
        with quiet():  # onnxsim prints (to stdout: it would corrupt `edgepack build --json`)
            simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises many kinds; keep the model, say why
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return PassResult(model, "simplify", modified=False,
                          details={"nodes_before": before, "nodes_after": before, "skipped": reason},
                          notes=[f"onnxsim failed, kept the unsimplified model ({reason})"])
    if not ok:
        return PassResult(model, "simplify", modified=False,
                          details={"nodes_before": before, "nodes_after": before,
                                   "skipped": "onnxsim's check of the simplified model failed"},
                          notes=["onnxsim's output did not match the input; kept the unsimplified model"])
    return PassResult(simplified, "simplify", modified=True,
                      details={"nodes_before": before, "nodes_after": node_count(simplified)})
