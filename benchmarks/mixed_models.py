"""Four PyTorch models whose plain int8 misses parity, for the mixed-precision benchmark
(benchmarks/mixed_int8.py, manifests benchmarks/manifests/mixed-*.yaml). Each is made in code,
weights from torch.manual_seed(0), and carries the trait that breaks plain int8 in real models:

- ``softmax1000``: a classifier with a 1000-way softmax output; untrained, its probabilities are
  about 0.001 each, below the output's uint8 step (1/255): plain int8 rounds them all to zero.
- ``encoder``: a transformer encoder (token ids -> embeddings -> 2 layers of attention, GELU and
  LayerNorm -> mean pool -> logits) whose LayerNorm scales a few hidden features far above the
  rest, the outlier features of trained transformers (Dettmers et al., LLM.int8()): the ranges of
  every tensor they flow through are set by those few features.
- ``outlier_cnn``: a CNN where one channel of an early convolution is 400x larger than the others
  (what trained CNNs without batch norm folding show, and the cause of most per-tensor int8
  losses): the other channels get a handful of uint8 levels.
- ``detection``: a YOLO-style head on a conv backbone: per cell and anchor, box centres and sizes
  decoded to pixels (0-256) and objectness/class probabilities, the two kinds concatenated before
  they are split into the ``boxes`` and ``scores`` outputs, as exported detectors do: the shared
  tensor's range is the pixels', and the probabilities round to 0 (onnxruntime#14233: "0
  confidence for all detections").

Calibration and golden data: ``images`` (uniform [0, 1) pixels) and ``tokens`` (random ids in
range), seeded.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

IMAGE = (3, 64, 64)
VOCAB, SEQ, WIDTH = 1000, 32, 64


def _torch() -> Any:
    import torch
    torch.manual_seed(0)
    return torch


def softmax1000() -> Any:
    """image float32[batch, 3, 64, 64] -> probs float32[batch, 1000] (a softmax)."""
    torch = _torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 96, 3, 2, 1), nn.ReLU())
            self.fc = nn.Linear(96, 1000)

        def forward(self, image: Any) -> Any:
            return torch.softmax(self.fc(self.features(image).mean((2, 3))), -1)

    return Net().eval()


def encoder() -> Any:
    """input_ids int64[batch, 32] -> logits float32[batch, 32, 4] (a tag per token): embeddings, 2
    encoder layers (4 heads, GELU, post-LayerNorm), a linear head; every LayerNorm adds 400 to 3 of the 64
    features (a near-constant offset that carries no information: the massive activations of
    trained transformers, Sun et al. 2024)."""
    torch = _torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, WIDTH)
            self.position = nn.Parameter(torch.randn(1, SEQ, WIDTH) * 0.1)
            layer = nn.TransformerEncoderLayer(WIDTH, 4, 128, dropout=0.0, activation="gelu", batch_first=True)
            self.layers = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(WIDTH, 4)
            with torch.no_grad():
                for block in self.layers.layers:
                    for norm in (block.norm1, block.norm2):
                        norm.bias[[5, 17, 40]] = 400.0
                self.head.weight[:, [5, 17, 40]] = 0.0  # constant features: a trained head ignores them

        def forward(self, input_ids: Any) -> Any:
            return self.head(self.layers(self.embed(input_ids) + self.position))

    return Net().eval()


def outlier_cnn() -> Any:
    """image float32[batch, 3, 64, 64] -> logits float32[batch, 10]: 14 conv + batch norm blocks whose
    statistics come from sample images (as training leaves them: every channel's activations
    standardized), then the first block's channel 0 scaled 400x and the next convolution's
    weights for it divided by 400: the same function in float, one outlier channel in int8."""
    torch = _torch()
    nn = torch.nn

    def block(cin: int, cout: int, stride: int) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout, momentum=None),
                             nn.ReLU())

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [32, 32, 32, 32, 48, 48, 48, 48, 64, 64, 64, 64, 64, 64]  # VGG-like: 14 convolutions
            strides = [2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1]
            ins = [3, *widths[:-1]]
            self.blocks = nn.Sequential(*[block(i, o, st) for i, o, st in zip(ins, widths, strides, strict=True)])
            self.fc = nn.Linear(64, 10)

        def forward(self, image: Any) -> Any:
            return self.fc(self.blocks(image).mean((2, 3)))

    net = Net().train()
    with torch.no_grad():
        for feed in images(256, seed=7):  # batch-norm statistics from images the benchmark does not use
            net(torch.from_numpy(feed["image"]))
        first, second = net.blocks[0][1], net.blocks[1][0]
        first.weight[0] *= 400.0
        first.bias[0] *= 400.0
        second.weight[:, 0] /= 400.0
    return net.eval()


def detection() -> Any:
    """image float32[batch, 3, 64, 64] -> boxes float32[batch, 192, 4] (pixels: centre x, y, width,
    height) and scores float32[batch, 192, 3] (objectness x class probability); 8x8 cells x 3
    anchors, YOLOv5's decoding."""
    torch = _torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1), nn.SiLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.SiLU(),
                nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU())
            self.head = nn.Conv2d(64, 3 * 8, 1)  # 3 anchors x (x, y, w, h, objectness, 3 classes)
            ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
            self.register_buffer("grid", torch.stack([xs, ys], -1).reshape(1, 1, 8, 8, 2))
            self.register_buffer("anchors", torch.tensor([[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]])
                                 .reshape(1, 3, 1, 1, 2))
            self.stride = 8.0  # 64 pixels / 8 cells

        def forward(self, image: Any) -> Any:
            n = image.shape[0]
            p = self.head(self.backbone(image)).reshape(n, 3, 8, 8, 8).sigmoid()
            xy = (p[..., :2] * 2 - 0.5 + self.grid) * self.stride
            wh = (p[..., 2:4] * 2) ** 2 * self.anchors
            out = torch.cat([xy, wh, p[..., 4:]], -1).reshape(n, -1, 8)  # one tensor, as YOLOv5 exports
            return out[..., :4], out[..., 4:5] * out[..., 5:]

    return Net().eval()


def images(n: int = 128, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    yield {"image": rng.random((n, *IMAGE), dtype=np.float32)}


def tokens(n: int = 128, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    yield {"input_ids": rng.integers(0, VOCAB, (n, SEQ), dtype=np.int64)}
