"""The coverage zoo (``make zoo``, zoo/run.py) on a representative slice, through its own code:
a torch transformer fed int64 token ids (bert-cls), a Keras model with two inputs and two outputs
(keras-two-in-two-out), and an ONNX file torch.onnx.export wrote at opset 11 with two outputs
(onnx-ssd-tiny-op11), each prepared (fitted, exported) and built for x86-cpu and rpi4 with
``--quick``, every bundle verified with ``python -m runtime verify --all``. The matrix's statuses
and parity figures are asserted, whatever the packager gets right or wrong today: an ok cell has
passing parity within its precision's bounds, anything else names its reason (the op or the step).

The reason and crash parsers and the scoreboard's arithmetic are checked on small inputs too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from zoo import crash, scoreboard
from zoo.model_run import STATUS, candidate_ids

from .conftest import REPO

MODELS = ("bert-cls", "keras-two-in-two-out", "onnx-ssd-tiny-op11")
TARGETS = ("x86-cpu", "rpi4")
RESULTS = set(scoreboard.RESULTS)


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`python zoo/run.py --only ... --targets x86-cpu,rpi4 --quick` into a temp work folder."""
    for module in ("torch", "transformers", "tensorflow", "litert_torch", "ai_edge_litert"):
        pytest.importorskip(module)
    from .packager.convert.onnx_models import onnx2tf_env
    onnx2tf_env()  # the ONNX model's TFLite candidate: skipped without it (a failure under CI=true)
    from zoo.run import main
    work = tmp_path_factory.mktemp("zoo")
    out = work / "results.json"
    assert main(["--only", ",".join(MODELS), "--targets", ",".join(TARGETS), "--quick", "--emulate", "none",
                 "--timeout", "900", "--work", str(work), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    doc["_scoreboard"] = (work / "scoreboard.md").read_text()
    return doc


def model(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in doc["models"] if m["name"] == name)


def cells(doc: dict[str, Any], name: str, target: str) -> dict[str, dict[str, Any]]:
    return {c["candidate"]: c for c in model(doc, name)["cells"] if c["target"] == target}


def assert_ok_parity(c: dict[str, Any]) -> None:
    """An ok cell: parity passed on every output, within the bounds of its precision."""
    p = c["parity"]
    assert c["status"] == "ok" and p and p["passed"], c
    assert p["outputs"], c
    for name, o in p["outputs"].items():
        assert o["passed"], (c["candidate"], name, o)
        if c["precision"] == "fp32":
            assert o["max_abs"] is not None and o["max_abs"] < 1e-3, (c["candidate"], name, o)
        else:
            assert o["cosine"] is not None and o["cosine"] >= 0.98, (c["candidate"], name, o)
        assert o["top1"] is None or o["top1"] >= 0.95, (c["candidate"], name, o)


# -- the run --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_cell_has_a_status_and_what_is_not_ok_says_why(zoo_run: dict[str, Any]) -> None:
    assert [m["name"] for m in zoo_run["models"]] == list(MODELS)
    for m in zoo_run["models"]:
        for target in TARGETS:
            got = cells(zoo_run, m["name"], target)
            assert list(got) == [c["candidate"] for c in candidate_ids(target)], (m["name"], target)
            for c in got.values():
                assert c["status"] in RESULTS, c
                if c["status"] == "ok":
                    assert_ok_parity(c)
                else:
                    assert c["reason"], c
                    if c["status"] in ("failed", "dropped"):
                        assert scoreboard.reason_kind(c["reason"])[0] != "generic", c
            info = m["targets"][target]
            if info["bundle"]:  # every bundle was verified on this host, every candidate in it
                assert info["verify"]["rc"] is not None, info
                assert info["verified"] == (info["verify"]["passed"] is True), info
                shipped = [cid for cid, c in got.items() if c["status"] == "ok"]
                assert info["shipped"] == shipped[0]
                assert set(info["verify"]["candidates"]) == set(shipped), info
    assert all(m["seconds"]["total"] > 0 for m in zoo_run["models"])


@pytest.mark.slow
def test_keras_two_inputs_two_outputs(zoo_run: dict[str, Any]) -> None:
    m = model(zoo_run, "keras-two-in-two-out")
    x86, rpi4 = cells(zoo_run, m["name"], "x86-cpu"), cells(zoo_run, m["name"], "rpi4")
    assert_ok_parity(x86["onnx-fp32"])  # tf2onnx, both outputs
    assert set(x86["onnx-fp32"]["parity"]["outputs"]) == {"logits", "value"}
    ts = x86["torchscript-fp32"]
    assert ts["status"] == "unsupported" and "PyTorch" in ts["reason"], ts
    assert m["targets"]["x86-cpu"]["verified"] and m["targets"]["rpi4"]["verified"], m["targets"]
    assert rpi4["tflite-int8-static-int8io"]["status"] in ("ok", "dropped"), rpi4["tflite-int8-static-int8io"]


@pytest.mark.slow
def test_onnx_export_at_opset_11_with_two_outputs(zoo_run: dict[str, Any]) -> None:
    m = model(zoo_run, "onnx-ssd-tiny-op11")
    assert m["framework"] == "onnx" and m["opset"] == 11 and m["prepare"]["onnx"].endswith("model.onnx")
    x86, rpi4 = cells(zoo_run, m["name"], "x86-cpu"), cells(zoo_run, m["name"], "rpi4")
    assert_ok_parity(x86["onnx-fp32"])
    assert set(x86["onnx-fp32"]["parity"]["outputs"]) == {"boxes", "class_logits"}
    assert_ok_parity(x86["torchscript-fp32"])  # edgepack's ONNX -> torch op table, then the trace
    assert set(x86["torchscript-fp32"]["parity"]["outputs"]) == {"boxes", "class_logits"}
    # onnx2tf is installed (the fixture made sure): its TFLite candidate was given to onnx2tf, and
    # is unsupported only where onnx2tf itself refused the model, naming the op
    tfl = rpi4["tflite-int8-static-int8io"]
    if tfl["status"] == "unsupported":
        assert "onnx2tf cannot convert" in tfl["reason"], tfl
        assert scoreboard.reason_kind(tfl["reason"])[0] == "op", tfl
    assert m["targets"]["rpi4"]["verified"] and m["targets"]["x86-cpu"]["verified"], m["targets"]


@pytest.mark.slow
def test_transformer_with_int64_token_ids(zoo_run: dict[str, Any]) -> None:
    m = model(zoo_run, "bert-cls")
    assert m["framework"] == "torch" and "int64-ids" in m["tags"]
    rpi4 = cells(zoo_run, m["name"], "rpi4")
    # the ONNX route (torch.onnx.export) of a BERT with int64 ids and a dynamic sequence axis
    assert_ok_parity(rpi4["onnx-fp32"])
    assert m["targets"]["rpi4"]["verified"], m["targets"]["rpi4"]
    build = m["build"]
    if build.get("crashed"):  # a build that died was rebuilt target by target, and says where it died
        assert set(build["isolated"]) == set(TARGETS), build
        assert scoreboard.reason_kind(build["reason"])[0] != "generic", build["reason"]
    for c in cells(zoo_run, m["name"], "x86-cpu").values():
        assert c["status"] == "ok" or scoreboard.reason_kind(c["reason"])[0] != "generic", c


@pytest.mark.slow
def test_scoreboard_of_the_run(zoo_run: dict[str, Any]) -> None:
    s = zoo_run["summary"]
    assert s == json.loads(json.dumps(scoreboard.summarize(zoo_run)))  # what was written, recomputed
    assert s["models"] == len(MODELS) and s["cells"] == sum(s["totals"].values()) == len(MODELS) * 6
    g = s["goals"]["verified_all_targets"]
    assert g["count"] == sum(all(mm["targets"][t]["verified"] for t in TARGETS) for mm in zoo_run["models"])
    assert g["share"] == round(g["count"] / len(MODELS), 4)
    assert s["goals"]["rpi4_tflite_int8"]["count"] <= s["goals"]["rpi4_int8"]["count"]
    md = zoo_run["_scoreboard"]
    for name in MODELS:
        assert f"`{name}`" in md
    assert "## Goals" in md and "rpi4 ships TFLite int8" in md and "| x86-cpu | onnx-fp32 |" in md
    from zoo import readme_table
    section = readme_table.section(zoo_run)
    assert "models with a verified bundle for every target" in section
    assert all(len(line) <= 100 for line in section.splitlines() if not line.startswith("|"))


# -- the parsers ----------------------------------------------------------------------------------

FAULT = """\
Fatal Python error: Segmentation fault

Current thread 0x00007f93c12b1b80 (most recent call first):
  File "/x/site-packages/torch/jit/_script.py", line 813 in save_to_buffer
  File "/work/main/packager/convert/torch_to_torchscript.py", line 109 in to_torchscript
  File "/work/main/packager/pipeline/builder.py", line 206 in _make
"""

TRACEBACK = """\
Traceback (most recent call last):
  File "/work/main/packager/cli.py", line 74, in cmd_build
  File "/work/main/packager/passes/quantize.py", line 12, in quantize_static
  File "/x/site-packages/onnxruntime/quantization/quantize.py", line 99, in quantize
KeyError: 'bias'
"""


def test_crash_reasons_name_the_step_and_the_library() -> None:
    r = crash.crash_reason("build", -11, FAULT, False, 60)
    assert r.startswith("build killed by SIGSEGV in torchscript (packager/convert/torch_to_torchscript.py:"
                        "to_torchscript line 109), inside torch/jit/_script.py:save_to_buffer"), r
    r = crash.crash_reason("build", 1, TRACEBACK, False, 60)
    assert "in int8 quantization (packager/passes/quantize.py:quantize_static line 12)" in r, r
    assert "onnxruntime/quantization/quantize.py:quantize" in r and r.endswith("KeyError: 'bias'"), r
    assert crash.crash_reason("build", -6, FAULT, True, 60).startswith("build timed out after 60 s in torchscript")
    assert scoreboard.reason_kind(crash.crash_reason("build", -9, "", False, 60))[0] == "generic"


def test_reason_kinds_and_grouping() -> None:
    kind = scoreboard.reason_kind
    assert kind(None) == ("generic", []) and kind("exit 1")[0] == "generic"
    assert kind("onnx2tf failed: NodeValidationError: Mod with fmod=1 is not supported")[0] == "op"
    assert kind("aten::scaled_dot_product_attention is not supported")[0] == "op"
    assert kind("parity failed (logits: max abs error 1.81 is 16.3% of the range)")[0] == "step"
    assert kind("If you see this, something broke")[0] == "generic"  # an English 'If' is not the op
    n = scoreboard.normalize
    assert n("bert-cls: error 1.81 at /tmp/a/b/c.onnx", "bert-cls") == "MODEL: error N at PATH"
    assert n("Conv2D failed") == "Conv2D failed"


def test_status_mapping_covers_every_candidate_status() -> None:
    from typing import get_args

    from packager.results import CandidateStatus
    assert set(STATUS) == set(get_args(CandidateStatus))
    assert set(STATUS.values()) == RESULTS


def test_every_zoo_model_is_declared_whole() -> None:
    from zoo.models import ENTRIES
    assert len(ENTRIES) >= 30
    assert {e.framework for e in ENTRIES.values()} == {"torch", "tensorflow", "onnx"}
    for e in ENTRIES.values():
        assert e.inputs and e.outputs, e.name
        assert (e.make is None) == (e.framework == "onnx") == (e.base is not None), e.name
        feeds = next(e.samples(4))
        assert set(feeds) == {s["name"] for s in e.inputs}, e.name
        for s in e.inputs:
            assert str(feeds[s["name"]].dtype) == s["dtype"], (e.name, s)
            assert feeds[s["name"]].ndim == len(s["shape"]), (e.name, s)
    assert Path(REPO / "zoo" / "run.py").is_file()
