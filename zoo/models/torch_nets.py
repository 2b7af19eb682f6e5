"""PyTorch models written in code (no torchvision): a ResNet block net, a depthwise-separable
MobileNet-like net, a UNet-like segmenter, an SSD-like detection head (boxes + class scores), a
two-input/two-output net, an LSTM text classifier (int64 token ids, dynamic sequence axis) and a
bidirectional GRU over sensor traces. Each is trained for a few seconds on data made in code."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import data
from .spec import Entry, ce, fit_torch, inp, out

SIZE = 32


def _nn() -> Any:
    import torch.nn as nn
    return nn


# -- architectures --------------------------------------------------------------------------------


def resnet_tiny() -> Any:
    import torch
    nn = _nn()

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x: Any) -> Any:
            h = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(h)) + self.skip(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.head = nn.Linear(64, data.CLASSES)

        def forward(self, image: Any) -> Any:
            h = self.blocks(self.stem(image))
            return self.head(h.mean(dim=(2, 3)))

    return Net()


def mobilenet_tiny() -> Any:
    nn = _nn()

    def dw_sep(cin: int, cout: int, stride: int) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                             nn.ReLU6(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())

    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
                         dw_sep(16, 32, 1), dw_sep(32, 64, 2), dw_sep(64, 64, 1), dw_sep(64, 128, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(128, data.CLASSES))


def unet_tiny() -> Any:
    import torch
    nn = _nn()

    def conv(cin: int, cout: int) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.d1, self.d2, self.mid = conv(3, 16), conv(16, 32), conv(32, 64)
            self.up2, self.u2 = nn.ConvTranspose2d(64, 32, 2, 2), conv(64, 32)
            self.up1, self.u1 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), conv(32 + 16, 16)
            self.head = nn.Conv2d(16, 3, 1)

        def forward(self, image: Any) -> Any:
            a = self.d1(image)
            b = self.d2(nn.functional.max_pool2d(a, 2))
            c = self.mid(nn.functional.max_pool2d(b, 2))
            d = self.u2(torch.cat([self.up2(c), b], 1))
            return self.head(self.u1(torch.cat([self.up1(d), a], 1)))

    return UNet()


ANCHORS_PER_CELL, GRID, DET_CLASSES = 2, 4, 3


def detect_tiny() -> Any:
    import torch
    nn = _nn()

    class SSD(nn.Module):
        """A conv backbone to a 4x4 grid, 2 anchors per cell: boxes [batch, 32, 4] (cx, cy, w, h
        decoded against the anchors) and class logits [batch, 32, 1 + classes] (0: background)."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = []
            for cin, cout in ((3, 16), (16, 32), (32, 48)):
                layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
            self.backbone = nn.Sequential(*layers)
            self.box = nn.Conv2d(48, ANCHORS_PER_CELL * 4, 3, padding=1)
            self.cls = nn.Conv2d(48, ANCHORS_PER_CELL * (1 + DET_CLASSES), 3, padding=1)
            g = (torch.arange(GRID, dtype=torch.float32) + 0.5) / GRID
            cy, cx = torch.meshgrid(g, g, indexing="ij")
            sizes = torch.tensor([0.25, 0.4])
            centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2).expand(-1, ANCHORS_PER_CELL, 2)
            wh = sizes.reshape(1, -1, 1).expand(GRID * GRID, -1, 2)
            self.register_buffer("anchors", torch.cat([centres, wh], -1).reshape(-1, 4))

        def forward(self, image: Any) -> tuple[Any, Any]:
            f = self.backbone(image)
            n = f.shape[0]
            d = self.box(f).permute(0, 2, 3, 1).reshape(n, -1, 4)
            logits = self.cls(f).permute(0, 2, 3, 1).reshape(n, -1, 1 + DET_CLASSES)
            a = self.anchors
            xy = a[:, :2] + 0.1 * torch.tanh(d[..., :2]) * a[:, 2:]
            wh = a[:, 2:] * torch.exp(0.5 * torch.tanh(d[..., 2:]))
            return torch.cat([xy, wh], -1), logits

    return SSD()


def multi_io() -> Any:
    import torch
    nn = _nn()

    class TwoInTwoOut(nn.Module):
        """An image and a tabular vector in; class logits and a regression value out."""

        def __init__(self) -> None:
            super().__init__()
            self.cnn = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.mlp = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
            self.cls = nn.Linear(64, data.CLASSES)
            self.reg = nn.Linear(64, 1)

        def forward(self, image: Any, meta: Any) -> tuple[Any, Any]:
            h = torch.cat([self.cnn(image), self.mlp(meta)], 1)
            return self.cls(h), self.reg(h)

    return TwoInTwoOut()


