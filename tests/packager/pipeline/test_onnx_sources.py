"""Builds of ONNX files that onnxruntime runs but older edgepack refused or failed whole: an opset-9
model with ConstantOfShape weights, initializers kept as inputs, a weight the opset converter cannot
read, nodes out of order, onnxruntime's fused ops. Only candidates that need an upgrade upgrade."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from packager.cache import BuildCache
from packager.onnx_utils import opset_of
from packager.pipeline import build
from packager.results import BuildResult, CandidateResult

from ...conftest import write_yaml
from ..onnx_cases import (
    ALL_ONNX_TARGET,
    block_inputs,
    features,
    ir3_constant_of_shape,
    ort_optimized_block,
    sparse_weight,
    torch_export,
    unsorted_fp16,
    write_onnx_manifest,
)

pytestmark = pytest.mark.slow


def candidates(result: BuildResult, target: str) -> dict[str, CandidateResult]:
    return {c.id: c for t in result.targets if t.target == target for c in t.candidates}


def max_abs(c: CandidateResult) -> float:
    assert c.parity is not None and c.parity.passed, c.message
    return max(o.max_abs for o in c.parity.outputs if o.max_abs is not None)


def bundle(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / name / "bundle.json").read_text())


def steps_of(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[str]]]:
    return [(s["step"], s["details"], s["notes"]) for s in doc["provenance"]["steps"]]


def test_opset9_constant_of_shape_model_ships_its_onnx_candidates(tmp_path: Path) -> None:
    onnx.save(ir3_constant_of_shape(), str(tmp_path / "ir3.onnx"))
    target = write_yaml(tmp_path / "dev.yaml", ALL_ONNX_TARGET)
    manifest = write_onnx_manifest(tmp_path, "ir3.onnx", features(48), ["batch", 8], ["x86-cpu", str(target)])
    cache = BuildCache(tmp_path / "cache")
    result = build(manifest, tmp_path / "out", cache=cache)
    dev = candidates(result, "onnx-dev")
    assert {c.status for c in dev.values()} == {"ok"}
    assert max_abs(dev["onnx-fp32"]) == 0.0 and max_abs(dev["onnx-fp16"]) < 1e-2
    assert max_abs(dev["onnx-int8-static-pc"]) < 0.1 and max_abs(dev["onnx-int8-dynamic"]) < 0.1
    x86 = candidates(result, "x86-cpu")
    assert [x86[i].status for i in ("onnx-int8-static-pc", "onnx-fp32", "torchscript-fp32")] == ["ok", "ok", "ok"]
    assert max_abs(x86["torchscript-fp32"]) < 1e-5  # the opset-9 graph itself, through the ONNX -> torch op table
    models = tmp_path / "out" / "ir3-onnx-dev" / "models"
    assert [opset_of(onnx.load(str(models / f"ir3.{v}.onnx"))) for v in ("fp32", "fp16", "int8-dynamic")] == [9, 9, 11]
    assert opset_of(onnx.load(str(models / "ir3.int8-static-pc.onnx"))) == 13
    doc = bundle(tmp_path / "out", "ir3-onnx-dev")
    recorded = steps_of(doc)
    assert [s for s, _, _ in recorded] == ["prepare", "simplify", "opset", "opset"]
    prepare = recorded[0][1]
    assert (prepare["opset_before"], prepare["opset"], prepare["ir_version_before"]) == (9, 9, 3)
    assert {(d["variant"], d["opset_before"], d["opset"]) for s, d, _ in recorded if s == "opset"} == \
        {("int8-static", 9, 13), ("int8-dynamic", 9, 11)}
    assert any(n.startswith("upgraded opset 9 -> 13 (int8 static QDQ") for _, _, notes in recorded for n in notes)
    # a rebuild takes every chain from the cache and records the same provenance, once
    again = build(manifest, tmp_path / "again", cache=BuildCache(tmp_path / "cache"))
    assert again.steps == result.steps and "onnx base model + opset 13 for int8-static" in cache.misses
    assert bundle(tmp_path / "again", "ir3-onnx-dev")["provenance"]["steps"] == doc["provenance"]["steps"]


@pytest.mark.parametrize("opset", [9, 12])
def test_torch_export_with_initializers_as_inputs(tmp_path: Path, opset: int) -> None:
    torch_export(tmp_path / "old.onnx", opset, keep_initializers_as_inputs=True)
    target = write_yaml(tmp_path / "dev.yaml", ALL_ONNX_TARGET)
    manifest = write_onnx_manifest(tmp_path, "old.onnx", features(48), ["batch", 8], [str(target)])
    result = build(manifest, tmp_path / "out")
    dev = candidates(result, "onnx-dev")
    assert {c.status for c in dev.values()} == {"ok"}, [c.message for c in dev.values()]
    assert max_abs(dev["onnx-fp32"]) < 1e-5 and max_abs(dev["onnx-int8-static-pc"]) < 0.1
    prepare = result.steps[0]["details"]
    assert prepare["initializer_inputs_removed"] == 4 and prepare["opset"] == opset


def test_a_failed_upgrade_fails_only_the_candidates_that_need_it(tmp_path: Path) -> None:
    onnx.save(sparse_weight(), str(tmp_path / "pruned.onnx"))
    target = write_yaml(tmp_path / "dev.yaml", ALL_ONNX_TARGET.replace("  - {format: onnx, precision: fp16}\n", ""))
    manifest = write_onnx_manifest(tmp_path, "pruned.onnx", features(48), ["batch", 8], [str(target)])
    result = build(manifest, tmp_path / "out", jobs=2)  # the passes run in workers: same outcome
    (dev,) = result.targets
    got = candidates(result, "onnx-dev")
    assert [(c.id, c.status) for c in dev.candidates] == [
        ("onnx-int8-static-pc", "failed"), ("onnx-int8-dynamic", "ok"), ("onnx-fp32", "ok")]
    failed = got["onnx-int8-static-pc"].message or ""
    assert failed.startswith("int8 static QDQ needs opset 13 (per-channel DequantizeLinear takes an axis from "
                             "opset 13 on); cannot upgrade the model from opset 11 to 13: Sparse tensors not "
                             "supported.")
    assert "re-export the model at opset 13 or newer" in failed
    assert dev.status == "partial" and dev.message == "built without onnx-int8-static-pc (failed)"
    assert max_abs(got["onnx-fp32"]) == 0.0 and max_abs(got["onnx-int8-dynamic"]) < 0.1
    doc = bundle(tmp_path / "out", "pruned-onnx-dev")
    assert [c["id"] for c in doc["candidates"]] == ["onnx-int8-dynamic", "onnx-fp32"]
    assert doc["skipped"][0]["candidate"] == "onnx-int8-static-pc" and "Sparse tensors" in doc["skipped"][0]["reason"]
    assert {s["step"] for s in doc["provenance"]["steps"]} == {"prepare", "simplify", "opset"}


def test_unsorted_graph_builds_with_the_note(tmp_path: Path) -> None:
    unsorted_fp16(tmp_path / "half.onnx")
    # the model is float16 inside already: the fp16 pass keeps it, the int8 passes widen it first
    target = write_yaml(tmp_path / "dev.yaml", ALL_ONNX_TARGET)
    manifest = write_onnx_manifest(tmp_path, "half.onnx", features(48), ["batch", 8], [str(target)])
    result = build(manifest, tmp_path / "out")
    got = candidates(result, "onnx-dev")
    assert {c: r.status for c, r in got.items()} == {c: "ok" for c in got}, {c: r.message for c, r in got.items()}
    assert got["onnx-fp32"].status == "ok" and max_abs(got["onnx-fp32"]) == 0.0
    assert max_abs(got["onnx-fp16"]) == 0.0  # the same float16 model
    assert any("float16 already" in n for n in got["onnx-fp16"].notes), got["onnx-fp16"].notes
    prepare = next(s for s in result.steps if s["step"] == "prepare")
    nodes = len(onnx.load(str(tmp_path / "half.onnx")).graph.node)
    assert prepare["details"]["sorted_nodes"] == nodes
    assert prepare["notes"][0].startswith(f"sorted {nodes} nodes into topological order")
    shipped = onnx.load(str(tmp_path / "out" / "half-onnx-dev" / "models" / "half.fp32.onnx"))
    onnx.checker.check_model(shipped)  # in order now


def _init_and_fill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Path,
                   capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    """`edgepack init model.onnx`, then the calibration placeholder replaced by real samples."""
    import numpy as np

    from packager.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["init", model.name]) == 0
    out = capsys.readouterr().out
    manifest = tmp_path / f"{model.stem}.yaml"
    np.savez(tmp_path / "calib.npz", x=block_inputs())
    manifest.write_text(manifest.read_text().replace("REPLACE-ME/calibration.npz", "calib.npz"))
    return manifest, out


def test_onnxruntime_optimized_model_inits_and_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    model = ort_optimized_block(tmp_path / "block.onnx")
    manifest, said = _init_and_fill(tmp_path, monkeypatch, model, capsys)
    assert "onnxruntime loads it, so it is accepted" in said and "SkipLayerNormalization" in said
    result = build(manifest, tmp_path / "out", targets=["x86-cpu"])
    got = candidates(result, "x86-cpu")
    assert got["onnx-fp32"].status == "ok" and max_abs(got["onnx-fp32"]) == 0.0
    assert got["onnx-int8-static-pc"].status == "ok" and max_abs(got["onnx-int8-static-pc"]) < 0.2
    refused = got["torchscript-fp32"]
    assert refused.status == "unsupported" and refused.message is not None
    assert refused.message.startswith(
        "the model uses onnxruntime-only op(s) LayerNormalization (default domain at opset 14, onnxruntime's "
        "contrib ops); BiasGelu, SkipLayerNormalization (domain com.microsoft): a torchscript candidate")
    assert result.targets[0].status == "ok"
    prepare = next(s for s in result.steps if s["step"] == "prepare")
    assert prepare["details"]["onnxruntime_only_ops"] == [
        "LayerNormalization", "com.microsoft:BiasGelu", "com.microsoft:SkipLayerNormalization"]


def test_other_formats_name_the_onnxruntime_only_ops(tmp_path: Path) -> None:
    ort_optimized_block(tmp_path / "block.onnx", opset=12)
    target = write_yaml(tmp_path / "dev.yaml", ALL_ONNX_TARGET.replace(
        "candidates:\n", "candidates:\n  - {format: tflite, precision: fp32}\n").replace(
        "requirements: [numpy==2.2.6, onnxruntime==1.22.1]",
        "requirements: [numpy==2.2.6, onnxruntime==1.22.1, ai-edge-litert==1.2.0]"))
    manifest = write_onnx_manifest(tmp_path, "block.onnx", block_inputs(), ["batch", "seq", 16], [str(target)])
    result = build(manifest, tmp_path / "out")
    got = candidates(result, "onnx-dev")
    assert {i: c.status for i, c in got.items()} == {
        "tflite-fp32": "unsupported", "onnx-int8-static-pc": "ok", "onnx-int8-dynamic": "ok", "onnx-fp16": "ok",
        "onnx-fp32": "ok"}
    assert "BiasGelu, SkipLayerNormalization (domain com.microsoft): a tflite candidate (tflite) cannot run them" \
        in (got["tflite-fp32"].message or "")
    assert max_abs(got["onnx-fp32"]) == 0.0 and max_abs(got["onnx-fp16"]) < 1e-2
    upgraded = next(s for s in result.steps if s["step"] == "opset" and s["details"]["variant"] == "int8-static")
    assert (upgraded["details"]["opset_before"], upgraded["details"]["opset"]) == (12, 13)


def test_an_explicit_opset_is_honoured_and_its_failure_says_how_to_keep_the_models(tmp_path: Path) -> None:
    ort_optimized_block(tmp_path / "block.onnx")
    target = write_yaml(tmp_path / "dev.yaml", ALL_ONNX_TARGET)
    manifest = write_onnx_manifest(tmp_path, "block.onnx", block_inputs(), ["batch", "seq", 16], [str(target)],
                                   export={"opset": 17})
    result = build(manifest, tmp_path / "out")
    (dev,) = result.targets
    assert dev.status == "failed" and {c.status for c in dev.candidates} == {"failed"}
    message = dev.candidates[0].message or ""
    assert message.startswith("export.opset needs opset 17 (set in the manifest); cannot upgrade the model from "
                              "opset 14 to 17: No Adapter From Version $16 for LayerNormalization")
    assert "leave export.opset out of the manifest to keep opset 14" in message
