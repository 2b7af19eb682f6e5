"""Input tracing: a rebuild skips the user's entry points only while nothing they read changed."""
from __future__ import annotations

import hashlib
import json
import os
import py_compile
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from packager.cache import BuildCache
from packager.errors import BuildError
from packager.inputs.trace import Fingerprint, tracing
from packager.pipeline import build

INPUTS = "inputs (model, data, reference outputs)"


def test_trace_records_reads_and_listings_not_writes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    np.savez(tmp_path / "d.npz", x=np.arange(3))
    (tmp_path / "sub").mkdir()
    (tmp_path / "other").mkdir()
    with tracing() as trace:
        (tmp_path / "a.txt").read_text()
        np.load(tmp_path / "d.npz")["x"]
        (tmp_path / "out.txt").write_text("written, not read")
        with open(tmp_path / "log.txt", "a") as f:
            f.write("appended")
        os.listdir(tmp_path / "sub")
        list((tmp_path / "other").iterdir())
    assert {str(tmp_path / "a.txt"), str(tmp_path / "d.npz")} <= trace.files
    assert str(tmp_path / "out.txt") not in trace.files and str(tmp_path / "log.txt") not in trace.files
    assert {str(tmp_path / "sub"), str(tmp_path / "other")} <= trace.dirs
    assert str(tmp_path) not in trace.dirs  # np.load etc. list nothing; imports are not data
    with tracing() as later:  # a finished trace records nothing more
        pass
    (tmp_path / "a.txt").read_text()
    assert str(tmp_path / "a.txt") not in later.files


def test_fingerprint_notices_content_listing_and_appearing_files(tmp_path: Path) -> None:
    data, folder = tmp_path / "data.bin", tmp_path / "images"
    data.write_bytes(b"\x00" * 100)
    folder.mkdir()
    (folder / "0.png").write_bytes(b"png")
    with tracing() as trace:
        data.read_bytes()
        sorted(folder.iterdir())
        try:
            (tmp_path / "optional.cfg").read_text()
        except FileNotFoundError:
            pass
    fp = Fingerprint.from_dict(json.loads(json.dumps(Fingerprint.of(trace).to_dict())))  # as stored
    assert fp.changed() is None
    data.write_bytes(b"\x00" * 99 + b"\x01")  # same size, other content
    assert fp.changed() == f"{data} changed"
    data.write_bytes(b"\x00" * 100)
    (folder / "1.png").write_bytes(b"png")
    assert fp.changed() == f"folder {folder} changed"
    (folder / "1.png").unlink()
    assert fp.changed() is None
    (tmp_path / "optional.cfg").write_text("now it exists")
    assert fp.changed() == f"{tmp_path / 'optional.cfg'} changed"


def test_a_cached_pyc_stands_for_its_source(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text("X = 1\n")
    pyc = Path(py_compile.compile(str(src)))
    with tracing() as trace:
        pyc.read_bytes()
    fp = Fingerprint.of(trace)
    assert str(src) in fp.files and str(pyc) not in fp.files
    os.utime(pyc, (1, 1))  # touching the .pyc is not a change; editing the source is
    assert fp.changed() is None
    src.write_text("X = 2\n")
    assert fp.changed() == f"{src} changed"


def test_installed_files_are_covered_by_the_distribution_list(tmp_path: Path) -> None:
    with tracing() as trace:
        Path(np.__file__).read_bytes()  # inside site-packages
    assert str(Path(np.__file__)) not in Fingerprint.of(trace).files


WRAP = '''
import os
from pathlib import Path

import {helper} as helper
from tiny import build as tiny_build

HERE = Path(__file__).parent


def build():
    with open(HERE / "calls.log", "a") as f:
        f.write("called\\n")
    seed = int((HERE / "seed.txt").read_text()) + helper.OFFSET + int(os.environ.get("TINY_SEED", "0"))
    return tiny_build(seed)
'''


@pytest.fixture
def traced_project(tiny_project: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    """The tiny model behind an entry point that reads a file, imports a local module and logs
    each call; returns (manifest, helper module)."""
    helper = tmp_path / f"helper_{uuid.uuid4().hex[:8]}.py"  # fresh name: not in sys.modules yet
    helper.write_text("OFFSET = 0\n")
    (tmp_path / "seed.txt").write_text("0")
    (tmp_path / "wrap.py").write_text(WRAP.format(helper=helper.stem))
    return tiny_project(source={"framework": "torch", "entry": "wrap.py:build"}), helper


def calls(folder: Path) -> int:
    log = folder / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def run(manifest: Path, out: Path, cache_dir: Path, **kw: object) -> BuildCache:
    cache = BuildCache(cache_dir)
    result = build(manifest, out, cache=cache, **kw)  # type: ignore[arg-type]
    assert result.ok
    return cache


@pytest.mark.slow
def test_rebuild_skips_entry_points_until_something_they_read_changes(
        traced_project: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, helper = traced_project
    folder, cache = manifest.parent, tmp_path / "cache"
    cold = run(manifest, tmp_path / "a", cache)
    assert calls(folder) == 1 and INPUTS in cold.misses

    warm = run(manifest, tmp_path / "b", cache)
    assert calls(folder) == 1, "nothing changed: the model entry point must not be called"
    assert warm.misses == [] and INPUTS in warm.hits
    digest = lambda out: hashlib.sha256((out / "tiny-x86-cpu.tar.gz").read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "a") == digest(tmp_path / "b")

    (folder / "seed.txt").write_text("1")  # a file the entry point reads
    changed = run(manifest, tmp_path / "c", cache)
    assert calls(folder) == 2 and "onnx base model" in changed.misses
    assert digest(tmp_path / "c") != digest(tmp_path / "a")

    helper.write_text("OFFSET = 0  # edited\n")  # a local module the entry point imports
    run(manifest, tmp_path / "d", cache)
    assert calls(folder) == 3

    run(manifest, tmp_path / "e", cache, reload_inputs=True)
    assert calls(folder) == 4, "--reload-inputs calls the entry points regardless"

    run(manifest, tmp_path / "f", cache)
    assert calls(folder) == 4 and digest(tmp_path / "f") == digest(tmp_path / "c")


@pytest.mark.slow
def test_a_change_the_trace_cannot_see_fails_the_build_instead_of_a_stale_hit(
        traced_project: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, _ = traced_project
    cache = tmp_path / "cache"
    run(manifest, tmp_path / "a", cache)
    for meta in cache.glob("??/*/meta.json"):  # keep the inputs record, drop every step
        if "fingerprint" not in json.loads(meta.read_text()):
            shutil.rmtree(meta.parent)
    monkeypatch.setenv("TINY_SEED", "5")  # an environment variable: invisible to the trace
    with pytest.raises(BuildError, match="changed although no file") as err:
        build(manifest, tmp_path / "b", cache=BuildCache(cache))
    assert "--reload-inputs" in (err.value.hint or "")
    assert not (tmp_path / "b" / "tiny-x86-cpu").exists()
    again = run(manifest, tmp_path / "c", cache)  # the stale record is gone: a correct build
    assert INPUTS in again.misses
