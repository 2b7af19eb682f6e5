"""WordPiece tokenization (BERT's), in pure Python: text in, the model's id tensors out.

A text model's bundle carries its ``vocab.txt``, and the device turns text into ``input_ids``,
``attention_mask`` and ``token_type_ids`` with this module, the same code the build used for its
golden data. It follows Hugging Face's ``BertTokenizer`` (``tests/runtime/test_tokenizer.py``
compares them): special tokens kept whole, control characters dropped, CJK characters split,
optional lower-casing with accents stripped, punctuation split off, then greedy longest-match
WordPiece with ``##`` continuations (a word that cannot be pieced becomes ``[UNK]``); ``[CLS]``
and ``[SEP]`` around, truncated and padded to the model's length.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_CHARS_PER_WORD = 100


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _clean(text: str) -> str:
    """Control characters dropped, every whitespace a space, CJK characters set apart."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp in (0, 0xFFFD):
            continue
        cat = unicodedata.category(ch)
        if ch in " \t\n\r" or cat == "Zs":
            out.append(" ")
        elif ch not in "\t\n\r" and cat in ("Cc", "Cf"):
            continue
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return "".join(out)


def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    start_new = True
    for ch in word:
        if _is_punctuation(ch):
            pieces.append(ch)
            start_new = True
        else:
            if start_new:
                pieces.append("")
            start_new = False
            pieces[-1] += ch
    return pieces


@dataclass(frozen=True)
class WordPiece:
    """A vocabulary (token -> id) and how text is normalised before it is pieced."""

    vocab: dict[str, int]
    lowercase: bool = True

    @classmethod
    def from_lines(cls, lines: Sequence[str], *, lowercase: bool = True) -> WordPiece:
        vocab: dict[str, int] = {}
        for i, line in enumerate(lines):
            token = line.rstrip("\n").rstrip("\r")
            if token:
                vocab[token] = i  # a token listed twice: the last line counts, as in Hugging Face's loader
        missing = [t for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]") if t not in vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks {', '.join(missing)} (a BERT WordPiece vocab.txt has them)")
        return cls(vocab, lowercase)

    def words(self, text: str) -> list[str]:
        """The text's words and punctuation, special tokens (``[MASK]``...) kept whole."""
        specials = [t for t in SPECIAL if t in self.vocab]
        out: list[str] = []
        rest = text
        while rest:
            hits = [(rest.find(t), t) for t in specials if t in rest]
            at, token = min(hits) if hits else (len(rest), "")
            out += self._basic(rest[:at])
            if token:
                out.append(token)
            rest = rest[at + len(token):]
        return out

    def _basic(self, text: str) -> list[str]:
        words = []
        for word in _clean(text).split():
            if self.lowercase:
                word = _strip_accents(word.lower())
            words += [p for p in _split_punctuation(word) if p]
        return words

    def pieces(self, word: str) -> list[str]:
        """Greedy longest-match WordPiece of one word (``[UNK]`` when it cannot be pieced)."""
        if word in SPECIAL and word in self.vocab:
            return [word]
        if len(word) > MAX_CHARS_PER_WORD:
            return ["[UNK]"]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            else:
                return ["[UNK]"]
            out.append(piece)
            start = end
        return out

    def tokens(self, text: str) -> list[str]:
        return [p for word in self.words(text) for p in self.pieces(word)]

    def encode(self, texts: Sequence[str], length: int) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64 [len(texts), length]):
        ``[CLS] tokens [SEP]``, truncated to ``length`` and padded with ``[PAD]``."""
        ids = np.full((len(texts), length), self.vocab["[PAD]"], dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = ["[CLS]", *self.tokens(text)[:max(length - 2, 0)], "[SEP]"][:length]
            ids[row, :len(tokens)] = [self.vocab.get(t, self.vocab["[UNK]"]) for t in tokens]
            mask[row, :len(tokens)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
