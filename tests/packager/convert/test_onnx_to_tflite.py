"""ONNX -> TFLite with onnx2tf in its own environment (packager.convert.onnx_to_tflite): small
real models built in code, converted for real, run with LiteRT and compared with onnxruntime.

The conversions need the onnx2tf environment (`edgepack converters install onnx2tf`): without it
they skip locally and fail under CI=true. The name/error helpers need nothing.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

from packager.config.manifest import Manifest, load_manifest
from packager.config.targets import Quantization
from packager.convert import onnx_to_tflite as o2t
from packager.errors import UnsupportedError

from .onnx_models import DATA, conv_net, fmod_net, onnx2tf_env, token_net, write_project

pytestmark = pytest.mark.slow


def images(n: int = 48) -> np.ndarray:
    scope: dict[str, Any] = {}
    exec(DATA, scope)
    return np.asarray(next(scope["images"](n))["image"])


def manifest_for(folder: Path, model: onnx.ModelProto) -> Manifest:
    return load_manifest(write_project(folder, model, ["x86-cpu"]))


def run_tflite(data: bytes, io_map: dict[str, dict[str, str]], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One sample at a time through the serving signature, int8 I/O (de)quantized like the runtime."""
    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter(model_content=data).get_signature_runner()
    ins, outs = runner.get_input_details(), runner.get_output_details()
    n = len(next(iter(feeds.values())))
    results: dict[str, list[np.ndarray]] = {name: [] for name in io_map["outputs"]}
    for i in range(n):
        args = {}
        for name, theirs in io_map["inputs"].items():
            x, d = feeds[name][i:i + 1], ins[theirs]
            if d["dtype"] == np.int8:
                scale, zero = d["quantization"]
                x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
            args[theirs] = x
        got = runner(**args)
        for name, theirs in io_map["outputs"].items():
            y = got[theirs]
            if y.dtype == np.int8:
                scale, zero = outs[theirs]["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            results[name].append(y)
    return {k: np.concatenate(v) for k, v in results.items()}


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in model.graph.output], session.run(None, feeds), strict=True))


def tensor_dtypes(data: bytes) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter
    return {np.dtype(d["dtype"]).name for d in Interpreter(model_content=data).get_tensor_details()}


# -- real conversions ------------------------------------------------------------------------------

CASES = [("fp32", None, "float", 1e-5), ("fp16", None, "float", 5e-3),
         ("int8", Quantization(mode="dynamic"), "float", 0.1),
         ("int8", Quantization(mode="static", per_channel=True), "float", 0.1),
         ("int8", Quantization(mode="static"), "int8", 0.1)]


def test_every_precision_runs_and_matches_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = onnx2tf_env()
    model = conv_net()
    manifest = manifest_for(tmp_path, model)
    x = images()
    ref = reference(model, {"image": x[:12]})["scores"]
    runs: list[list[str]] = []
    monkeypatch.setattr(o2t, "_RUNS", {})  # no run kept from an earlier test
    real_run = o2t.run_onnx2tf
    monkeypatch.setattr(o2t, "run_onnx2tf", lambda *a, **k: runs.append(a[3]) or real_run(*a, **k))
    sizes, errors = {}, {}
    for precision, quant, io, tolerance in CASES:
        art = o2t.onnx_to_tflite(model, manifest, precision=precision, quantization=quant, io=io,
                                 calibration={"image": x}, calibration_batched=True)
        name = precision + (f"-{quant.mode}" if quant else "") + ("-int8io" if io == "int8" else "")
        assert art.io_map == {"inputs": {"image": "image"}, "outputs": {"scores": "scores"}}, name
        got = run_tflite(art.data, art.io_map, {"image": x[:12]})["scores"]
        errors[name] = float(np.abs(got - ref).max())
        assert errors[name] < tolerance, (name, errors[name])
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9, name
        sizes[name] = len(art.data)
        converter = f"onnx2tf 2.6.9 (own Python {env.python_version} environment)"
        if quant and quant.mode == "static":
            converter += f", float32; int8 by ai-edge-quantizer {metadata.version('ai-edge-quantizer')}"
        assert art.details["converter"] == converter, name
        assert art.details["static_batch"] == 1 and art.details["converter_env"]["onnx2tf"] == "2.6.9"
        dtypes = tensor_dtypes(art.data)
        if precision == "fp16":
            assert "float16" in dtypes and art.details["weights"].startswith("float16")
            assert any("float16 weights with float32 compute and I/O" in n for n in art.notes)
        if precision == "int8":
            assert "int8" in dtypes
        if name == "int8-static":
            assert art.details["calibration_samples"] == 48 and art.details["quantization"] == "per-channel"
        if quant and quant.mode == "static":  # int8 I/O only where asked
            ins, outs = o2t.edge_dtypes(art.data)
            assert ins == {"image": "int8" if io == "int8" else "float32"}, (name, ins)
            assert outs == {"scores": "int8" if io == "int8" else "float32"}, (name, outs)
    assert errors["fp32"] < 1e-5 and errors["fp16"] > errors["fp32"]  # fp16 weights really are float16
    assert sizes["fp16"] < sizes["fp32"] and sizes["int8-dynamic"] < sizes["fp16"], sizes
    # one onnx2tf run for fp32 + fp16 (its float32 model is what int8 static quantizes), one for dynamic
    assert runs == [["float32", "float16"], ["dynamic_range"]]


