"""Pre/post-processing (runtime.processing, runtime.prepost): real images encoded by Pillow, and
the numbers each step must give."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime.errors import BundleFormatError, FeedError
from runtime.prepost import Processor, check_labels, image_tensor, softmax
from runtime.processing import ImagePreprocess, Postprocess, Processing
from runtime.signature import Signature, TensorSpec

RGB_NCHW = TensorSpec("image", "float32", ("batch", 3, 4, 6), layout="NCHW")


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def gradient(h: int, w: int) -> np.ndarray:
    """An RGB image whose channels differ (R rises along x, G along y, B is constant)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 10 % 256, y * 20 % 256, np.full_like(x, 200)], axis=-1).astype(np.uint8)


def test_scale_mean_std_and_layout_give_the_expected_numbers() -> None:
    pixels = gradient(4, 6)
    pre = ImagePreprocess(color="RGB", scale=1 / 255, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    got = image_tensor(png(pixels), pre, RGB_NCHW, where="t")
    want = ((pixels / 255 - np.array([0.5, 0.25, 0.0])) / np.array([0.5, 0.25, 2.0])).transpose(2, 0, 1)[None]
    assert got.shape == (1, 3, 4, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_bgr_swaps_channels_and_nhwc_keeps_them_last() -> None:
    pixels = gradient(4, 6)
    spec = TensorSpec("image", "float32", (1, 4, 6, 3), layout="NHWC")
    rgb = image_tensor(png(pixels), ImagePreprocess(color="RGB", scale=1.0), spec, where="t")
    bgr = image_tensor(png(pixels), ImagePreprocess(color="BGR", scale=1.0), spec, where="t")
    np.testing.assert_array_equal(rgb[0], pixels.astype(np.float32))
    np.testing.assert_array_equal(bgr[0], pixels[:, :, ::-1].astype(np.float32))


def test_resize_shorter_side_then_centre_crop() -> None:
    """torchvision's Resize(n) + CenterCrop: 20x40 -> shorter side 8 -> 8x16 -> centre 4x6."""
    pixels = gradient(20, 40)
    pre = ImagePreprocess(color="RGB", resize=8, interpolation="nearest", crop=(4, 6), scale=1.0)
    got = image_tensor(png(pixels), pre, RGB_NCHW, where="t")
    resized = np.asarray(Image.fromarray(pixels).resize((16, 8), resample=Image.Resampling.NEAREST))
    np.testing.assert_array_equal(got[0].transpose(1, 2, 0), resized[2:6, 5:11].astype(np.float32))


def test_box_resize_undoes_a_block_enlargement() -> None:
    """The digits example's rule: an 8x8 image enlarged 4x comes back exactly with the box filter."""
    small = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    big = np.kron(small, np.ones((4, 4), dtype=np.uint8))
    spec = TensorSpec("image", "float32", ("batch", 1, 8, 8), layout="NCHW")
    got = image_tensor(png(big, "L"), ImagePreprocess(color="L", resize=(8, 8), interpolation="box"), spec, where="t")
    np.testing.assert_allclose(got[0, 0], small / 255, atol=1e-7)


def test_integer_inputs_are_rounded_and_clipped() -> None:
    spec = TensorSpec("image", "uint8", (1, 4, 6, 3), layout="NHWC")
    got = image_tensor(png(gradient(4, 6)), ImagePreprocess(color="RGB", scale=1.0, mean=(-100.0,)), spec, where="t")
    assert got.dtype == np.uint8 and got.max() == 255  # 200 + 100 clipped
    assert int(got[0, 0, 1, 0]) == 110  # R = 10 at x = 1, + 100


def test_jpeg_with_exif_orientation_is_turned_upright() -> None:
    tall = np.zeros((6, 4, 3), np.uint8)
    tall[:3] = 255  # top half white
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: shown after a 90-degree turn
    Image.fromarray(tall).save(buf, format="JPEG", exif=exif, quality=100)
    spec = TensorSpec("image", "float32", (1, 3, 4, 6), layout="NCHW")
    got = image_tensor(buf.getvalue(), ImagePreprocess(color="RGB"), spec, where="t")
    assert got.shape == (1, 3, 4, 6)  # 6x4 stored, 4x6 shown


@pytest.mark.parametrize("data,pre,message", [
    (b"not an image", ImagePreprocess(), "not an image format Pillow reads"),
    (None, ImagePreprocess(crop=(10, 10)), "smaller than the 10x10 centre crop"),
    (None, ImagePreprocess(resize=(5, 6)), "needs height 4"),
])
def test_bad_images_are_feed_errors_that_say_why(data: bytes | None, pre: ImagePreprocess, message: str) -> None:
    with pytest.raises(FeedError, match=message) as info:
        image_tensor(data if data is not None else png(gradient(4, 6)), pre, RGB_NCHW, where="image[0]")
    assert info.value.where == "image[0]" and info.value.hint


def test_channels_and_layout_must_fit_the_input() -> None:
    with pytest.raises(BundleFormatError, match="gives 1"):
        ImagePreprocess(color="L").check_input(RGB_NCHW, "w")
    with pytest.raises(BundleFormatError, match="layout NCHW or NHWC"):
        ImagePreprocess().check_input(TensorSpec("x", "float32", (1, 3, 4, 6)), "w")
    with pytest.raises(BundleFormatError, match="std holds 0"):
        ImagePreprocess(std=(1.0, 0.0, 1.0)).check_channels("w")


def test_softmax_is_stable_for_large_logits() -> None:
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]], np.float32))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]], atol=1e-7)


