"""README.md's Model coverage section is what ``zoo/readme_table.py`` renders from the committed
``zoo/results.json`` (what ``make zoo`` wrote), and that file is a whole zoo run whose summary
follows from its own cells: no zoo model is built here.

After ``make zoo``: ``python zoo/readme_table.py --write README.md``.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from zoo import readme_table, scoreboard

from .conftest import REPO, readme_section

RESULTS = REPO / "zoo" / "results.json"
FIX = "run `make zoo`, then `python zoo/readme_table.py --write README.md`"


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    assert RESULTS.is_file(), f"no committed zoo/results.json: {FIX}"
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def coverage_section() -> str:
    return readme_section("Model coverage")


def test_section_is_rendered_from_the_committed_results(results: dict[str, Any]) -> None:
    section = coverage_section()
    assert section.startswith("<!-- zoo:begin") and section.endswith(readme_table.END), \
        "the whole Model coverage section must sit between the zoo:begin/zoo:end markers"
    assert section == readme_table.block(results), f"README.md's Model coverage section differs from the results: {FIX}"


def test_committed_results_are_a_whole_run(results: dict[str, Any]) -> None:
    """Every zoo model, every shipped target, no --only/--quick; each model has a cell per target
    candidate with a status, and the stored summary is what its cells give."""
    from zoo.models import ENTRIES
    opts = results["options"]
    assert not opts["only"] and not opts["quick"], "the committed results come from a partial or --quick run"
    assert opts["targets"] == ["x86-cpu", "rpi4", "rpi5"]
    assert [m["name"] for m in results["models"]] == list(ENTRIES), "zoo/models changed since the run: " + FIX
    assert len(results["models"]) >= 30
    for m in results["models"]:
        assert {c["target"] for c in m["cells"]} == set(opts["targets"]), m["name"]
        assert all(c["status"] in scoreboard.RESULTS for c in m["cells"]), m["name"]
        assert all(c["reason"] for c in m["cells"] if c["status"] != "ok"), m["name"]
        assert m["seconds"]["total"] > 0
    assert results["summary"] == json.loads(json.dumps(scoreboard.summarize(results)))
    assert results["machine"]["cores"] and results["versions"].get("torch")
