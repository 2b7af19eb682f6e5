"""Hugging Face transformers text models from small configs (nothing downloaded): BERT, DistilBERT
and RoBERTa sequence classifiers (int64 input_ids + attention_mask, dynamic batch and sequence
axes) and a GPT-2 LM head without a KV cache. Trained for a few seconds on token ids made in code
(topics for the classifiers, strided counting for the LM)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import data
from .spec import Entry, ce, fit_torch, inp, out

VOCAB, SEQ = 512, 16
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=64)


class _Logits:
    """forward(inputs...) -> model(**inputs).logits: the tensors the manifest names, not a
    ModelOutput; one positional parameter per input (torch.export maps dynamic shapes onto them)."""

    @staticmethod
    def wrap(model: Any, names: tuple[str, ...]) -> Any:
        import torch

        class Logits(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

        if names == ("input_ids", "attention_mask"):
            def forward(self: Any, input_ids: Any, attention_mask: Any) -> Any:
                return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        else:
            (key,) = names

            def forward(self: Any, x: Any) -> Any:  # type: ignore[misc]
                return self.model(**{key: x}).logits
        Logits.forward = forward  # type: ignore[method-assign,assignment]
        return Logits()


TEXT_INPUTS = ("input_ids", "attention_mask")


def bert() -> Any:
    import transformers as t
    cfg = t.BertConfig(vocab_size=VOCAB, num_labels=data.CLASSES, pad_token_id=data.PAD_ID, **SMALL)
    return _Logits.wrap(t.BertForSequenceClassification(cfg), TEXT_INPUTS)


def distilbert() -> Any:
    import transformers as t
    cfg = t.DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                             max_position_embeddings=64, num_labels=data.CLASSES, pad_token_id=data.PAD_ID)
    return _Logits.wrap(t.DistilBertForSequenceClassification(cfg), TEXT_INPUTS)


ROBERTA_PAD = 1


def roberta() -> Any:
    import transformers as t
    cfg = t.RobertaConfig(vocab_size=VOCAB, num_labels=data.CLASSES, pad_token_id=ROBERTA_PAD, bos_token_id=0,
                          eos_token_id=2, **{**SMALL, "max_position_embeddings": SEQ + 2 + 48})
    return _Logits.wrap(t.RobertaForSequenceClassification(cfg), TEXT_INPUTS)


def gpt2() -> Any:
    import transformers as t
    cfg = t.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64, use_cache=False,
                       bos_token_id=1, eos_token_id=1, pad_token_id=data.PAD_ID)
    return _Logits.wrap(t.GPT2LMHeadModel(cfg), ("input_ids",))


def text_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return data.tokens(n, seed, seq=SEQ, vocab=VOCAB)


def roberta_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return data.tokens(n, seed, seq=SEQ, vocab=VOCAB, pad_id=ROBERTA_PAD)


def lm_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return data.lm_tokens(n, seed, seq=SEQ, vocab=VOCAB)


def train_cls(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, ce, steps=100, lr=2e-3)


def train_lm(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, ce, steps=300, lr=3e-3)


IDS = inp("input_ids", "int64", ["batch", "seq"])
MASK = inp("attention_mask", "int64", ["batch", "seq"])
CLS_OUT = (out("logits", True, ["batch", data.CLASSES]),)
TAGS = ("transformer", "dynamic-seq", "int64-ids")

ENTRIES = [
    Entry("bert-cls", "transformers-text", "torch", "BertForSequenceClassification (2 layers, hidden 64)",
          (IDS, MASK), CLS_OUT, text_data, bert, train_cls, tags=TAGS),
    Entry("distilbert-cls", "transformers-text", "torch", "DistilBertForSequenceClassification (2 layers, dim 64)",
          (IDS, MASK), CLS_OUT, text_data, distilbert, train_cls, tags=TAGS),
    Entry("roberta-cls", "transformers-text", "torch", "RobertaForSequenceClassification (2 layers, hidden 64; "
          "position ids from the padding mask)", (IDS, MASK), CLS_OUT, roberta_data, roberta, train_cls, tags=TAGS),
    Entry("gpt2-lm", "transformers-text", "torch", "GPT2LMHeadModel without cache (2 layers, n_embd 64, vocab 512)",
          (IDS,), (out("logits", True, ["batch", "seq", VOCAB]),), lm_data, gpt2, train_lm,
          tags=(*TAGS, "decoder")),
]