def test_the_layout_and_names_stay_the_onnx_models(tmp_path: Path) -> None:
    """NCHW input kept NCHW (no transpose for the caller), a name onnx2tf renames mapped back."""
    onnx2tf_env()
    from ai_edge_litert.interpreter import Interpreter
    model = conv_net(pool=True, output="scores:0")
    manifest = manifest_for(tmp_path, model)
    art = o2t.onnx_to_tflite(model, manifest, precision="fp32", quantization=None, io="float")
    assert art.io_map == {"inputs": {"image": "image"}, "outputs": {"scores:0": "scores__0", "pooled": "pooled"}}
    runner = Interpreter(model_content=art.data).get_signature_runner()
    assert list(runner.get_input_details()["image"]["shape"]) == [1, 3, 16, 16]
    x = images(4)
    ref, got = reference(model, {"image": x}), run_tflite(art.data, art.io_map, {"image": x})
    for name in ("scores:0", "pooled"):
        assert got[name].shape == ref[name].shape and np.abs(got[name] - ref[name]).max() < 1e-5


def test_int64_token_ids_stay_int64(tmp_path: Path) -> None:
    onnx2tf_env()
    model = token_net()
    path = write_project(tmp_path, model, ["x86-cpu"])
    doc = yaml.safe_load(path.read_text())
    doc["inputs"][0]["dtype"] = "int64"
    doc["outputs"] = ["scores", {"name": "label", "dtype": "int64"}]
    path.write_text(yaml.safe_dump(doc))
    art = o2t.onnx_to_tflite(model, load_manifest(path), precision="fp32", quantization=None, io="float")
    assert art.io_map == {"inputs": {"ids": "ids"}, "outputs": {"scores": "scores", "label": "label"}}
    ids = np.random.default_rng(2).integers(0, 50, (8, 6)).astype(np.int64)
    ref, got = reference(model, {"ids": ids}), run_tflite(art.data, art.io_map, {"ids": ids})
    assert np.abs(got["scores"] - ref["scores"]).max() < 1e-5 and (got["label"] == ref["label"]).all()
    # int8 static calibrates through the float TFLite model, so token ids need no float32 detour
    # (scores only: with XNNPACK, LiteRT 2.3 leaves an int8 model's output that another op also
    # reads unallocated; the build's parity check reports such a candidate)
    model = token_net(label=False)
    doc["outputs"] = ["scores"]
    path.write_text(yaml.safe_dump(doc))
    art = o2t.onnx_to_tflite(model, load_manifest(path), precision="int8", quantization=Quantization(), io="int8",
                             calibration={"ids": ids})
    got = run_tflite(art.data, art.io_map, {"ids": ids})
    assert o2t.edge_dtypes(art.data)[0] == {"ids": "int64"}
    assert (got["scores"].argmax(1) == ref["scores"].argmax(1)).mean() >= 0.9
    assert np.abs(got["scores"] - ref["scores"]).max() < 0.1 * np.ptp(ref["scores"])


