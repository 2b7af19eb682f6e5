"""HTML reports (runtime.report, and the build report of packager.report.html) rendered by a real headless Chromium.

The build report comes from a real build (the tiny torch model, one target that falls back from
a failing int8 candidate and one that fails outright); the device reports from
``python -m runtime verify/bench --report`` on a test bundle. Chromium's DOM is what is checked:
what a person opening the file sees, not the string we wrote.

Chromium: ``bash scripts/ensure-chromium.sh`` installs it (``make test`` runs it first). Without
it these tests fail under CI (CI=true) and are skipped elsewhere.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from packager.report.html import render_build_report
from runtime.report.charts import histogram_svg
from runtime.report.device import render_device_report

from ...conftest import TINY_MODEL, tiny_manifest

REPO = Path(__file__).resolve().parents[3]
URL = re.compile(r"https?://", re.IGNORECASE)


# --------------------------------------------------------------------------- chromium

def chromium() -> str:
    """The headless browser; fails under CI when missing, skips elsewhere."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail("chromium is not installed and CI=true: the HTML report tests need it "
                    "(run `bash scripts/ensure-chromium.sh`, which `make test` does)")
    pytest.skip("chromium is not installed; `bash scripts/ensure-chromium.sh` installs it "
                "(as root, with apt-get)")


