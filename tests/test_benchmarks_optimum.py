"""The Optimum benchmark (benchmarks/optimum_compare.py) in its quickest mode, and
``run_all.py --merge``, which puts one script's results into the committed results file.

The quick run needs the Optimum environment (``make test`` creates it first with
``python benchmarks/optimum_compare.py --setup``, or the run does, about a minute). Where Optimum
cannot be installed or cannot export, the benchmark says why and this test skips with that reason,
which fails it under CI=true (tests/conftest.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO

BENCH = REPO / "benchmarks"


@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


MACHINE = {"cpu": "Some CPU", "cores": 2, "arch": "x86_64", "os": "Linux", "python": "3.11.7",
           "packages": {}}


def _doc(bench: str, figure: float) -> dict[str, Any]:
    return {"benchmark": bench, "rows": [{"key": bench, "figure": figure}], "extras": {}}


def _whole() -> dict[str, Any]:
    return {"machine": MACHINE, "quick": False, "only": [], "note": "", "started": "2026-11-30T05:00:00+00:00",
            "seconds": 1000.0, "results": [_doc(b, 1.0) for b in ("overhead", "cold_start", "import", "builds")]}


def _update(scripts: list[str], **more: Any) -> dict[str, Any]:
    return {"scripts": scripts, "command": "python benchmarks/run_all.py --only x --merge", "quick": False,
            "started": "2026-11-30T09:00:00+00:00", "seconds": 90.0, "machine": MACHINE, "note": "", **more}


def test_merge_adds_a_script_and_keeps_the_others(bench_modules: None) -> None:
    import run_all
    merged = run_all.merge(_whole(), [_doc("optimum", 2.0)], _update(["optimum"]))
    assert [d["benchmark"] for d in merged["results"]] == ["overhead", "cold_start", "import", "builds", "optimum"]
    assert merged["results"][0]["rows"][0]["figure"] == 1.0
    assert merged["started"] == "2026-11-30T05:00:00+00:00" and merged["only"] == []
    assert [u["scripts"] for u in merged["updated"]] == [["optimum"]]
    # a second update of the same script replaces the first one's record and results
    again = run_all.merge(merged, [_doc("optimum", 3.0)], _update(["optimum"], started="2026-12-01T00:00:00+00:00"))
    assert len(again["updated"]) == 1 and again["updated"][0]["started"].startswith("2026-12-01")
    assert again["results"][-1]["rows"][0]["figure"] == 3.0
    # an update of another script keeps the first record and replaces only that script
    other = run_all.merge(again, [_doc("import", 5.0)], _update(["import_time"]))
    assert [u["scripts"] for u in other["updated"]] == [["optimum"], ["import_time"]]
    assert [d["rows"][0]["figure"] for d in other["results"]] == [1.0, 1.0, 5.0, 1.0, 3.0]


@pytest.mark.parametrize("change, message", [
    ({"quick": True}, "--quick"),
    ({"machine": {**MACHINE, "cores": 16}}, "another machine"),
])
def test_merge_refuses_what_does_not_fit(bench_modules: None, change: dict[str, Any], message: str) -> None:
    import run_all
    with pytest.raises(SystemExit, match=message):
        run_all.merge(_whole(), [_doc("optimum", 2.0)], _update(["optimum"], **change))
    with pytest.raises(SystemExit, match="--only run"):
        run_all.merge({**_whole(), "only": ["import_time"]}, [_doc("optimum", 2.0)], _update(["optimum"]))


def test_merge_needs_only_and_an_existing_file(tmp_path: Path) -> None:
    for argv, message in ((["--merge", "--out", str(tmp_path / "r.json")], "needs --only"),
                          (["--merge", "--only", "optimum", "--out", str(tmp_path / "r.json")], "no "),
                          (["--merge", "--only", "overhead:mlp", "--out", str(tmp_path / "r.json")], "whole scripts")):
        proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=120, check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr


@pytest.mark.slow
def test_optimum_compare_quick(tmp_path: Path, bench_modules: None) -> None:
    out = tmp_path / "results.json"
    env = dict(os.environ, EDGEPACK_BENCH_DIR=str(tmp_path / "work"))
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "optimum",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    doc = json.loads(out.read_text(encoding="utf-8"))
    [bench] = doc["results"]
    assert bench["benchmark"] == "optimum" and bench["quick"] is True
    if not bench["optimum"]["available"]:
        pytest.skip(f"Optimum not measured: {bench['optimum']['stage']} failed: {bench['optimum']['reason']}")
    assert [r["key"] for r in bench["rows"]] == ["optimum:fp32", "optimum:int8"]
    for r in bench["rows"]:
        assert r["measured"] is True and r["baseline"] and r["ours"] and isinstance(r["met"], bool), r["what"]
        for side in ("edgepack", "optimum"):
            s = r[side]
            assert s["calls"] == bench["rounds"] * bench["calls"] == sum(len(b) for b in s["samples_ms"])
            assert 0 < s["median_ms"] <= s["p90_ms"]
            parity = r[f"parity_{side}"]
            assert parity["ok"], (side, r["precision"], parity)  # both exports match the PyTorch model
            assert parity["samples"] == bench["model"]["parity_samples"] >= 4
        assert r["ratio"] == pytest.approx(r["edgepack"]["median_ms"] / r["optimum"]["median_ms"], rel=1e-4)
        assert len(r["round_ratios"]) == bench["rounds"]
    assert bench["model"]["same_model_max_abs"] < 1e-5  # Optimum's transformers loads the same weights
    assert bench["edgepack"]["exporter"].startswith("torch.onnx.export")
    graphs = bench["extras"]["optimum_graphs"]["graphs"]
    assert set(graphs) == {"edgepack:fp32", "edgepack:int8", "optimum:fp32", "optimum:int8"}
    for g in graphs.values():
        assert g["nodes_optimized"] > 0 and g["opset"] >= 13
        assert set(g["inputs"]) <= {"input_ids", "attention_mask", "token_type_ids"}
    import readme_table
    text = readme_table.section(doc)
    assert "**Against Optimum**" in text and bench["rows"][0]["what"] in text
