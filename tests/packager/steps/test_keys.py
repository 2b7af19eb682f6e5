"""The one key rule: a step's output key changes with its input's key, its config and its tools,
and with edgepack's own code (a fix in a checkout is another key), and with nothing else."""
from __future__ import annotations

import pytest

from packager.steps import step_key


def test_key_follows_input_config_and_tools() -> None:
    base = step_key("fp16", "in", {"a": 1, "b": [1, 2]}, {"onnx": "1.0"})
    assert base == step_key("fp16", "in", {"b": [1, 2], "a": 1}, {"onnx": "1.0"})  # dict order does not matter
    assert len(base) == 64 and int(base, 16) >= 0
    others = {step_key("fp16", "other", {"a": 1, "b": [1, 2]}, {"onnx": "1.0"}),
              step_key("fp16", "in", {"a": 2, "b": [1, 2]}, {"onnx": "1.0"}),
              step_key("fp16", "in", {"a": 1, "b": [1, 2]}, {"onnx": "1.1"}),
              step_key("int8-dynamic", "in", {"a": 1, "b": [1, 2]}, {"onnx": "1.0"}),
              step_key("fp16", None, {"a": 1, "b": [1, 2]}, {"onnx": "1.0"})}
    assert base not in others and len(others) == 5


def test_tool_names_are_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"onnx": "1.0", "onnxsim": "0.4"}
    monkeypatch.setattr("packager.steps.keys.installed_versions", lambda *names: {n: versions[n] for n in names})
    looked_up = step_key("simplify", "in", {}, ("onnxsim", "onnx", "onnx"))
    assert looked_up == step_key("simplify", "in", {}, {"onnx": "1.0", "onnxsim": "0.4"})
    versions["onnxsim"] = "0.5"  # a tool upgrade is another key: never a stale hit
    assert step_key("simplify", "in", {}, ("onnxsim", "onnx")) != looked_up


def test_edgepack_code_is_part_of_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = step_key("int8-static", "in", {}, {"onnxruntime": "1.0"})
    monkeypatch.setattr("packager.steps.keys.code_hash", lambda: "a-fixed-pass")
    assert step_key("int8-static", "in", {}, {"onnxruntime": "1.0"}) != before
