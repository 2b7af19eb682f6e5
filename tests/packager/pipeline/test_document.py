"""bundle.json is written only through the runtime's typed classes: on a bundle of every shipped
target, the reader gives back what the writer wrote, byte for byte."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.cache import BuildCache
from packager.config.targets import SHIPPED_TARGETS_DIR
from packager.pipeline import build
from packager.results import BuildResult
from runtime.bundle import Bundle, read_bundle

from ...conftest import TINY_MODEL, tiny_manifest

SHIPPED = sorted(p.stem for p in Path(SHIPPED_TARGETS_DIR).glob("*.yaml"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, Path]:
    folder = tmp_path_factory.mktemp("every-target")
    (folder / "tiny.py").write_text(TINY_MODEL)
    manifest = tiny_manifest(folder, targets=SHIPPED)
    out = folder / "dist"
    return build(manifest, out, cache=BuildCache(enabled=False)), out


def test_every_shipped_target_is_built(built: tuple[BuildResult, Path]) -> None:
    result, _ = built
    assert len(SHIPPED) >= 5 and [t.target for t in result.targets] == SHIPPED
    assert all(t.status == "ok" for t in result.targets), [(t.target, t.message) for t in result.targets]


@pytest.mark.parametrize("target", SHIPPED)
def test_written_bundle_json_is_what_the_reader_gives_back(built: tuple[BuildResult, Path], target: str) -> None:
    _, out = built
    root = out / f"tiny-{target}"
    written = (root / "bundle.json").read_bytes()
    data = json.loads(written)
    bundle = Bundle.from_dict(data, root)
    assert bundle.to_dict() == data  # writer and reader agree on every key and value
    assert (json.dumps(bundle.to_dict(), indent=2, sort_keys=True) + "\n").encode() == written
    again = Bundle.from_dict(bundle.to_dict(), root)
    assert again == bundle and again.candidates == bundle.candidates and again.golden == bundle.golden
    # the typed fields hold the real record, not defaults
    for cand in bundle.candidates:
        assert cand.size == (root / cand.file).stat().st_size > 0
        assert cand.status == "ok" and cand.parity is not None and cand.parity["passed"] is True
        assert cand.tolerance and set(cand.tolerance) == {"scores"}
    assert bundle.golden is not None and bundle.golden.samples == 16
    assert read_bundle(root) == bundle  # the device's reader, the same objects
    read_bundle(root).verify()


def test_a_made_candidate_round_trips_and_keeps_unknown_keys(built: tuple[BuildResult, Path]) -> None:
    _, out = built
    root = out / f"tiny-{SHIPPED[0]}"
    data = json.loads((root / "bundle.json").read_text())
    data["candidates"][0]["future_field"] = {"x": 1}  # a newer packager's key: kept, not dropped
    data["future_top"] = [1, 2]
    bundle = Bundle.from_dict(data, root)
    assert bundle.candidates[0].extra == {"future_field": {"x": 1}} and bundle.extra == {"future_top": [1, 2]}
    assert bundle.to_dict() == data
    # made in code (as the packager does), raw is what would be written
    made = Bundle.from_dict(bundle.to_dict(), root)
    assert made.raw == bundle.to_dict() and made.candidates[0].raw == bundle.candidates[0].to_dict()