def test_labels_must_match_the_class_count() -> None:
    spec = TensorSpec("logits", "float32", ("batch", 3))
    assert check_labels(["a", "b", "c", "", ""], spec, "w") == ["a", "b", "c"]
    with pytest.raises(BundleFormatError, match="2 labels for output 'logits', which has 3 classes"):
        check_labels(["a", "b"], spec, "w")


def test_spec_round_trips_and_refuses_names_the_signature_lacks() -> None:
    sig = Signature(inputs=(RGB_NCHW,), outputs=(TensorSpec("logits", "float32", ("batch", 3)),))
    proc = Processing(inputs={"image": ImagePreprocess(resize=8, crop=(4, 6), mean=(0.5,), std=(0.25,))},
                      outputs={"logits": Postprocess(softmax=True, top_k=2, labels="processing/labels-0.txt")})
    assert Processing.from_dict(proc.to_dict(), where="w", signature=sig) == proc
    bad = proc.to_dict()
    bad["outputs"]["probs"] = bad["outputs"].pop("logits")
    with pytest.raises(BundleFormatError, match="output 'probs', which the signature lacks"):
        Processing.from_dict(bad, where="w", signature=sig)
    escaping = proc.to_dict()
    escaping["outputs"]["logits"]["labels"] = "../../etc/passwd"
    with pytest.raises(BundleFormatError, match="not a relative path inside the bundle"):
        Processing.from_dict(escaping, where="w", signature=sig)


class _FakeBundle:
    """Only what Processor reads: a processing spec, a signature and where labels live."""

    def __init__(self, root: Path, processing: Processing, signature: Signature) -> None:
        self.root, self.processing, self.signature = root, processing, signature

    def path(self, rel: str) -> Path:
        return self.root / rel


def test_top_k_ranks_with_labels_and_softmax(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    sig = Signature(inputs=(RGB_NCHW,), outputs=(TensorSpec("logits", "float32", ("batch", 3)),))
    proc = Processing(outputs={"logits": Postprocess(softmax=True, top_k=2, labels="labels.txt")})
    processor = Processor(_FakeBundle(tmp_path, proc, sig))  # type: ignore[arg-type]
    scores, ranked = processor.post("logits", np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]], np.float32))
    np.testing.assert_allclose(scores.sum(-1), [1.0, 1.0], atol=1e-6)
    assert ranked is not None
    assert [(r.label, r.index) for r in ranked[0]] == [("dog", 1), ("bird", 2)]
    assert ranked[1][0].label == "cat" and ranked[1][0].score == pytest.approx(np.exp(3) / (np.exp(3) + 2), 1e-6)
    assert [r.label for r in processor.top_k("logits", np.array([[0.0, 2.0, 1.0]]), 3)[0]] == ["dog", "bird", "cat"]