def lstm_text() -> Any:
    nn = _nn()

    class LSTMText(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(512, 32)
            self.lstm = nn.LSTM(32, 48, batch_first=True)
            self.head = nn.Linear(48, data.CLASSES)

        def forward(self, input_ids: Any) -> Any:
            h, _ = self.lstm(self.emb(input_ids))
            return self.head(h.mean(1))

    return LSTMText()


def gru_signal() -> Any:
    import torch
    nn = _nn()

    class BiGRU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(6, 32, batch_first=True, bidirectional=True)
            self.head = nn.Linear(64, data.CLASSES)

        def forward(self, signal: Any) -> Any:
            _, h = self.gru(signal)
            return self.head(torch.cat([h[0], h[1]], 1))

    return BiGRU()


# -- data and training ----------------------------------------------------------------------------


def image_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.images(n, seed, size=SIZE)
    return {"image": x}, y


def seg_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.masks(n, seed, size=SIZE)
    return {"image": x}, y


def det_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x, t = data.boxes(n, seed, size=SIZE, classes=DET_CLASSES)
    return {"image": x}, t


def multi_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x, y = data.images(n, seed, size=SIZE)
    meta = data.tabular(n, seed + 1)
    value = (meta[:, :3].sum(1, keepdims=True) * 0.5 + 0.25 * y[:, None]).astype(np.float32)
    return {"image": x, "meta": meta}, {"cls": y, "value": value}


def text_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    feeds, y = data.tokens(n, seed, seq=16)
    return {"input_ids": feeds["input_ids"]}, y


def signal_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.signals(n, seed)
    return {"signal": x}, y


def train_cls(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, ce)


def train_seg(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, lambda o, y: ce(o.permute(0, 2, 3, 1), y), steps=100)


def det_loss(outputs: Any, t: dict[str, Any]) -> Any:
    import torch
    boxes, logits = outputs
    centre = t["box"][:, None, :2]
    anchors = boxes.new_tensor(np.asarray(_ANCHOR_CENTRES))
    nearest = ((anchors[None] - centre) ** 2).sum(-1).argmin(1)  # the anchor nearest the object
    labels = torch.zeros(logits.shape[:2], dtype=torch.long)
    labels[torch.arange(len(labels)), nearest] = t["cls"] + 1
    picked = boxes[torch.arange(len(boxes)), nearest]
    return ce(logits, labels) + 5 * torch.nn.functional.smooth_l1_loss(picked, t["box"])


_ANCHOR_CENTRES = [((j + 0.5) / GRID, (i + 0.5) / GRID) for i in range(GRID) for j in range(GRID)
                   for _ in range(ANCHORS_PER_CELL)]


def train_det(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, det_loss, steps=150)


def train_multi(model: Any, entry: Entry) -> None:
    import torch
    fit_torch(model, entry, lambda o, t: ce(o[0], t["cls"]) + torch.nn.functional.mse_loss(o[1], t["value"]))


IMAGE = inp("image", "float32", ["batch", 3, SIZE, SIZE], "NCHW")
IDS = inp("input_ids", "int64", ["batch", "seq"])

ENTRIES = [
    Entry("resnet-tiny", "cnn-in-code", "torch", "ResNet basic blocks with batch norm (3 stages)",
          (IMAGE,), (out("logits", True, ["batch", 4]),), image_data, resnet_tiny, train_cls),
    Entry("mobilenet-tiny", "cnn-in-code", "torch", "depthwise-separable MobileNet-like net, ReLU6",
          (IMAGE,), (out("logits", True, ["batch", 4]),), image_data, mobilenet_tiny, train_cls),
    Entry("unet-tiny", "cnn-in-code", "torch", "UNet-like segmenter: skip concats, ConvTranspose + bilinear up",
          (IMAGE,), (out("mask_logits", False, ["batch", 3, SIZE, SIZE]),), seg_data, unet_tiny, train_seg,
          tags=("segmentation",)),
    Entry("ssd-tiny", "detection", "torch", "SSD-like head: 32 anchors, decoded boxes + class logits",
          (IMAGE,), (out("boxes", False, ["batch", 32, 4]), out("class_logits", True, ["batch", 32, 4])),
          det_data, detect_tiny, train_det, tags=("multi-output", "detection")),
    Entry("two-in-two-out", "multi-io", "torch", "image + tabular inputs; class logits + regression outputs",
          (IMAGE, inp("meta", "float32", ["batch", 8], "NC")),
          (out("logits", True, ["batch", 4]), out("value", False, ["batch", 1])),
          multi_data, multi_io, train_multi, tags=("multi-input", "multi-output")),
    Entry("lstm-text", "rnn", "torch", "Embedding + LSTM text classifier (int64 ids, dynamic seq)",
          (IDS,), (out("logits", True, ["batch", 4]),), text_data, lstm_text, train_cls,
          tags=("dynamic-seq", "int64-ids")),
    Entry("bigru-signal", "rnn", "torch", "bidirectional GRU over 24-step sensor windows",
          (inp("signal", "float32", ["batch", 24, 6]),), (out("logits", True, ["batch", 4]),),
          signal_data, gru_signal, train_cls),
]
