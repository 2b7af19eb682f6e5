"""Builds from a folder of images with pre/post-processing declared: golden tensors made by the
runtime's own pre-processing, golden images carried in the bundle, and the end-to-end check that
catches a device which pre-processes differently."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from packager.errors import DataError, ManifestError
from packager.pipeline import build
from runtime.bundle import open_bundle
from runtime.end_to_end import check_end_to_end
from runtime.golden import load_golden
from runtime.model import load
from runtime.prepost import image_tensor

from ...conftest import LABELS, image_manifest, write_images

pytestmark = pytest.mark.slow

def files_of(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def image_project(tiny_project: Callable[..., Path], tmp_path: Path) -> Callable[..., Path]:
    return image_manifest(tiny_project, tmp_path)


def test_images_in_golden_images_carried_and_checked_end_to_end(image_project: Callable[..., Path],
                                                                tmp_path: Path) -> None:
    result = build(image_project(), tmp_path / "out")
    assert result.ok, result.targets[0].message
    root = tmp_path / "out" / "tiny-x86-cpu"
    doc = json.loads((root / "bundle.json").read_text())
    raw = doc["golden"]["raw"]
    assert len(raw) == 8 and raw[0] == "golden/raw/0000.png" and all(r in doc["files"] for r in raw)
    assert doc["golden"]["source"].startswith("8 samples drawn from calibration data (images imgs/ (40 files)")
    assert doc["processing"]["outputs"]["scores"] == {"softmax": True, "top_k": 2,
                                                      "labels": "processing/labels-0.txt"}
    assert (root / "processing/labels-0.txt").read_text() == LABELS
    assert "pillow>=9.1" in (root / "requirements.txt").read_text()
    bundle = open_bundle(root)
    bundle.verify()
    golden = load_golden(bundle)
    sources = {(tmp_path / "imgs" / f"img{i:02d}.png").read_bytes() for i in range(40)}
    pre = bundle.processing.inputs["x"] if bundle.processing else None
    assert pre is not None
    for i, rel in enumerate(raw):  # the golden tensors are the runtime's pre-processing of the images
        data = (root / rel).read_bytes()
        assert data in sources
        np.testing.assert_array_equal(golden.inputs["x"][i:i + 1],
                                      image_tensor(data, pre, bundle.signature.inputs[0], where=rel))
    with load(bundle, prefer="onnx-fp32") as model:
        report = check_end_to_end(model, golden)
        assert report is not None and report.passed and report.samples == 8
        assert report.preprocess_max_abs == 0.0
        # a device whose resize differs (bilinear instead of box) is caught before it serves
        model.bundle = dataclasses.replace(bundle, processing=dataclasses.replace(
            bundle.processing, inputs={"x": dataclasses.replace(pre, interpolation="bilinear")}))
        other = check_end_to_end(model, golden)
        assert other is not None and not other.passed and not other.preprocess_passed
        assert other.preprocess_max_abs > other.preprocess_limit
        assert "differs from the build's" in other.why() and other.worst_file in raw


def test_rebuild_from_the_cache_gives_the_same_bytes(image_project: Callable[..., Path], tmp_path: Path) -> None:
    manifest = image_project()
    assert build(manifest, tmp_path / "a").ok
    assert build(manifest, tmp_path / "b").ok  # inputs record restored: the images come from the cache
    assert files_of(tmp_path / "a" / "tiny-x86-cpu") == files_of(tmp_path / "b" / "tiny-x86-cpu")


def test_golden_images_of_their_own(image_project: Callable[..., Path], tmp_path: Path) -> None:
    write_images(tmp_path / "held-out", n=5)
    result = build(image_project(golden={"images": "held-out"}), tmp_path / "out")
    assert result.ok
    doc = json.loads((tmp_path / "out" / "tiny-x86-cpu" / "bundle.json").read_text())
    assert len(doc["golden"]["raw"]) == 5 and doc["golden"]["source"] == "images held-out/ (5 files)"


@pytest.mark.parametrize("override,error,message", [
    ({"outputs": [{"name": "scores", "postprocess": {"labels": "missing.txt"}}]}, ManifestError,
     "labels file .*missing.txt not found"),
    ({"outputs": [{"name": "scores", "postprocess": {"labels": "short.txt"}}]}, ManifestError,
     "2 labels for output 'scores', which has 5 classes"),
    ({"calibration": {"images": "nowhere"}}, DataError, "images folder .*nowhere not found"),
    ({"calibration": {"images": "empty"}}, DataError, "holds no image files"),
    ({"calibration": {"images": "broken"}}, DataError, "cannot decode the image"),
])
def test_bad_processing_inputs_fail_the_build_with_the_reason(image_project: Callable[..., Path], tmp_path: Path,
                                                              override: dict[str, object], error: type,
                                                              message: str) -> None:
    (tmp_path / "short.txt").write_text("a\nb\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(error, match=message) as info:
        build(image_project(**override), tmp_path / "out")
    assert info.value.hint or "labels" in message
    assert not (tmp_path / "out" / "tiny-x86-cpu").exists()
