"""The one tiny torch model of the bad-input corpus, and entry points that go wrong in every way.

Manifests in this folder name these functions as ``model.py:<function>``; each broken one is used
by exactly the manifest whose file name says what is wrong.
"""
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


def build():
    torch.manual_seed(0)
    return Tiny().eval()


def _x(n=8, shape=(1, 4, 4), dtype=np.float32):
    return np.random.default_rng(1).random((n, *shape)).astype(dtype)


def samples():
    yield {"x": _x()}


# -- source entry points that fail ---------------------------------------------------------------
def build_without_weights():
    raise FileNotFoundError("no trained weights at weights/tiny.pt; run train.py first")


def build_raises():
    raise ValueError("layer sizes do not add up")


def build_not_a_module():
    return {"conv": "not a model"}


# -- calibration entry points that yield the wrong things --------------------------------------------
def samples_wrong_name():
    yield {"image": _x()}


def samples_wrong_shape():
    yield {"x": _x(shape=(1, 5, 5))}


def samples_wrong_rank():
    yield {"x": _x(shape=(4, 4))}


def samples_wrong_dtype():
    yield {"x": _x(dtype=np.float64)}


def samples_nan():
    x = _x()
    x[0, 0, 0, 0] = np.nan
    yield {"x": x}


def samples_inf():
    x = _x()
    x[1, 0, 2, 2] = -np.inf
    yield {"x": x}


def samples_strings():
    yield {"x": np.array([["a", "b"]])}


def samples_not_a_dict():
    yield _x()


def samples_nothing():
    return iter(())


def samples_number():
    return 42


def samples_raise_midway():
    yield {"x": _x()}
    raise OSError("camera disconnected")


def samples_three_channels():
    """Data that fits the manifest of signature_torch_channels.yaml but not the model."""
    yield {"x": _x(shape=(3, 4, 4))}


# -- evaluation ------------------------------------------------------------------------------------
def evaluation_not_pairs():
    return [{"x": _x()}]


def evaluation_pairs():
    return {"x": _x()}, np.zeros(len(_x()), dtype=np.int64)


def metric_not_a_number(outputs, labels):
    return [float(outputs["scores"].mean())]


# -- an op the ONNX format cannot express ------------------------------------------------------------
class Histogram(nn.Module):
    """aten::histc has no ONNX equivalent at any opset: export must fail and name it."""

    def forward(self, x):
        return torch.histc(x, bins=5).unsqueeze(0).expand(x.shape[0], 5)


def build_histogram():
    return Histogram().eval()
