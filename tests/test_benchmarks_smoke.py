"""A cheap slice of the benchmarks in ``make test`` (the full suite is ``make bench``): the
process-tree memory sampler, the build-report check, and ``benchmarks/run_all.py --quick`` on its
cheapest parts, into a temp file, with the JSON structure the README is rendered from."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

BENCH = REPO / "benchmarks"

CHILD = """
import subprocess, sys, time
code = "import time; b = bytearray(256 * 2**20); time.sleep(2)"  # long enough for a loaded sampler
subprocess.run([sys.executable, "-c", code], check=True)
"""


FORK = """
import os, time
b = bytearray(256 * 2**20)
if os.fork() == 0:
    time.sleep(2)
    os._exit(0)
os.wait()
"""


@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


def _measure_in_small_process(parent_mib: int) -> dict:
    """measure_tree(CHILD) run from a fresh process holding ``parent_mib`` MiB, as the benchmark
    scripts run it (not from pytest, whose size would hide in the child's ru_maxrss)."""
    code = (f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); import common; "
            f"ballast = bytearray({parent_mib} * 2**20); "
            f"m = common.measure_tree([sys.executable, '-c', {CHILD!r}], interval=0.005); "
            "print(json.dumps({k: v for k, v in m.items() if k not in ('stdout', 'stderr')}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_measure_tree_counts_the_children() -> None:
    m = _measure_in_small_process(0)
    assert m["returncode"] == 0
    assert m["processes"] >= 2
    assert m["peak"] >= 240, m            # the child's 256 MiB, not the parent's few MiB
    assert m["peak_rss"] >= m["peak"] - 1
    assert m["largest_process"] >= 250 and m["hwm_sum"] >= 250
    assert m["missed"] is False, m


def test_missed_peak_check_says_when_it_cannot_tell() -> None:
    """A parent bigger than the measured tree leaves its size in the child's ru_maxrss (Linux
    keeps the pre-exec high-water mark): the check must say 'cannot tell', not 'missed'."""
    m = _measure_in_small_process(600)
    assert m["largest_process"] >= 590 and m["parent_at_spawn"] >= 590, m
    assert m["peak"] < 400, m  # the tree itself is still measured right
    assert m["missed"] is None, m


def test_a_failed_target_fails_the_build_benchmark(bench_modules: None) -> None:
    import builds
    ok = {"ok": True, "targets": [{"target": "x86-cpu", "status": "ok",
                                   "candidates": [{"id": "onnx-fp32", "status": "ok"}]}]}
    builds.check_report(ok, "build")
    for bad in ({**ok, "ok": False},
                {**ok, "targets": [{"target": "rpi4", "status": "failed", "candidates": []}]},
                {**ok, "targets": [{"target": "rpi4", "status": "ok",
                                    "candidates": [{"id": "tflite-fp32", "status": "dropped"}]}]},
                {"ok": True, "targets": []}):
        with pytest.raises(SystemExit, match="not ok"):
            builds.check_report(bad, "build")
    dropped = {**ok, "targets": [{"target": "rpi4", "status": "ok",
                                  "candidates": [{"id": "tflite-int8", "status": "dropped"}]}]}
    builds.check_report(dropped, "build", allowed=("ok", "dropped"))  # the MobileNetV2 builds


def test_measure_tree_counts_a_forked_childs_shared_pages_once(bench_modules: None) -> None:
    import common
    if not common.HAS_PSS:
        pytest.skip("no /proc/PID/smaps_rollup: the figure is summed RSS")
    m = common.measure_tree([sys.executable, "-c", FORK], interval=0.005)
    assert m["returncode"] == 0, m["stderr"]
    assert m["processes"] == 2 and m["measure"] == "PSS"
    assert m["peak_rss"] >= 480, m        # RSS counts the copy-on-write pages twice
    assert 240 <= m["peak"] <= 400, m     # PSS splits them


@pytest.mark.slow
def test_run_all_quick_subset(tmp_path: Path, bench_modules: None) -> None:
    out = tmp_path / "results.json"
    env = dict(os.environ, EDGEPACK_BENCH_DIR=str(tmp_path / "work"))
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "import_time",
                           "--only", "overhead:python_call", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["quick"] is True and doc["machine"]["cores"] >= 1
    assert [d["benchmark"] for d in doc["results"]] == ["overhead", "import"]
    rows = [r for d in doc["results"] for r in d["rows"]]
    assert rows, "no goal row"
    for r in rows:
        assert r["baseline"] and r["ours"] and r["goal"] and isinstance(r["met"], bool), r
    imp = next(r for r in rows if r["key"] == "import")
    assert len(imp["numpy_samples_ms"]) == len(imp["runtime_samples_ms"]) == imp["runs"]
    assert doc["results"][0]["extras"]["python_call"]["ns"] > 0
    import readme_table
    text = readme_table.section(doc)
    assert imp["what"] in text and "`import runtime`" in text


def quick_part(tmp_path: Path, part: str) -> dict:  # type: ignore[type-arg]
    """``run_all.py --quick --only PART`` in a work folder of its own: the results document."""
    out = tmp_path / "results.json"
    env = dict(os.environ, EDGEPACK_BENCH_DIR=str(tmp_path / "work"))
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", part, "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.slow
def test_mixed_int8_benchmark_repairs_the_detection_head(tmp_path: Path, bench_modules: None) -> None:
    """benchmarks/mixed_int8.py on one of its four models: the build's own record of plain int8
    failing and the mixed candidate passing with the Concat kept float, three artifacts timed."""
    doc = quick_part(tmp_path, "mixed:detection")
    [bench] = doc["results"]
    [row] = bench["rows"]
    assert row["key"] == "mixed:detection" and row["met"], row["ours"]
    assert not row["plain_passed"] and row["plain_failures"][0].startswith("scores: ")  # the probabilities
    assert row["mixed_passed"] and len(row["kept_float"]) == 1 and row["float_nodes"] > 10
    assert all(len(v) == 10 and min(v) > 0 for v in row["samples_ms"].values())
    assert row["plain_table"][0]["op_type"] == "Concat"
    import readme_table
    text = readme_table.section(doc)
    assert "int8 that misses parity, repaired" in text and row["kept_float"][0] in text


@pytest.mark.slow
def test_serve_benchmark_times_a_real_server_against_model_run(tmp_path: Path, bench_modules: None) -> None:
    """benchmarks/serve.py's overhead part: a real ``python -m runtime serve`` of the digits bundle,
    timed against Model.run, its answer equal to Model.run's (the figure is timing: not asserted)."""
    [bench] = quick_part(tmp_path, "serve:overhead")["results"]
    [row] = bench["rows"]
    assert row["key"] == "serve_overhead" and row["answer_equals_run"]
    assert len(row["serve_ms"]) == len(row["run_ms"]) == row["rounds"] and min(row["serve_ms"]) > 0


@pytest.mark.slow
def test_serve_swap_under_load_loses_nothing(tmp_path: Path, bench_modules: None) -> None:
    """benchmarks/serve.py's swap part (20 s with --quick): 16 clients, an update uploaded half-way;
    every answer checked against its version's Model.run. These counts are the goal itself, so
    they are asserted: nothing lost, nothing wrong, v2 answered after the swap."""
    [bench] = quick_part(tmp_path, "serve:swap")["results"]
    [row] = bench["rows"]
    assert row["key"] == "serve_swap" and row["met"], row
    assert row["counts"]["lost"] == 0 and row["counts"]["wrong"] == 0 and row["counts"]["after_swap_v1"] == 0
    assert row["by_version"]["1"] > 0 and row["by_version"]["2"] > 0
    assert row["swapped"]["version"] == 2 and row["candidates"]["1"] != row["candidates"]["2"]


@pytest.mark.slow
def test_fleet_benchmark_cache_and_tamper_parts(tmp_path: Path, bench_modules: None) -> None:
    """benchmarks/fleet.py against a real registry: the second machine's build is all remote hits with
    byte-identical bundles, and no tampered blob is accepted (the timing ratio is not asserted)."""
    [bench] = quick_part(tmp_path, "fleet:cache")["results"]
    [row] = bench["rows"]
    assert row["key"] == "fleet_cache" and row["identical"] and row["misses"] == 0 and row["hits"] >= 8
    [bench] = quick_part(tmp_path, "fleet:tamper")["results"]
    [row] = bench["rows"]
    assert row["key"] == "fleet_tamper" and row["tried"] == 10 and row["accepted"] == [] and row["refused"] == 10