def test_a_symbolic_sequence_axis_is_fixed_to_the_calibration_length(tmp_path: Path) -> None:
    """int8 ranges hold for the length they were calibrated at: the axis is fixed and recorded."""
    onnx2tf_env()
    model = token_net(seq="seq", label=False)
    path = write_project(tmp_path, model, ["x86-cpu"])
    ids = np.random.default_rng(3).integers(0, 50, (16, 6)).astype(np.int64)
    art = o2t.onnx_to_tflite(model, load_manifest(path), precision="int8", quantization=Quantization(), io="int8",
                             calibration={"ids": ids})
    assert art.details["static_axes"] == {"ids": {"1": 6}}
    assert any("compiled for fixed ids axis 1 = 6" in note for note in art.notes), art.notes
    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter(model_content=art.data).get_signature_runner()
    assert list(runner.get_input_details()["ids"]["shape_signature"]) == [1, 6]
    ref, got = reference(model, {"ids": ids}), run_tflite(art.data, art.io_map, {"ids": ids})
    assert (got["scores"].argmax(1) == ref["scores"].argmax(1)).mean() >= 0.9


def test_a_model_onnx2tf_cannot_convert_says_why(tmp_path: Path) -> None:
    onnx2tf_env()
    model = fmod_net()
    path = write_project(tmp_path, model, ["x86-cpu"])
    with pytest.raises(UnsupportedError) as info:
        o2t.onnx_to_tflite(model, load_manifest(path), precision="fp32", quantization=None, io="float")
    message = info.value.message
    assert message.startswith("onnx2tf cannot convert this model: NodeValidationError: Mod with fmod=1 is not "
                               "supported"), message
    assert "Traceback" not in message and "\n" not in message and info.value.hint == o2t.HINT


def test_what_onnx2tf_cannot_quantize_is_refused_first(tmp_path: Path) -> None:
    model = conv_net()
    manifest = manifest_for(tmp_path, model)
    with pytest.raises(UnsupportedError, match="min/max ranges only, not entropy"):
        o2t.onnx_to_tflite(model, manifest, precision="int8", io="float", calibration={"image": images()},
                           quantization=Quantization(calibration_method="entropy"))


# -- helpers ---------------------------------------------------------------------------------------

def test_first_error_picks_onnx2tfs_reason() -> None:
    printed = ("\x1b[31mERROR:\x1b[0m The trace log is below.\nTraceback (most recent call last):\n"
               "  File \"x.py\", line 1\nValueError: Dimensions must be equal, but are 8 and 16\n"
               "\x1b[31mERROR:\x1b[0m input_onnx_file_path: model.onnx\n"
               "\x1b[31mERROR:\x1b[0m onnx_op_name: wa/fc/Gemm\n")
    assert o2t.first_error(printed) == "ValueError: Dimensions must be equal, but are 8 and 16 (ONNX node wa/fc/Gemm)"
    assert o2t.first_error("\x1b[31mERROR:\x1b[0m The trace log is below.\nERROR: Unsupported op Foo\n") == \
        "Unsupported op Foo"
    chained = ("Traceback (most recent call last):\nonnx2tf.tflite_builder.quantization.StrictFullIntegerQuantization"
               "Error: Unsupported op for strict full integer quantization: op_type=FILL\n\nThe above exception was "
               "the direct cause of the following exception:\n\nRuntimeError: flatbuffer_direct fast path failed.\n")
    assert o2t.first_error(chained) == ("StrictFullIntegerQuantizationError: Unsupported op for strict full "
                                        "integer quantization: op_type=FILL")
    assert o2t.first_error("") == "no error message"


def test_match_names_undoes_onnx2tfs_renaming() -> None:
    assert o2t.match_names(["seg:0", "vec"], ["vec", "seg__0"], "outputs") == {"seg:0": "seg__0", "vec": "vec"}
    assert o2t.match_names(["a", "b"], ["b_dequantized_output", "a_dequantized_output"], "outputs") == \
        {"a": "a_dequantized_output", "b": "b_dequantized_output"}
    assert o2t.match_names(["input.1"], ["serving_default_x:0"], "inputs") == {"input.1": "serving_default_x:0"}
    with pytest.raises(UnsupportedError, match=r"outputs \['p', 'q'\] do not match the ONNX model's \['a', 'b'\]"):
        o2t.match_names(["a", "b"], ["p", "q"], "outputs")


def test_fix_batch_sets_a_symbolic_batch_to_one_on_a_copy() -> None:
    model = conv_net()
    fixed, changed = o2t.fix_batch(model)
    assert changed and fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert fixed.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # the original untouched
    assert o2t.fix_batch(fixed)[1] is False
