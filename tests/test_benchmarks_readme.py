"""README.md's Benchmarks section is what ``benchmarks/readme_table.py`` renders from the
committed ``benchmarks/results.json`` (what ``make bench`` wrote): no benchmark runs here.

After ``make bench``: ``python benchmarks/readme_table.py --write README.md``.
"""
from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest

from .conftest import REPO, readme_section

RESULTS = REPO / "benchmarks" / "results.json"
FIX = "run `make bench`, then `python benchmarks/readme_table.py --write README.md`"


def readme_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_table", REPO / "benchmarks" / "readme_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"no committed benchmarks/results.json: {FIX}"
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def benchmarks_section() -> str:
    return readme_section("Benchmarks")


def test_section_is_rendered_from_the_committed_results(results: dict) -> None:
    rt = readme_table()
    section = benchmarks_section()
    assert section.startswith("<!-- bench:begin") and section.endswith(rt.END), \
        "the whole Benchmarks section must sit between the bench:begin/bench:end markers"
    assert section == rt.block(results), f"README.md's Benchmarks section differs from the results: {FIX}"


def test_committed_results_are_a_whole_run(results: dict) -> None:
    """Every script ran (a whole run, not an --only subset, where single scripts may have been
    re-run since with --merge), every goal row has its baseline beside ours."""
    assert not results.get("only"), "the committed results come from an --only subset"
    assert not results.get("quick"), "the committed results come from a --quick run"
    names = {d["benchmark"] for d in results["results"]}
    assert names == {"overhead", "cold_start", "import", "builds", "optimum", "mixed_int8", "serve", "fleet"}
    for update in results.get("updated", []):
        assert update["scripts"] and not update["quick"], update
        scripts = ("overhead", "cold_start", "import_time", "builds", "optimum", "mixed", "serve", "fleet")
        assert all(s in scripts for s in update["scripts"])
        assert update["machine"]["cpu"] == results["machine"]["cpu"]
    rows = [r for d in results["results"] for r in d["rows"]]
    assert len(rows) >= 10
    for r in rows:
        assert r["baseline"] and r["ours"] and r["goal"] and isinstance(r["met"], bool), r["what"]
    extras = {k for d in results["results"] for k in d["extras"]}
    assert {"python_call", "threads", "run_into", "parallel"} <= extras
    readme_table().section(results, strict=True)  # every sentence of the prose has its figures