def _browser(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{cmd}\n{proc.stderr[-3000:]}"
    return proc


def dump_dom(page: Path, profile: Path) -> Node:
    proc = _browser(["--dump-dom", page.resolve().as_uri()], profile)
    assert "<html" in proc.stdout, proc.stderr[-3000:]
    return parse(proc.stdout)


def screenshot(page: Path, png: Path, profile: Path) -> tuple[int, int]:
    """Render ``page`` into ``png`` (1200x2000); returns its size. With EDGEPACK_SCREENSHOT_DIR
    set, a copy is kept there for a person to look at."""
    _browser([f"--screenshot={png}", "--window-size=1200,2000", "--hide-scrollbars",
              page.resolve().as_uri()], profile)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert len(data) > 20_000, "the screenshot is (nearly) blank"
    keep = os.environ.get("EDGEPACK_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    return width, height


# --------------------------------------------------------------------------- a tiny DOM

class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self) -> Iterator[Node]:
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [n for n in self.iter()
                if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one {tag}.{cls} {attrs}, found {len(found)}"
        return found[0]


_VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "area", "base", "col"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", {}, None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        if self.cur.tag not in ("style", "title") or self.cur.parent is None or \
                self.cur.parent.tag != "head":
            self.cur.children.append(data)


def parse(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


def bars(node: Node) -> list[Node]:
    return [r for r in node.find_all("rect") if "bar" in r.classes]


# --------------------------------------------------------------------------- a real build

STRICT_TARGET = """\
name: strict-cpu
description: x86-64 CPU without precision fallback (test)
arch: x86_64
python: "3.11"
threads: 1
precision_fallback: false
candidates:
  - format: onnx
    precision: int8
    quantization: {mode: static, per_channel: true}
    providers: [CPUExecutionProvider]
  - format: onnx
    precision: fp32
    providers: [CPUExecutionProvider]
requirements:
  common: [numpy==2.2.6]
  onnxruntime: [onnxruntime==1.22.1]
"""


@pytest.fixture(scope="module")
def build_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The build JSON of a real build: the int8 tolerance is set too tight for int8 to pass, so
    x86-cpu drops it and falls back to fp32, and strict-cpu (no fallback) FAILS."""
    root = tmp_path_factory.mktemp("report-build")
    (root / "tiny.py").write_text(TINY_MODEL)
    (root / "strict-cpu.yaml").write_text(STRICT_TARGET)
    manifest = tiny_manifest(root, targets=["x86-cpu", "strict-cpu.yaml"],
                             tolerances={"int8": {"min_cosine": 0.9999999}})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run([sys.executable, "-m", "packager", "build", str(manifest),
                           "--out", str(root / "out")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode != 0, "strict-cpu should fail the build"
    report = root / "out" / "tiny.build.json"
    assert report.is_file(), proc.stdout + proc.stderr
    return json.loads(report.read_text())


@pytest.mark.slow
def test_build_report_in_chromium(build_doc: dict[str, Any], tmp_path: Path) -> None:
    doc = build_doc
    by_target = {t["target"]: t for t in doc["targets"]}
    assert by_target["x86-cpu"]["status"] == "ok" and by_target["strict-cpu"]["status"] == "failed"

    text = render_build_report(doc)
    assert not URL.search(text), "the report must not reference anything over the network"
    assert "<script" not in text.lower()
    page = tmp_path / "report.html"
    page.write_text(text, encoding="utf-8")
    dom = dump_dom(page, tmp_path / "profile")

    h1 = dom.one("h1").text()
    assert "tiny" in h1 and "FAILED" in h1
    assert "tiny.yaml" in dom.one("p", "sub").text()
    assert "no evaluation data" in dom.text()  # no evaluation set: accuracy is not invented

    for t in doc["targets"]:
        section = dom.one("section", data_target=t["target"])
        assert ("FAILED" if t["status"] == "failed" else "OK") in section.one("h2").text()
        for c in t["candidates"]:
            card = section.one("section", data_candidate=c["id"])
            assert card.attrs["data-status"] == c["status"]
            outputs = (c.get("parity") or {}).get("outputs") or []
            assert outputs, c
            for o in outputs:
                block = card.one("div", "output", data_output=o["name"])
                stats = block.one("table", "stats").text()
                assert format(o["max_abs"], ".3g") in stats
                assert format(o["cosine"], ".6f") in stats
                hist = o["error_histogram"]
                svg = block.one("svg", "hist")
                assert len(bars(svg)) == len(hist["counts"]) + 1  # + the bar of exact zeros
                assert len(svg.find_all("rect", "zero")) == 1
                for f in o["failures"]:
                    assert f in block.text()
            if c.get("size") is not None:
                assert f"{c['size'] / 1024:.1f} KB" in card.text()

    # x86-cpu: int8 failed parity, was dropped, and the target fell back to fp32
    x86 = dom.one("section", data_target="x86-cpu")
    int8 = x86.one("section", data_candidate="onnx-int8-static-pc")
    assert "DROPPED" in int8.one("h3").text()
    parity_h4, explained_h4 = int8.find_all("h4")
    assert "FAIL" in parity_h4.text()
    assert "where the error starts" in explained_h4.text()  # the per-node table of the failed int8
    assert "fell back to onnx-fp32" in int8.text()
    fallback_rows = [tr.text() for tr in x86.find_all("tr") if "fell back" not in tr.text()
                     and "onnx-int8-static-pc" in tr.text() and "parity failed" in tr.text()]
    assert fallback_rows and "onnx-fp32" in fallback_rows[0]
    fp32 = x86.one("section", data_candidate="onnx-fp32")
    assert "OK" in fp32.one("h3").text() and "PASS" in fp32.one("h4").text()
    # the summary row shows the host latency (and for int8 its speed against fp32)
    int8_row = next(tr for tr in x86.one("table", "summary").find_all("tr") if "onnx-int8-static-pc" in tr.text())
    c8 = next(c for c in by_target["x86-cpu"]["candidates"] if c["id"] == "onnx-int8-static-pc")
    assert format(c8["host_latency_ms"], ".3f") in int8_row.text()
    if c8["speedup_vs_fp32"] is not None:
        assert f"{c8['speedup_vs_fp32']:.2f}\u00d7" in int8_row.text()

    # strict-cpu: no fallback allowed, so the target failed and says why
    strict = dom.one("section", data_target="strict-cpu")
    assert "FAILED" in strict.one("h2").text()
    assert "parity failed for onnx-int8-static-pc" in strict.text()
    assert "PARITY FAILED" in strict.one("section", data_candidate="onnx-int8-static-pc").one("h3").text()
    assert "none written" in strict.text()

    # provenance: steps, the exporter, the cache
    prov = dom.one("section", id="provenance").text()
    for step in doc["steps"]:
        assert step["step"] in prov
    assert "torch.onnx.export" in prov
    assert "hit(s)" in prov or "disabled" in prov

    width, height = screenshot(page, tmp_path / "build-report.png", tmp_path / "profile")
    assert (width, height) == (1200, 2000)


# --------------------------------------------------------------------------- device reports

def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def test_verify_report_in_chromium(bundle_factory: Callable[..., Path], kit: types.ModuleType,
                                   tmp_path: Path) -> None:
    # golden y shifted by 0.5: every y element is 0.5 off, far beyond atol 1e-4
    root = bundle_factory(perturb=0.5, candidates=[kit.candidate("onnx-fp32"),
                                                   kit.candidate("cuda-only", providers=[
                                                       "CUDAExecutionProvider"])])
    page = tmp_path / "out" / "verify.html"
    page.parent.mkdir()
    proc = cli("verify", "--all", "--json", "--report", str(page), str(root))
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)  # --json still prints exactly one document
    assert doc["passed"] is False and doc["bundle"] == "tiny"
    assert sorted(p.name for p in page.parent.iterdir()) == ["verify.html"]  # no temp file left
    text = page.read_text(encoding="utf-8")
    assert not URL.search(text)

    dom = dump_dom(page, tmp_path / "profile")
    assert "FAIL" in dom.one("h1").text() and "tiny" in dom.one("h1").text()
    card = dom.one("section", data_candidate="onnx-fp32")
    assert "FAIL" in card.one("h3").text()
    y_doc = next(o for o in doc["candidates"][0]["outputs"] if o["name"] == "y")
    y = card.one("div", "output", data_output="y")
    assert "FAIL" in y.one("h5").text()
    assert format(y_doc["max_abs"], ".3g") == "0.5" and "0.5" in y.one("table", "stats").text()
    assert "element(s) exceed atol=0.0001" in y.text()
    assert len(bars(y)) == len(y_doc["error_histogram"]["counts"]) + 1
    assert "atol 0.0001 is below every nonzero error" in y.one("svg", "hist").text()
    label = card.one("div", "output", data_output="label")
    assert "PASS" in label.one("h5").text() and len(bars(label)) == 1  # all exact: only zeros
    # the candidate that could not load is listed with its reason
    selection = "\n".join(tr.text() for tr in dom.find_all("tr"))
    assert re.search(r"cuda-only .*CUDAExecutionProvider not available", selection)
    assert re.search(r"onnx-fp32\s+LOADS", selection)  # --all: each loaded alone, none "selected"
    assert "which candidates load here (--all)" in dom.text() and doc["mode"] == "all"

    proc = cli("verify", "--report", str(tmp_path / "text.html"), str(root))
    assert proc.returncode == 1 and f"wrote {tmp_path / 'text.html'}" in proc.stdout
    screenshot(page, tmp_path / "verify-report.png", tmp_path / "profile")


def test_bench_report_in_chromium(bundle_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "bench.html"
    proc = cli("bench", "--runs", "20", "--warmup", "2", "--json", "--report", str(page),
               str(bundle_dir))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert not URL.search(page.read_text(encoding="utf-8"))
    dom = dump_dom(page, tmp_path / "profile")
    assert "OK" in dom.one("h1").text()
    body = dom.text()
    assert "onnx-fp32" in body and "CPUExecutionProvider" in body
    latency = dom.one("table", "latency").text()
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        assert f"{doc[key]:.3f} ms" in latency
    assert f"{doc['inferences_per_s']:.1f}" in body
    assert len(dom.one("svg", "bars").find_all("rect")) == 6
    screenshot(page, tmp_path / "bench-report.png", tmp_path / "profile")


def test_error_report_and_bad_report_path(tmp_path: Path) -> None:
    page = tmp_path / "err.html"
    proc = cli("verify", "--json", "--report", str(page), str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["ok"] is False
    text = page.read_text(encoding="utf-8")
    assert "ERROR" in text and "no such file or directory" in text

    proc = cli("bench", "--json", "--report", str(tmp_path / "nowhere" / "b.html"), str(tmp_path))
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)  # one document: the error, nothing before it
    assert doc["where"].startswith("--report") and not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------- no browser needed

def test_histogram_svg_bars_and_labels() -> None:
    hist = {"scale": "log10", "edges": [10.0 ** (-3 + i * 0.15) for i in range(21)],
            "counts": [2] + [0] * 18 + [5], "zeros": 1, "total": 8}
    svg = parse(histogram_svg(hist, atol=1e-2))
    rects = bars(svg)
    assert len(rects) == 21 and "zero" in rects[0].classes
    tips = [r.text() for r in rects]
    assert tips[0] == "exactly 0: 1 (12.5%)" and tips[-1].endswith(": 5 (62.5%)")
    heights = [float(r.attrs["height"]) for r in rects]
    assert heights[-1] > heights[1] > heights[0] > 0 and heights[2] == 0
    labels = [t.text() for t in svg.find_all("text")]
    assert labels[-6:-2] == ["1e-3", "0.01", "0.1", "1"]  # a tick at every decade
    assert svg.find_all("line", "tol") and labels[-1].startswith("|candidate")
    assert "atol 10 \u25b6" in histogram_svg(hist, atol=10.0)
    only_zeros = parse(histogram_svg({"edges": [], "counts": [], "zeros": 4, "total": 4}))
    assert len(bars(only_zeros)) == 1 and "all errors are exactly 0" in only_zeros.text()
    assert "no error histogram" in histogram_svg(None)


def test_build_report_survives_missing_fields_and_escapes() -> None:
    nasty = "<script>alert(1)</script> & \"quotes\""
    doc = {
        "name": nasty, "manifest": None, "ok": False, "warnings": [nasty, None],
        "reference_accuracy": None, "golden": None, "steps": [{"step": "export", "details": None,
                                                                "notes": ["exporter fell back: " + nasty]}],
        "cache": None, "parallel": None,
        "targets": [
            {"target": "broken", "status": "failed", "bundle_dir": None, "archive": None,
             "message": "no candidate could be built", "fallbacks": None,
             "candidates": [
                 {"id": "tflite-int8", "format": "tflite", "precision": "int8", "status": "unsupported",
                  "file": None, "size": None, "parity": None, "accuracy": None, "host_latency_ms": None,
                  "message": "no TFLite route for torch: " + nasty, "notes": None, "cached": False,
                  "speedup_vs_fp32": None},
                 {"id": "onnx-fp32", "status": "failed", "message": "export failed", "parity": {}},
                 {"id": "odd", "status": "ok", "parity": {"passed": True, "outputs": [
                     {"name": "y", "passed": True, "max_abs": None, "error_histogram": None},
                     {"name": "z", "passed": False, "failures": ["bad"], "max_abs": float("nan"),
                      "error_histogram": {"edges": [1, 2], "counts": [1, 2, 3]}}]}}]},
            {"target": "bare"}, None, "junk"],
    }
    text = render_build_report(doc)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for needle in ("FAILED", "UNSUPPORTED", "no TFLite route for torch", "no candidate could be built",
                   "no parity: the candidate was not built", "no error histogram recorded",
                   "exporter fell back", "no evaluation data"):
        assert needle in text, needle
    assert render_build_report({}).startswith("<!DOCTYPE html>")
    for kind in ("verify", "bench"):
        assert "ERROR" in render_device_report(kind, {"ok": False, "error": "x", "message": nasty})
        assert render_device_report(kind, {}).startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="unknown report kind"):
        render_device_report("doctor", {})


def test_missing_chromium_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed and CI=true"):
        chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="ensure-chromium.sh"):
        chromium()


def test_ensure_chromium_script_is_idempotent_when_present(tmp_path: Path) -> None:
    script = REPO / "scripts" / "ensure-chromium.sh"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "chromium").write_text("#!/bin/sh\necho 'Chromium 1.2.3'\n")
    (fake / "chromium").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:/usr/bin:/bin")
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "already installed" in proc.stdout and "Chromium 1.2.3" in proc.stdout
    assert proc.stderr.strip() == ""
