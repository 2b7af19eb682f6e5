"""Models the benchmarks build in code (no download): a tiny MLP, a wide one and MobileNetV2, all
Keras, and a small Hugging Face BERT classifier (PyTorch; benchmarks/optimum_compare.py).

Manifest entry points (benchmarks/manifests/*.yaml). Weights are seeded random: the benchmarks
measure time, not accuracy; random calibration is declared in the manifests (the BERT one gets
token ids from ``bert_tokens``: random ids in range, padded sequences, two segments).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def mlp():  # type: ignore[no-untyped-def]
    """x float32[batch, 16] -> logits float32[batch, 10]: two Dense layers (~900 parameters)."""
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(16,), name="x")
    h = keras.layers.Dense(32, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(h))


def wide_mlp():  # type: ignore[no-untyped-def]
    """x float32[batch, 1024] -> logits float32[batch, 1000]: four Dense layers, 12.6M parameters
    (50 MB fp32), the shape of a recommendation or embedding head. One sample reads every weight
    for 2 multiply-adds each, so a batch of 16 costs little more than one sample (serve.py's
    batching part: where batching saves work on a CPU, as it does not on MobileNetV2)."""
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(1024,), name="x")
    h = inp
    for width in (2048, 2048, 2048):
        h = keras.layers.Dense(width, activation="relu")(h)
    return keras.Model(inp, keras.layers.Dense(1000, name="logits")(h))


def mobilenetv2(seed=0):  # type: ignore[no-untyped-def]
    """keras.applications.MobileNetV2 architecture (3.5M parameters), random weights (seeded), NHWC."""
    import keras
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(224, 224, 3), name="image")
    base = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
                                          include_top=True, classes=1000)
    return keras.Model(inp, keras.layers.Identity(name="logits")(base(inp)))


def relu16mb():  # type: ignore[no-untyped-def]
    """x float32[batch, 1024, 4096] -> y = relu(x): one op with a 16 MiB output per sample (the
    run_into measurement: time goes to moving the output, not computing it)."""
    import keras
    inp = keras.Input(shape=(1024, 4096), name="x")
    return keras.Model(inp, keras.layers.ReLU(name="y")(inp))


# -- a small BERT sequence classifier (benchmarks/optimum_compare.py, manifests/bert-cls.yaml) -----

BERT = dict(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=256, max_position_embeddings=128, num_labels=2)
BERT_SEQ = 32
BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def bert_hf() -> Any:
    """transformers' BertForSequenceClassification from ``BERT`` (about 0.43M parameters), weights
    from torch.manual_seed(0): the same model every call (optimum_compare.py saves it with
    save_pretrained for Optimum; the manifest's entry point wraps it for edgepack)."""
    import torch
    import transformers
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(transformers.BertConfig(**BERT)).eval()


def bert_cls() -> Any:
    """``bert_hf()`` as forward(input_ids, attention_mask, token_type_ids) -> logits (the
    manifest's signature: tensors in, a tensor out, no ModelOutput)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    return Logits(bert_hf()).eval()


def bert_feeds(n: int, seed: int, seq: int = BERT_SEQ) -> dict[str, np.ndarray]:
    """n sequences of ``seq`` int64 token ids: random ids in [1, vocab), lengths from seq / 4 to
    seq (padding id 0, mask 0), a second segment (token type 1) from a random split point."""
    rng = np.random.default_rng(seed)
    pos = np.arange(seq)[None, :]
    lengths = rng.integers(seq // 4, seq + 1, size=(n, 1))
    mask = (pos < lengths).astype(np.int64)
    ids = rng.integers(1, BERT["vocab_size"], size=(n, seq)).astype(np.int64) * mask
    split = rng.integers(1, lengths[:, 0] + 1)[:, None]
    types = ((pos >= split) & (mask == 1)).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def bert_tokens(samples: int = 64, batch_size: int = 16) -> Iterator[dict[str, np.ndarray]]:
    """Manifest calibration entry point of bert-cls.yaml: ``bert_feeds`` in batches."""
    feeds = bert_feeds(samples, seed=0)
    for start in range(0, samples, batch_size):
        yield {k: v[start:start + batch_size] for k, v in feeds.items()}
