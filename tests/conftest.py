"""Shared fixtures: small real models and manifests written into a temp folder; and the CI rule:
under CI=true nothing skips (a test lacking a capability fails with the reason)."""
from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


# -- the CI rule: a skip under CI=true is a failure ------------------------------------------------

def ci_mode() -> bool:
    """CI=true (or 1, yes): the run must prove everything, so a skip would hide a missing capability."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_reason(longrepr: Any) -> str:
    """The reason of a skipped report (pytest keeps it as (path, line, 'Skipped: reason'))."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, message = longrepr
        return f"{str(message).removeprefix('Skipped: ')} ({path}:{line})"
    return str(longrepr)


class SkippedUnderCI(pytest.Item):
    """Stands for a whole module skipped while it was collected (a module-level importorskip or
    pytest.skip(allow_module_level=True)): under CI it fails with the reason, and the run goes on."""

    def __init__(self, *, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self) -> None:
        pytest.fail(f"skipped under CI=true: {self.reason}", pytrace=False)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


class CIPolicy:
    """Under CI=true a test that would be skipped (pytest.skip, skipif, importorskip, at setup, in
    the test or while collecting its module) FAILS, the skip reason in the failure. Elsewhere skips
    stay skips, and pytest's summary (-ra in pyproject's addopts) lists them with their reasons.
    Registered below; tests/test_ci_policy.py runs it on small test files with pytester."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.skipped and not hasattr(report, "wasxfail") and ci_mode():
            report.outcome = "failed"
            report.longrepr = f"skipped under CI=true: {skip_reason(report.longrepr)}"
            report.user_properties.append(("skipped_under_ci", True))
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_make_collect_report(self, collector: pytest.Collector
                                   ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if report.skipped and ci_mode():
            reason = skip_reason(report.longrepr)
            report.outcome = "passed"
            report.longrepr = None
            report.result = [SkippedUnderCI.from_parent(collector, name="module-skipped", reason=reason)]
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        # a skip at setup (skipif, a fixture's skip) would otherwise show as ERROR: it is a FAILED test
        if report.failed and ("skipped_under_ci", True) in getattr(report, "user_properties", ()):
            return "failed", "F", "FAILED"
        return None


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CIPolicy(), "edgepack-ci-policy")

TINY_MODEL = '''
import numpy as np
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def build(seed=0):
    torch.manual_seed(seed)
    return Tiny().eval()


def samples(n=64):
    rng = np.random.default_rng(1)
    # "real" data for the tiny model: smooth blobs, not white noise
    base = rng.random((n, 1, 1, 1)).astype(np.float32)
    grid = np.linspace(0, 1, 4, dtype=np.float32)
    x = base * grid[None, None, :, None] + (1 - base) * grid[None, None, None, :]
    yield {"x": x.astype(np.float32)}


def single_samples(n=20):
    """The same data one sample per feed, for a model with a fixed batch of 1."""
    for batch in samples(n):
        for i in range(len(batch["x"])):
            yield {"x": batch["x"][i:i + 1]}
'''


def tiny_manifest(folder: Path, **overrides: Any) -> Path:
    """Write the tiny model's manifest into ``folder`` (an override of None removes that key)."""
    doc: dict[str, Any] = {
        "name": "tiny",
        "source": {"framework": "torch", "entry": "tiny.py:build"},
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 4, 4]}],
        "outputs": ["scores"],
        "calibration": {"entry": "tiny.py:samples", "samples": 64},
        "golden": {"samples": 16},
        "targets": ["x86-cpu"],
    }
    for key, value in overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def tiny_project(tmp_path: Path) -> Callable[..., Path]:
    """Write the tiny torch model and a manifest; returns a function giving the manifest path."""
    (tmp_path / "tiny.py").write_text(TINY_MODEL)
    return lambda **overrides: tiny_manifest(tmp_path, **overrides)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Generator[Any, None, None]:
    """A real registry (Debian's docker-registry, TLS and basic auth) for one test module."""
    from .registry_server import RegistryServer
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def side_env_python(name: str) -> Path:
    """The Python of a tool's own environment (scripts/side_env.py: kserve, model-signing); the test
    is skipped (a failure under CI=true) when it was not created."""
    import sys
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from side_env import python_path
    finally:
        sys.path.pop(0)
    python = python_path(name)
    if python is None:
        pytest.skip(f"the {name} environment is missing: python scripts/side_env.py {name} creates it")
    return python


def readme_section(title: str) -> str:
    """The text of README.md's ``## title`` section, up to the next ``## `` heading, stripped."""
    import re
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert m, f"README.md has no '## {title}' section"
    return m[1].strip()


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


DICT_MODEL = '''
import torch
from torch import nn


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        return {"probs": torch.softmax(logits, -1), "logits": logits}


def build():
    torch.manual_seed(0)
    return TwoHeads().eval()
'''


def build_example(out: Path, train_script: str, manifest: str) -> Path:
    """Train a shipped example (skipped when its weights exist) and build its manifest into ``out``."""
    import subprocess
    import sys
    subprocess.run([sys.executable, train_script], cwd=REPO, check=True, timeout=600)
    proc = subprocess.run([sys.executable, "-m", "packager", "build", manifest, "--out", str(out), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


@pytest.fixture(scope="session", autouse=True)
def _build_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """CLI builds in tests use a cache of their own, never the user's ~/.cache/edgepack."""
    import os
    os.environ["EDGEPACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgepack-cache"))


LABELS = "circle\nsquare\ntriangle\nstar\nline\n"  # the tiny model's 5 classes


def write_images(folder: Path, n: int = 40) -> list[Path]:
    """Grey 16x16 PNGs of smooth blobs (the tiny model's kind of data), enlarged from 4x4, and one
    file that is not an image (left out of the data)."""
    from PIL import Image
    folder.mkdir()
    rng = np.random.default_rng(3)
    grid = np.linspace(0, 1, 4)
    paths = []
    for i in range(n):
        a = rng.random()
        small = a * grid[:, None] + (1 - a) * grid[None, :]
        pixels = np.kron(np.rint(small * 255).astype(np.uint8), np.ones((4, 4), np.uint8))
        paths.append(folder / f"img{i:02d}.png")
        Image.fromarray(pixels).save(paths[-1])
    (folder / "notes.txt").write_text("not an image: left out")
    return paths


def image_manifest(tiny_project: Callable[..., Path], folder: Path) -> Callable[..., Path]:
    """The tiny model fed from images (folder/imgs, 40 PNGs) with softmax + top-2 labels; returns a
    function giving the manifest path (keyword arguments override manifest keys)."""
    write_images(folder / "imgs")
    (folder / "labels.txt").write_text(LABELS)

    def manifest(**overrides: Any) -> Path:
        doc: dict[str, Any] = {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 4, 4], "layout": "NCHW",
                        "preprocess": {"decode": "image", "color": "L", "resize": [4, 4], "interpolation": "box"}}],
            "outputs": [{"name": "scores", "postprocess": {"softmax": True, "top_k": 2, "labels": "labels.txt"}}],
            "calibration": {"images": "imgs", "samples": 40},
            "golden": {"samples": 8}}
        doc.update(overrides)
        return tiny_project(**doc)
    return manifest
