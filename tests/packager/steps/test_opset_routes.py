"""Only the routes whose artifact step needs a newer opset than an ONNX source's carry the upgrade
step, so a failed upgrade fails them alone; the rest share the prepared model."""
from __future__ import annotations

from packager.config.manifest import EXPORT
from packager.passes.opset import OPSET_NEEDS
from packager.steps import ROUTES
from packager.steps.model_steps import UpgradeOpset


def test_onnx_sources_upgrade_only_for_the_passes_that_need_it() -> None:
    base = ROUTES[("onnx", "onnx", "fp32")].model_steps
    assert [s.name for s in base] == ["load", "prepare", "simplify"]
    assert ROUTES[("onnx", "onnx", "fp16")].model_steps == base
    for variant, opset in (("int8-dynamic", 11), ("int8-static", 13)):
        steps = ROUTES[("onnx", "onnx", variant)].model_steps
        assert steps[:-1] == base and isinstance(steps[-1], UpgradeOpset)
        assert steps[-1].config(None) == {"opset": opset} == {"opset": OPSET_NEEDS[variant][0]}  # type: ignore[arg-type]
        assert str(steps[-1]) == f"opset {opset} for {variant}"


def test_exported_models_need_no_upgrade_step() -> None:
    # torch and TensorFlow export at export.opset (13 or newer): every ONNX pass shares one chain
    for framework in ("torch", "tensorflow"):
        chains = {ROUTES[(framework, "onnx", v)].model_steps for v in ("fp32", "fp16", "int8-dynamic", "int8-static")}
        assert len(chains) == 1
        assert not any(isinstance(s, UpgradeOpset) for s in next(iter(chains)))
    assert max(opset for opset, _, _ in OPSET_NEEDS.values()) <= EXPORT["opset"].minimum
