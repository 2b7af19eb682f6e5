"""Progress output: a live line in a terminal, plain lines in logs, -q/-v, and NO_COLOR."""
from __future__ import annotations

import io
import time

import pytest

from packager.progress import Progress, paint, use_color


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(out)
    with p.step("export"):
        pass
    with pytest.raises(RuntimeError):
        with p.step("simplify"):
            raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  export ... done (") and lines[1].startswith("  simplify ... failed (")
    assert "\r" not in out.getvalue() and "\033" not in out.getvalue()


def test_terminal_gets_a_live_bar_then_the_final_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = Terminal()
    p = Progress(out, interval=0.01)
    with p.step("calibrate", total=4) as step:
        for _ in range(4):
            step.advance()
            time.sleep(0.03)
    text = out.getvalue()
    assert "\r\033[K  calibrate [" in text and "4/4" in text  # redrawn in place, with the bar
    assert text.rstrip().endswith("s)") and "\033[32mdone\033[0m" in text  # coloured in a terminal
    with p.step("export"):  # no size known: a spinner with the elapsed time
        time.sleep(0.05)
    assert any(f"  export {c} " in out.getvalue() for c in "|/-\\")


def test_no_color_and_dumb_terminals_get_no_escape_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = Terminal()
    with Progress(out).step("export"):
        pass
    assert "\033[3" not in out.getvalue() and not use_color(out)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_color(Terminal())
    monkeypatch.setenv("TERM", "xterm")
    assert use_color(Terminal()) and not use_color(io.StringIO())
    assert paint("OK", "ok", False) == "OK" and paint("OK", "ok", True) == "\033[32mOK\033[0m"


def test_quiet_prints_nothing_and_verbose_adds_details() -> None:
    quiet, loud, normal = io.StringIO(), io.StringIO(), io.StringIO()
    for stream, kw in ((quiet, {"quiet": True}), (loud, {"verbose": True}), (normal, {})):
        p = Progress(stream, **kw)
        with p.step("export"):
            p.detail("taken from the cache")
        p.note("target rpi4")
    assert quiet.getvalue() == ""
    assert "taken from the cache" in loud.getvalue() and "taken from the cache" not in normal.getvalue()
    assert "target rpi4" in normal.getvalue()


def test_sample_loops_report_rows_for_the_bar() -> None:
    """The reference-outputs step is sized by its samples: run_samples and metric report how
    many rows each batch held, so the terminal bar ends at exactly the total."""
    from pathlib import Path
    from types import SimpleNamespace
    from typing import Any

    import numpy as np

    from packager.config.manifest import EvaluationSpec
    from packager.inputs.data import EvaluationSet, SampleSet
    from packager.parity import metric, run_samples

    def runner(feeds: dict) -> dict:
        return {"y": np.eye(3, dtype=np.float32)[feeds["x"][:, 0].astype(int) % 3]}

    batched = SampleSet({"x": np.arange(10, dtype=np.float32)[:, None]}, batched=True, source="t")
    seen: list[int] = []
    out = run_samples(runner, batched, batch_size=4, on_rows=seen.append)
    assert seen == [4, 4, 2] and out["y"].shape == (10, 3)
    stacked = SampleSet({"x": np.arange(3, dtype=np.float32)[:, None, None]}, batched=False, source="t")
    seen.clear()
    run_samples(lambda f: {"y": f["x"]}, stacked, on_rows=seen.append)
    assert seen == [1, 1, 1]
    ev = EvaluationSet(feeds=[{"x": np.arange(6, dtype=np.float32)[:, None]}], labels=[np.arange(6) % 3])
    seen.clear()
    manifest: Any = SimpleNamespace(evaluation=EvaluationSpec(entry="d.py:e", output="y"), base_dir=Path("."),
                                    file="m.yaml")
    assert metric(runner, ev, manifest, on_rows=seen.append) == 1.0 and seen == [6]
