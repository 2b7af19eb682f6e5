"""The build cache: a rebuild reuses every step and gives the same bytes; any changed input re-runs
the steps it feeds; a damaged or torn entry is rebuilt, not trusted; the size limit evicts; a write
the filesystem refuses is recorded, not raised (the build goes on: see test_io_faults)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from packager import cache as cache_module
from packager.cache import BuildCache
from packager.pipeline import build
from runtime.bundle import open_bundle

from ..conftest import write_yaml

pytestmark = pytest.mark.slow


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(manifest: Path, out: Path, root: Path, **kw: object) -> BuildCache:
    cache = BuildCache(root, **kw)  # type: ignore[arg-type]
    result = build(manifest, out, cache=cache)
    assert result.ok, [c.message for t in result.targets for c in t.candidates]
    return cache


def test_rebuild_hits_everything_and_gives_the_same_bytes(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    manifest = tiny_project()
    cold = run(manifest, tmp_path / "a", tmp_path / "cache")
    assert cold.hits == [] and cold.misses
    warm = run(manifest, tmp_path / "b", tmp_path / "cache")
    assert warm.misses == [] and len(warm.hits) == len(cold.misses)
    assert sha(tmp_path / "a" / "tiny-x86-cpu.tar.gz") == sha(tmp_path / "b" / "tiny-x86-cpu.tar.gz")
    entries = sorted((tmp_path / "cache").glob("??/*"))
    off = run(manifest, tmp_path / "c", tmp_path / "off-cache", enabled=False)
    assert off.hits == off.misses == [] and not (tmp_path / "off-cache").exists()
    assert sorted((tmp_path / "cache").glob("??/*")) == entries


def misses_after(change: Callable[[], Path], tmp_path: Path, baseline: Path) -> list[str]:
    run(baseline, tmp_path / "base", tmp_path / "cache")
    return run(change(), tmp_path / "changed", tmp_path / "cache").misses


def test_changed_weights_rerun_everything(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    manifest = tiny_project()
    misses = misses_after(lambda: tiny_project(source={"framework": "torch", "entry": "tiny.py:build",
                                                       "kwargs": {"seed": 1}}), tmp_path, manifest)
    assert "onnx base model" in misses and any(m.startswith("artifact") for m in misses)


def test_changed_code_with_the_same_weights_reruns(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    manifest = tiny_project()
    run(manifest, tmp_path / "base", tmp_path / "cache")
    code = (tmp_path / "tiny.py").read_text()
    (tmp_path / "tiny.py").write_text(code.replace("torch.relu(self.conv(x))", "torch.sigmoid(self.conv(x))"))
    misses = run(tiny_project(), tmp_path / "changed", tmp_path / "cache").misses
    assert "onnx base model" in misses, "a new forward() must not reuse the old export"


def test_changed_manifest_field_reruns(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    misses = misses_after(lambda: tiny_project(calibration={"entry": "tiny.py:samples", "samples": 48}),
                          tmp_path, tiny_project())
    assert "artifact onnx-int8-static-pc" in misses  # calibrated on other samples
    # golden samples are drawn from the calibration data here, and the export checks the torch
    # exporters against the model on them (exporter: auto): the base model follows the data
    assert "onnx base model" in misses


def test_changed_target_reruns_only_what_differs(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    target = write_yaml(tmp_path / "dev.yaml", """\
        name: dev
        arch: x86_64
        python: "3.11"
        candidates:
          - {format: onnx, precision: int8, quantization: {mode: static, per_channel: false}}
          - {format: onnx, precision: fp32}
        requirements: [numpy==2.2.6, onnxruntime==1.22.1]
        """)
    misses = misses_after(lambda: tiny_project(targets=[str(target)]), tmp_path, tiny_project())
    assert misses == ["artifact onnx-int8-static", "check onnx-int8-static"]


def test_changed_tool_version_reruns(tiny_project: Callable[..., Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tiny_project()
    run(manifest, tmp_path / "base", tmp_path / "cache")
    real = cache_module.tool_versions

    def newer_onnxsim(*names: str) -> dict[str, str]:
        return {k: ("99.0" if k == "onnxsim" else v) for k, v in real(*names).items()}
    monkeypatch.setattr("packager.steps.keys.installed_versions", newer_onnxsim)
    assert "onnx base model" in run(manifest, tmp_path / "changed", tmp_path / "cache").misses


def test_damaged_entry_is_rebuilt(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    manifest = tiny_project()
    run(manifest, tmp_path / "a", tmp_path / "cache")
    for blob in (tmp_path / "cache").glob("??/*/artifact"):
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
    again = run(manifest, tmp_path / "b", tmp_path / "cache")
    assert any(m.startswith("artifact") for m in again.misses)
    for model in ("tiny.fp32.onnx", "tiny.int8-static-pc.onnx"):  # rebuilt, not the damaged bytes
        assert sha(tmp_path / "a" / "tiny-x86-cpu" / "models" / model) == \
            sha(tmp_path / "b" / "tiny-x86-cpu" / "models" / model)
    open_bundle(tmp_path / "b" / "tiny-x86-cpu").verify()


def test_size_limit_evicts_least_recently_used(tiny_project: Callable[..., Path], tmp_path: Path) -> None:
    run(tiny_project(), tmp_path / "a", tmp_path / "cache", max_bytes=20_000)
    total = sum(f.stat().st_size for f in (tmp_path / "cache").rglob("*") if f.is_file())
    assert total <= 20_000


def test_torn_entries_and_temp_folders_of_killed_builds_are_cleared(tmp_path: Path) -> None:
    """An entry missing meta.json or a blob (an older edgepack killed while deleting it) is removed
    and stored again; the temp folders of dead processes go at the next write, a live one's stay."""
    from packager.cache import Entry
    cache = BuildCache(tmp_path)
    cache.put("ab" * 32, Entry({"x": 1}, {"blob": b"data"}))
    cache.put("cd" * 32, Entry({"x": 2}, {"blob": b"more"}))
    (tmp_path / "ab" / ("ab" * 32) / "meta.json").unlink()
    (tmp_path / "cd" / ("cd" * 32) / "blob").unlink()
    assert cache.peek("ab" * 32) is None and cache.peek("cd" * 32) is None
    assert not (tmp_path / "ab" / ("ab" * 32)).exists() and not (tmp_path / "cd" / ("cd" * 32)).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for name in (f".put-pid{dead}-x", f".trash-pid{dead}-y", f".put-pid{os.getpid()}-z"):
        (tmp_path / name).mkdir()
    fresh = BuildCache(tmp_path)
    fresh.put("ab" * 32, Entry({"x": 1}, {"blob": b"data"}))
    assert fresh.peek("ab" * 32) == Entry({"x": 1}, {"blob": b"data"})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [f".put-pid{os.getpid()}-z"]


def test_a_refused_cache_write_is_recorded_once_not_raised(tmp_path: Path) -> None:
    from packager.cache import Entry
    (tmp_path / "file").write_text("not a folder")
    cache = BuildCache(tmp_path / "file" / "cache")  # every write fails: ENOTDIR
    cache.put("ab" * 32, Entry({"x": 1}, {"blob": b"data"}))
    first = cache.write_error
    assert first and first.startswith("build cache not written: ") and str(tmp_path / "file" / "cache") in first
    assert "--cache-dir" in first and "--no-cache" in first
    cache.put("cd" * 32, Entry({"x": 2}))
    assert cache.write_error == first and cache.summary()["write_error"] == first
    assert cache.get("ab" * 32, "x") is None  # reads still work (a miss)
