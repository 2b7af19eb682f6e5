"""`runtime.backends.fake`: a user's own test builds a real Model on a real bundle, with outputs
it chooses, through the same checked seam as the real backends."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime.backends import get_backend
from runtime.backends.fake import FakeBackend, faking
from runtime.backends.onnxruntime import OnnxRuntimeBackend
from runtime.errors import BackendError, FeedError


def classify(model: runtime.Model, x: np.ndarray) -> list[int]:
    """A user's service code: what their test is about."""
    return model.run({"x": x})["label"].tolist()


def test_a_users_test_runs_its_service_on_the_fake(bundle_dir: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with faking("onnxruntime", outputs=lambda feeds: {
            "y": np.ones((len(feeds["x"]), 3)), "label": feeds["x"][:, 0] // 4}) as fake:
        with runtime.load(bundle_dir) as model:  # the bundle's hashes are checked as ever
            assert classify(model, x) == [0, 1, 2]
            y = model.run({"x": x})["y"]
            assert model.providers == ["CPUExecutionProvider"] and model.backend_version == "fake"
    assert y.dtype == np.float32 and y.shape == (3, 3)  # cast to the signature's dtype
    assert len(fake.feeds) == 2 and np.array_equal(fake.feeds[0]["x"], x)
    assert get_backend("onnxruntime") is OnnxRuntimeBackend  # the real one is back


def test_zeros_follow_the_signature_and_fixed_arrays_are_checked(bundle_dir: Path) -> None:
    with faking() as fake, runtime.load(bundle_dir) as model:
        out = model.run({"x": np.zeros((5, 4), np.float32)})
        assert {k: (v.shape, v.dtype.name) for k, v in out.items()} == \
            {"y": ((5, 3), "float32"), "label": ((5,), "int64")}
        assert issubclass(fake, FakeBackend) and fake.outputs is None
    with faking(outputs={"y": np.zeros((2, 7)), "label": np.zeros(2)}), runtime.load(bundle_dir) as model:
        with pytest.raises(BackendError, match=r"shape \[2, 7\], the signature says \['batch', 3\]"):
            model.run({"x": np.zeros((2, 4), np.float32)})


def test_the_fake_goes_through_the_checked_seam(bundle_dir: Path) -> None:
    backend = FakeBackend()
    with pytest.raises(BackendError, match="not open"):
        backend.run({"x": np.zeros((1, 4), np.float32)})
    model_file = bundle_dir / "models" / "tiny.fp32.onnx"
    with pytest.raises(BackendError, match="2 provider_options for 1 providers"):
        backend.open(model_file, providers=["cpu"], provider_options=[{}, {}])
    spec = runtime.TensorSpec("x", "float32", ("batch", 4))
    backend.open(model_file, inputs=[spec], outputs=[runtime.TensorSpec("y", "float32", ("batch", 3))])
    with pytest.raises(FeedError, match=r"missing \['x'\]; unexpected \['image'\]"):
        backend.run({"image": np.zeros((1, 4), np.float32)})
    assert backend.run({"x": np.zeros((2, 4), np.float32)})["y"].shape == (2, 3)
    backend.close()
    backend.close()  # twice is fine
